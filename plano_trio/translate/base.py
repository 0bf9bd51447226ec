"""The shapes every translator shares, so they compose, and the errors they may raise.

Translation is pure: functions and small state machines over JSON values,
never sockets.  The I/O edge unframes what the provider sent, feeds it here
(a stream event either decoded or as the raw JSON of its SSE `data`, which
the translator decodes straight into its typed wire model), and encodes
what comes out in the client's wire framing:

* Chat Completions clients get `data: <json>\\n\\n` per chunk and a final
  `data: [DONE]\\n\\n` that the *edge* appends when the stream ended cleanly;
* Anthropic Messages and OpenAI Responses clients get
  `event: <obj["type"]>\\ndata: <json>\\n\\n`.

So a stream translator only ever returns event *objects* (dicts); the
framing is never its concern.  OpenAI Chat is the pivot: a Responses client
on an Anthropic provider is Responses→Chat→Messages on the way up and
Messages→Chat→Responses on the way down, built with `compose`.

The error contract, which the edge relies on to answer every failure in
the client's own error shape:

* translating a *request* raises only `TranslationError` (the client asked
  for something the provider cannot express: HTTP 400);
* translating a *response* raises only `ProviderShapeError` (HTTP 502);
* a *stream* translator's `feed`/`finish` raise only `StreamError`: the
  provider reported an error in-stream, ended early, or sent an event of
  the wrong shape (`ProviderShapeError`, a `StreamError` too).

Provider output is untrusted input, so translators read it only through
the typed wire models in `plano_trio.apis`: `provider_value` and
`EventReader` turn a wrong shape into `ProviderShapeError` before any
field is read, never into a TypeError or KeyError halfway through.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar, get_args

import msgspec

Json = dict[str, Any]

UpstreamEvent = Json | bytes
"""One upstream stream event as a stream translator takes it: decoded (a Bedrock frame, or a Chat
chunk another translator built) or the undecoded JSON of an SSE event's `data`.  From bytes, the
event is decoded straight into its typed wire model: no dict per token is built only to be
converted and thrown away."""

T = TypeVar("T")


class TranslationError(Exception):
    """A request that cannot be expressed in the upstream API (answered as HTTP 400).

    `param` names the offending field (e.g. `tools[0].type`), so the client
    learns exactly what was not translated instead of it being dropped.
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class StreamError(Exception):
    """The upstream stream failed after the response began (an `error` event, a cut-off stream).

    The status line is already sent by then, so the edge cannot answer with
    an HTTP error: it reports `message`/`error_type` in the client's own
    in-stream error shape (e.g. Anthropic `event: error`) and ends the
    stream without the clean-end marker, so the client never mistakes a
    truncated answer for a complete one.  `error_type` uses the provider's
    vocabulary (`overloaded_error`, `api_error`...).
    """

    def __init__(self, message: str, error_type: str = "api_error") -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


class ProviderShapeError(StreamError, ValueError):
    """The provider sent a body or stream event that does not have its API's shape.

    The message names what was wrong (e.g. "provider sent a malformed
    Anthropic stream event `message_start`: Expected `object | null`, got
    `str` - at `$.message`").  It is a `StreamError` so that, mid-stream, the
    edge reports it like any other broken stream; before the first byte (a
    whole response) the edge answers 502.  It is also a ValueError (a value
    of the wrong shape), which edges that catch decoding failures as
    ValueError already turn into that 502.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, "api_error")


def provider_value(value: object, model: type[T], what: str) -> T:
    """`value` (decoded JSON from the provider) as `model`, or ProviderShapeError naming `what`.

    `msgspec.convert` is strict (no `"1"` for an int, no `true` for a
    number) and ignores fields the model does not describe, so providers
    may add fields but not change the type of one we read.
    """
    try:
        return msgspec.convert(value, model)
    except msgspec.ValidationError as error:
        raise ProviderShapeError(f"provider sent a malformed {what}: {error}") from None


_decode_json = msgspec.json.Decoder().decode


def decode_event(data: bytes) -> Json:
    """A stream event's JSON data as a dict; StreamError when it is not JSON or not a JSON object."""
    try:
        value = _decode_json(data)
    except msgspec.DecodeError:
        raise StreamError("provider sent a stream event that is not valid JSON") from None
    if not isinstance(value, dict):
        raise StreamError("provider sent a stream event that is not a JSON object")
    return value


