"""Errors the gateway itself answers with, in the shape the client's SDK parses.

Plano answers most of its own errors (bad JSON, unknown model, unknown
`previous_response_id`, upstream connect failure, rate limit) as plain text
such as `Model 'x' not found in configured providers`; an SDK then raises an
unhelpful "could not parse" error.  We raise `ApiError` anywhere in a handler
and the edge renders it as OpenAI error JSON (`{"error": {...}}`), or as
Anthropic's (`{"type": "error", "error": {...}}`) on `/v1/messages`.
"""

from __future__ import annotations

from enum import Enum

import msgspec


class ErrorStyle(Enum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


_ANTHROPIC_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


class _OpenAIErrorBody(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class _OpenAIError(msgspec.Struct):
    error: _OpenAIErrorBody


class _AnthropicErrorBody(msgspec.Struct):
    type: str
    message: str


class _AnthropicError(msgspec.Struct, tag="error", tag_field="type"):
    error: _AnthropicErrorBody


_encode = msgspec.json.Encoder().encode


class ApiError(Exception):
    """An error answered to the client; `status` is the HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers

    def but(
        self, *, message: str | None = None, headers: tuple[tuple[bytes, bytes], ...] | None = None
    ) -> ApiError:
        """The same error with another message or another set of response headers."""
        return ApiError(
            self.status,
            self.message if message is None else message,
            type=self.type,
            param=self.param,
            code=self.code,
            headers=self.headers if headers is None else headers,
        )

    def with_headers(self, extra: tuple[tuple[bytes, bytes], ...]) -> ApiError:
        """The same error, answered with `extra` response headers as well."""
        return self.but(headers=(*self.headers, *extra))

    def body(self, style: ErrorStyle = ErrorStyle.OPENAI) -> bytes:
        if style is ErrorStyle.ANTHROPIC:
            kind = _ANTHROPIC_TYPE_BY_STATUS.get(self.status, "api_error")
            return _encode(_AnthropicError(_AnthropicErrorBody(kind, self.message)))
        return _encode(_OpenAIError(_OpenAIErrorBody(self.message, self.type, self.param, self.code)))


def unavailable(message: str, code: str, retry_after_s: int = 1) -> ApiError:
    """503 + `Retry-After`: the gateway cannot take this request now, but may shortly."""
    return ApiError(
        503, message, type="server_error", code=code, headers=((b"retry-after", str(retry_after_s).encode()),)
    )


def not_found(method: str, path: str) -> ApiError:
    return ApiError(404, f"Unknown path: {method} {path}", code="not_found")


def method_not_allowed(method: str, path: str, allowed: str) -> ApiError:
    return ApiError(
        405,
        f"Method {method} is not allowed on {path}; allowed: {allowed}",
        code="method_not_allowed",
        headers=((b"allow", allowed.encode()),),
    )


def head_too_large(limit: int) -> ApiError:
    """431: the request's target and headers together are past `limit` bytes, whichever part of the
    server saw it (the HTTP parser, for a head still incomplete; the app, for one that arrived whole)."""
    return ApiError(
        431,
        f"The request's target and headers are larger than the gateway's limit of {limit} bytes",
        code="request_header_fields_too_large",
    )
