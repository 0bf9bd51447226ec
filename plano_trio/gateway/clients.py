"""The three client APIs the model listener speaks, as data.

Each `ClientApi` knows how to validate its request shape, how its SSE
framing looks (Chat: bare `data:` lines and a `[DONE]` sentinel; Messages
and Responses: `event: <type>` lines), how an in-stream error is spelled so
its SDK raises, and which error JSON shape the SDK parses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec

from plano_trio.apis.kind import Api
from plano_trio.apis.request_json import RequestJsonError, decode_members, decode_request_object
from plano_trio.gateway.errors import ApiError, ErrorStyle
from plano_trio.translate.sse import DONE, encode_event

_encode = msgspec.json.Encoder().encode


class RequestView(msgspec.Struct, frozen=True):
    """What routing needs from any of the three request shapes, and the body's top level.

    `members` maps each top-level key to its value as undecoded bytes (the
    body was checked to give no key twice), so a stage that rewrites the top
    level splices these rather than decoding the body again.
    """

    members: dict[str, msgspec.Raw]
    model: str | None = None
    stream: bool | None = None
    previous_response_id: str | None = None
    store: bool | None = None


_FIELD_DECODERS: dict[str, Callable[[msgspec.Raw], Any]] = {
    "model": msgspec.json.Decoder(str | None).decode,
    "stream": msgspec.json.Decoder(bool | None).decode,
    "previous_response_id": msgspec.json.Decoder(str | None).decode,
    "store": msgspec.json.Decoder(bool | None).decode,
}
"""The routing fields, each decoded from its own member; the rest of the body stays undecoded."""


class ClientApi(NamedTuple):
    api: Api
    path: str
    style: ErrorStyle
    required: str
    """The field without which a body is not this API's request (`messages` / `input`)."""
    label: str
    named_events: bool
    """SSE events carry `event: <type>` (Messages, Responses) rather than bare `data:` (Chat)."""

    def parse(self, body: bytes) -> RequestView:
        """The request's routing view, or ApiError(400) saying exactly what is wrong.

        Every request passes here, so every check is one the top-level decode
        makes cheap (see `apis.request_json`): UTF-8, JSON, an object, no key
        given twice, nesting within the decoder's budget, routing fields typed.
        """
        if not body.strip():
            raise ApiError(400, f"Request body is empty; expected a JSON {self.label} request")
        try:
            members = decode_members(body)
        except RequestJsonError as error:
            raise self._invalid(error) from None
        fields: dict[str, Any] = {}
        for name, decode in _FIELD_DECODERS.items():
            raw = members.get(name)
            if raw is not None:
                try:
                    fields[name] = decode(raw)
                except msgspec.ValidationError as error:
                    raise ApiError(
                        400, f"Invalid {self.label} request: {error} - at `$.{name}`", param=name
                    ) from None
        messages = members.get("messages")
        if messages is not None and memoryview(messages)[0] != ord("["):  # valid JSON: `[` starts an array
            raise ApiError(
                400,
                f"Invalid {self.label} request: Expected `array` - at `$.messages`",
                param="messages",
            )
        if self.required not in members:
            raise ApiError(
                400,
                f"Missing required parameter: '{self.required}' (this is {self.path})",
                param=self.required,
            )
        view = RequestView(members, **fields)
        if not view.model:
            raise ApiError(400, "Missing required parameter: 'model'", param="model")
        return view

    def decode_request(self, body: bytes) -> dict[str, Any]:
        """The whole body decoded, for a translated request; call after `parse` accepted it.

        Bounded to `MAX_DEPTH` levels, UTF-8 and numbers msgspec can hold,
        or ApiError(400) saying which.
        """
        try:
            return decode_request_object(body)
        except RequestJsonError as error:
            raise self._invalid(error) from None

    def _invalid(self, error: RequestJsonError) -> ApiError:
        return ApiError(400, f"Invalid {self.label} request: {error.message}", param=error.param)

    def frame(self, event: dict[str, Any]) -> bytes:
        """One translated event in this client's SSE framing."""
        data = _encode(event)
        if self.named_events:
            return encode_event(data, str(event.get("type", "message")))
        return encode_event(data)

    @property
    def clean_end(self) -> bytes:
        """What ends a complete stream (Chat's `[DONE]`; the others end with their last event)."""
        return b"" if self.named_events else encode_event(DONE)

    def stream_error(
        self, message: str, error_type: str = "api_error", code: str = "stream_interrupted"
    ) -> bytes:
        """An in-stream error event that makes this client's SDK raise."""
        if self.style is ErrorStyle.ANTHROPIC:
            body = {"type": "error", "error": {"type": error_type, "message": message}}
            return encode_event(_encode(body), "error")
        error: dict[str, str | None] = {"message": message, "type": error_type, "param": None, "code": code}
        if self.named_events:  # Responses: an `error` event; the `error` member makes the SDK raise
            event = {"type": "error", "code": code, "message": message, "param": None, "error": error}
            return encode_event(_encode(event), "error")
        return encode_event(_encode({"error": error}))


CHAT = ClientApi(Api.CHAT, "/v1/chat/completions", ErrorStyle.OPENAI, "messages", "chat completion", False)
MESSAGES = ClientApi(Api.MESSAGES, "/v1/messages", ErrorStyle.ANTHROPIC, "messages", "messages", True)
RESPONSES = ClientApi(Api.RESPONSES, "/v1/responses", ErrorStyle.OPENAI, "input", "responses", True)


def error_style(path: str) -> ErrorStyle:
    """The error JSON the caller's SDK parses: Anthropic's on its own path, OpenAI's elsewhere."""
    return ErrorStyle.ANTHROPIC if path.startswith(MESSAGES.path) else ErrorStyle.OPENAI