class EventValue(Generic[T]):
    """Stream events of one shape (a Chat chunk) as `model`, from a dict or straight from JSON bytes.

    Bytes that do not decode as `model` take the dict path, so every failure
    is reported exactly as for a decoded event: not JSON, not an object, or
    which field had the wrong type (ProviderShapeError).
    """

    __slots__ = ("_decode", "_model", "_what")

    def __init__(self, model: type[T], what: str) -> None:
        self._model = model
        self._what = what
        self._decode = msgspec.json.Decoder(model).decode

    def __call__(self, event: UpstreamEvent) -> T:
        if isinstance(event, bytes):
            try:
                return self._decode(event)
            except msgspec.DecodeError:
                event = decode_event(event)
        return provider_value(event, self._model, self._what)


class EventReader:
    """Stream events as the members of a tagged union, for one provider API.

    Event types outside the union (keep-alives, types added to the API
    later) carry nothing a translator reads, so they read as None rather
    than being refused; an event that is not an object at all, or a known
    event of the wrong shape, is a ProviderShapeError.  The tag field and
    the member for each tag are looked up once, here, and an event is
    converted to its own member: `msgspec.convert` to the union itself
    rebuilds the union's type information on every call (~11 µs an event,
    measured, against ~0.2 µs for the member), which was most of what a
    translated stream spent per token.  An event still in JSON bytes is
    decoded by one `msgspec.json.Decoder` of the whole union (its type
    information is built once, with the decoder): the member straight from
    the bytes, no dict in between.  Bytes that do not decode that way (an
    unknown type, a wrong shape, not JSON) take the dict path, which says
    which.
    """

    __slots__ = ("_decode", "_field", "_members", "_what")

    def __init__(self, union: Any, what: str) -> None:
        members = get_args(union)
        self._what = what
        self._field: str = members[0].__struct_config__.tag_field
        self._members: dict[str, type] = {member.__struct_config__.tag: member for member in members}
        self._decode = msgspec.json.Decoder(union).decode

    def __call__(self, value: object) -> Any:
        """The event as its union member, or None for a type no translator reads."""
        if isinstance(value, bytes):
            try:
                return self._decode(value)
            except msgspec.DecodeError:
                value = decode_event(value)
        if not isinstance(value, dict):
            raise ProviderShapeError(f"provider sent a {self._what} that is not a JSON object")
        kind = value.get(self._field)
        member = self._members.get(kind) if isinstance(kind, str) else None
        if member is None:
            return None
        return provider_value(value, member, f"{self._what} `{kind}`")


def stream_error(error: object) -> StreamError:
    """StreamError for an in-stream error object (Anthropic `error.error` or a Chat chunk's `error`).

    Any shape is accepted: the stream is failing either way, and the
    provider's own words are worth passing on when there are some.
    """
    detail = error if isinstance(error, dict) else {"message": str(error)}
    return StreamError(
        str(detail.get("message") or "upstream stream error"), str(detail.get("type") or "api_error")
    )


class StreamTranslator(Protocol):
    """Turns one decoded upstream stream event into zero or more client events."""

    def feed(self, event: UpstreamEvent) -> list[Json]:
        """Translate one upstream event (unframed; decoded, or its JSON bytes)."""
        ...

    def finish(self) -> list[Json]:
        """The upstream stream ended cleanly: close any open envelope (blocks, items, message)."""
        ...


class _Composed:
    __slots__ = ("first", "second")

    def __init__(self, first: StreamTranslator, second: StreamTranslator) -> None:
        self.first = first
        self.second = second

    def feed(self, event: UpstreamEvent) -> list[Json]:
        out: list[Json] = []
        for middle in self.first.feed(event):
            out.extend(self.second.feed(middle))
        return out

    def finish(self) -> list[Json]:
        out: list[Json] = []
        for middle in self.first.finish():
            out.extend(self.second.feed(middle))
        out.extend(self.second.finish())
        return out


def compose(first: StreamTranslator, second: StreamTranslator) -> StreamTranslator:
    """`second` fed by `first`'s output (e.g. Messages→Chat then Chat→Responses)."""
    return _Composed(first, second)


def append_turn(turns: list[Json], role: str, blocks: list[Json]) -> None:
    """Add `blocks` as a turn; merge into the previous turn of the same role; drop empty turns.

    Anthropic Messages and Bedrock Converse both require user/assistant
    alternation, while Chat allows consecutive same-role messages (and puts
    each tool result in its own message).
    """
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})
