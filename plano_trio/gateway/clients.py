"""The three client APIs the model listener speaks, as data.

Each `ClientApi` knows how to validate its request shape, how its SSE
framing looks (Chat: bare `data:` lines and a `[DONE]` sentinel; Messages
and Responses: `event: <type>` lines), how an in-stream error is spelled so
its SDK raises, and which error JSON shape the SDK parses.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from plano_trio.apis.kind import Api
from plano_trio.gateway.errors import ApiError, ErrorStyle
from plano_trio.translate.sse import DONE, encode_event

_encode = msgspec.json.Encoder().encode


class RequestView(msgspec.Struct):
    """The fields routing needs, from any of the three request shapes; the rest stays undecoded."""

    model: str | None = None
    stream: bool | None = None
    messages: list[msgspec.Raw] | msgspec.UnsetType = msgspec.UNSET
    input: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    previous_response_id: str | None = None
    store: bool | None = None


_decode_view = msgspec.json.Decoder(RequestView).decode


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
        """The request's routing view, or ApiError(400) saying exactly what is wrong."""
        if not body.strip():
            raise ApiError(400, f"Request body is empty; expected a JSON {self.label} request")
        try:
            view = _decode_view(body)
        except msgspec.ValidationError as error:
            raise ApiError(400, f"Invalid {self.label} request: {error}") from None
        except msgspec.DecodeError as error:
            raise ApiError(400, f"Request body is not valid JSON: {error}") from None
        present = view.messages if self.required == "messages" else view.input
        if present is msgspec.UNSET:
            raise ApiError(
                400,
                f"Missing required parameter: '{self.required}' (this is {self.path})",
                param=self.required,
            )
        if not view.model:
            raise ApiError(400, "Missing required parameter: 'model'", param="model")
        return view

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
