"""Error envelopes: provider errors re-spelled per client API, in-stream errors per SDK (pure)."""

from __future__ import annotations

import json

import pytest

from plano_trio.gateway import clients
from plano_trio.gateway.errors import ApiError, ErrorStyle
from plano_trio.gateway.upstream_errors import translate_error_body, upstream_error
from plano_trio.translate.sse import SseParser

OPENAI_429 = (
    b'{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}'
)
ANTHROPIC_529 = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
BEDROCK_400 = b'{"message":"Malformed input request"}'


@pytest.mark.parametrize(
    ("status", "body", "message", "kind", "code"),
    [
        (429, OPENAI_429, "Rate limit reached", "requests", "rate_limit_exceeded"),
        (529, ANTHROPIC_529, "Overloaded", "overloaded_error", None),
        (400, BEDROCK_400, "Malformed input request", "invalid_request_error", None),
        (400, b'{"error":"bad thing"}', "bad thing", "invalid_request_error", None),
        (502, b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>", "api_error", None),
        (500, b"", "provider 'p/m' answered HTTP 500 with an empty body", "api_error", None),
        (404, b'{"error":{"message":"no such model","code":404}}', "no such model", "not_found_error", "404"),
    ],
)
def test_upstream_error_fields(status: int, body: bytes, message: str, kind: str, code: str | None) -> None:
    error = upstream_error(status, body, "p/m")
    assert (error.status, error.message, error.type, error.code) == (status, message, kind, code)


def test_openai_error_for_anthropic_client_keeps_message() -> None:
    body = json.loads(translate_error_body(429, OPENAI_429, "openai/gpt", ErrorStyle.ANTHROPIC))
    assert body == {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}}


def test_anthropic_error_for_openai_client_keeps_message() -> None:
    body = json.loads(translate_error_body(529, ANTHROPIC_529, "anthropic/c", ErrorStyle.OPENAI))
    assert body == {
        "error": {"message": "Overloaded", "type": "overloaded_error", "param": None, "code": None}
    }


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (503, "overloaded_error"),
    ],
)
def test_anthropic_error_types_by_status(status: int, kind: str) -> None:
    assert json.loads(ApiError(status, "m").body(ErrorStyle.ANTHROPIC))["error"]["type"] == kind


@pytest.mark.parametrize(
    ("client", "event", "check"),
    [
        (
            clients.CHAT,
            None,
            lambda d: d["error"]["message"] == "boom" and d["error"]["code"] == "stream_interrupted",
        ),
        (
            clients.MESSAGES,
            "error",
            lambda d: d == {"type": "error", "error": {"type": "api_error", "message": "boom"}},
        ),
        (
            clients.RESPONSES,
            "error",
            lambda d: d["type"] == "error" and d["message"] == "boom" and d["error"],
        ),
    ],
)
def test_stream_error_framing(client: clients.ClientApi, event: str | None, check: object) -> None:
    (parsed,) = SseParser().feed(client.stream_error("boom"))
    assert parsed.event == event
    assert check(json.loads(parsed.data))  # type: ignore[operator]


def test_framing_and_clean_end() -> None:
    assert clients.CHAT.frame({"a": 1}) == b'data: {"a":1}\n\n'
    assert clients.CHAT.clean_end == b"data: [DONE]\n\n"
    assert clients.MESSAGES.frame({"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert clients.RESPONSES.clean_end == b""
