"""Provider error bodies re-spelled for a client that speaks another API.

An Anthropic SDK must be able to parse an OpenAI provider's 429 and vice
versa: the status is kept, the provider's own message is kept verbatim, and
only the envelope changes.  Pure function; table-tested.
"""

from __future__ import annotations

from typing import Any

import msgspec

from plano_trio.gateway.errors import ApiError, ErrorStyle

_DEFAULT_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def _fields(value: Any) -> tuple[str | None, str | None, str | None]:
    """(message, type, code) from any of the error shapes providers use."""
    if not isinstance(value, dict):
        return None, None, None
    inner = value.get("error")
    if isinstance(inner, dict):  # OpenAI {"error": {...}} and Anthropic {"type": "error", "error": {...}}
        code = inner.get("code")
        return (
            _text(inner.get("message")),
            _text(inner.get("type")),
            None if code is None else str(code),
        )
    if isinstance(inner, str):  # {"error": "message"} (several OpenAI-compatible servers)
        return inner, None, None
    message = _text(value.get("message") or value.get("Message"))  # Bedrock / AWS
    kind = _text(value.get("__type") or value.get("type"))
    return message, kind, None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def upstream_error(status: int, body: bytes, provider: str) -> ApiError:
    """The provider's error as an ApiError carrying its status and its own message."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        decoded = None
    message, kind, code = _fields(decoded)
    if message is None:
        text = body.decode("utf-8", "replace").strip()[:2000]
        message = text or f"provider '{provider}' answered HTTP {status} with an empty body"
    return ApiError(status, message, type=kind or _DEFAULT_TYPE.get(status, "api_error"), code=code)


def translate_error_body(status: int, body: bytes, provider: str, style: ErrorStyle) -> bytes:
    return upstream_error(status, body, provider).body(style)
