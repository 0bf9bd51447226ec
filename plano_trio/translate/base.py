"""The shapes every translator shares, so they compose.

Translation is pure: functions and small state machines over decoded JSON
values (dicts, lists, str...), never bytes or sockets.  The I/O edge decodes
what the provider sent, feeds it here, and encodes what comes out in the
client's wire framing:

* Chat Completions clients get `data: <json>\\n\\n` per chunk and a final
  `data: [DONE]\\n\\n` that the *edge* appends when the stream ended cleanly;
* Anthropic Messages and OpenAI Responses clients get
  `event: <obj["type"]>\\ndata: <json>\\n\\n`.

So a stream translator only ever returns event *objects* (dicts); the
framing is never its concern.  OpenAI Chat is the pivot: a Responses client
on an Anthropic provider is Responses→Chat→Messages on the way up and
Messages→Chat→Responses on the way down, built with `compose`.
"""

from __future__ import annotations

from typing import Any, Protocol

Json = dict[str, Any]


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


class StreamTranslator(Protocol):
    """Turns one decoded upstream stream event into zero or more client events."""

    def feed(self, event: Json) -> list[Json]:
        """Translate one upstream event (already decoded from its framing)."""
        ...

    def finish(self) -> list[Json]:
        """The upstream stream ended cleanly: close any open envelope (blocks, items, message)."""
        ...


class _Composed:
    __slots__ = ("first", "second")

    def __init__(self, first: StreamTranslator, second: StreamTranslator) -> None:
        self.first = first
        self.second = second

    def feed(self, event: Json) -> list[Json]:
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
