"""What the LLM span says about the request: temperature, tool names, the user's last words (pure).

brightstaff reads these from every request it parses; here they are read
only for a traced request, and only when its span is built (the observe
stage, after the answer went out), so the request path never decodes a
body for tracing.  The body is decoded into a few typed fields; a body
larger than `MAX_BODY_BYTES`, or one whose fields have unexpected types
(the provider's business, not ours), simply yields no attributes.

As brightstaff: `llm.temperature` is the number as text; `llm.tools` the
tool names, one `name(...)` per line; `llm.user_message_preview` the first
50 characters (then `...`) of
  * Chat: the last message's text, whatever its role, when it is a plain string;
  * Messages: the latest user message's text (its first text block);
  * Responses: `input` when it is a string, else the latest user message's
    text (its first `input_text` part).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import msgspec

from plano_trio.apis.kind import Api
from plano_trio.telemetry import names
from plano_trio.telemetry.record import Attributes

MAX_BODY_BYTES = 1024 * 1024
"""Bodies above this are not decoded for span attributes (the decode would hold the event loop)."""
PREVIEW_CHARS = 50
_TEMPERATURES: dict[float, str] = {}
"""`f32_text` of the temperatures requests asked for (a handful: 0, 0.2, 0.7, 1), worked out once each."""
_MAX_TEMPERATURES = 256


class _Named(msgspec.Struct):
    name: str | None = None


class _ChatTool(msgspec.Struct):
    function: _Named | None = None


class _Message(msgspec.Struct):
    role: str | None = None
    content: Any = None


class _ChatRequest(msgspec.Struct):
    temperature: float | None = None
    tools: list[_ChatTool] | None = None
    functions: list[_Named] | None = None
    messages: list[_Message] | None = None


class _MessagesRequest(msgspec.Struct):
    temperature: float | None = None
    tools: list[_Named] | None = None
    messages: list[_Message] | None = None


class _ResponsesTool(msgspec.Struct):
    type: str | None = None
    name: str | None = None


class _ResponsesRequest(msgspec.Struct):
    temperature: float | None = None
    tools: list[_ResponsesTool] | None = None
    input: Any = None


_Request = _ChatRequest | _MessagesRequest | _ResponsesRequest
_DECODE_CHAT = msgspec.json.Decoder(_ChatRequest).decode
_DECODE_MESSAGES = msgspec.json.Decoder(_MessagesRequest).decode
_DECODE_RESPONSES = msgspec.json.Decoder(_ResponsesRequest).decode


def _decoder(api: Api) -> Callable[[bytes], _Request] | None:
    """By identity: an `Enum` member hashes in Python, which a dict lookup would pay per request."""
    if api is Api.CHAT:
        return _DECODE_CHAT
    if api is Api.MESSAGES:
        return _DECODE_MESSAGES
    return _DECODE_RESPONSES if api is Api.RESPONSES else None


def request_attributes(api: Api, body: bytes) -> Attributes:
    """`llm.temperature`, `llm.tools`, `llm.user_message_preview` of a request, as far as it has them."""
    decode = _decoder(api)
    if decode is None or len(body) > MAX_BODY_BYTES:
        return {}
    try:
        request = decode(body)
    except (msgspec.DecodeError, RecursionError):
        return {}
    attributes: Attributes = {}
    temperature = request.temperature
    if temperature is not None:
        attributes[names.LLM_TEMPERATURE] = _temperature_text(temperature)
    tools = _tool_names(request)
    if tools is not None:
        attributes[names.LLM_TOOLS] = "\n".join(f"{name}(...)" for name in tools)
    preview = _recent_user_text(request)
    if preview is not None:
        attributes[names.LLM_USER_MESSAGE_PREVIEW] = truncate(preview, PREVIEW_CHARS)
    return attributes


def truncate(text: str, limit: int) -> str:
    """brightstaff's `truncate_message`: the first `limit` characters and `...` when longer."""
    return text[:limit] + "..." if len(text) > limit else text


def _temperature_text(value: float) -> str:
    """`f32_text`, remembered (zeros are not: 0.0 and -0.0 are one dict key but print apart, and a
    zero takes one round anyway)."""
    text = _TEMPERATURES.get(value) if value else None
    if text is None:
        text = f32_text(value)
        if value:
            if len(_TEMPERATURES) >= _MAX_TEMPERATURES:
                _TEMPERATURES.clear()
            _TEMPERATURES[value] = text
    return text


def f32_text(value: float) -> str:
    """The number as Rust prints an `f32` (brightstaff parses temperature as one): `0.7`, `1`."""
    single = struct.unpack("f", struct.pack("f", value))[0]
    for digits in range(1, 10):
        text = f"{single:.{digits}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            return text
    return repr(single)  # pragma: no cover - nine significant digits always round-trip an f32


def _tool_names(request: _Request) -> list[str] | None:
    if isinstance(request, _ChatRequest):
        if request.tools:
            tools = [t.function.name for t in request.tools if t.function is not None and t.function.name]
            if tools:
                return tools
        if request.functions:
            return [f.name for f in request.functions if f.name] or None
        return None
    if isinstance(request, _MessagesRequest):
        return None if request.tools is None else [t.name or "" for t in request.tools]
    if request.tools is None:
        return None
    return [t.name for t in request.tools if t.type in ("function", "custom") and t.name]


def _recent_user_text(request: _Request) -> str | None:
    if isinstance(request, _ChatRequest):
        last = request.messages[-1] if request.messages else None
        return last.content if last is not None and isinstance(last.content, str) else None
    if isinstance(request, _MessagesRequest):
        for message in reversed(request.messages or ()):
            text = _first_text(message.content, "text") if message.role == "user" else None
            if text is not None:
                return text
        return None
    value = request.input
    if isinstance(value, str):
        return value
    items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user" and item.get("type", "message") == "message":
            found = _first_text(item.get("content"), "input_text")
            if found is not None:
                return found
    return None


def _first_text(content: Any, part_type: str) -> str | None:
    """A message's text: the string itself, or its first part of `part_type`."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == part_type and isinstance(part.get("text"), str):
                text: str = part["text"]
                return text
    return None
