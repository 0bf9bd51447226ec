"""Bytes that are not an HTTP/1.1 request get h11's status with an error body the client's SDK reads.

The table feeds h11 the faulty request and checks `framing_error`'s answer; the property test feeds it
any bytes.  Over a real socket, the main lane (hypercorn) answers each fault in the same shapes, in
Anthropic's when the request line named `/v1/messages`, and keeps serving; the official SDKs, sent a
header past the head's bound, raise with the gateway's message.
"""

from __future__ import annotations

import json

import anthropic
import h11
import openai
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.gateway.errors import ErrorStyle
from plano_trio.server.framing_errors import DETAIL_CHARS, framing_error
from tests.mock_provider import MockProvider
from tests.support import Gateway, in_thread, provider_config, raw_exchange, running_gateway

HEAD_LIMIT = 16 * 1024
CHAT_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
MESSAGES_HEAD = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n"
OVERSIZED_HEAD = b"GET /v1/models HTTP/1.1\r\nhost: x\r\nx-fill: " + b"a" * HEAD_LIMIT
"""Past the bound with no end in sight: h11 bounds a head still incomplete (one read of up to 64 KiB
that holds a whole head is parsed whatever its size)."""

FAULTS = [
    # (request bytes, status, code, words the message must contain)
    (b"NOT HTTP\r\n\r\n", 400, "malformed_http_request", "illegal request line"),
    (b"GET /v1/models HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n", 400, "malformed_http_request", "header"),
    (CHAT_HEAD + b"transfer-encoding: chunked\r\n\r\nzz\r\n", 400, "malformed_http_request", "chunk"),
    (CHAT_HEAD + b"transfer-encoding: gzip\r\n\r\n", 501, "unsupported_transfer_encoding", "Content-Length"),
    (
        CHAT_HEAD + b"transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
        501,
        "unsupported_transfer_encoding",
        "multiple Transfer-Encoding",
    ),
    (OVERSIZED_HEAD, 431, "request_header_fields_too_large", f"limit of {HEAD_LIMIT} bytes"),
]


def _refusal(data: bytes) -> h11.RemoteProtocolError:
    """h11's refusal of `data` as a server reads it (the test fails if h11 accepts it)."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=HEAD_LIMIT)
    conn.receive_data(data)
    with pytest.raises(h11.RemoteProtocolError) as caught:
        while conn.next_event() is not h11.NEED_DATA:
            pass
    return caught.value


@pytest.mark.parametrize(("data", "status", "code", "words"), FAULTS)
def test_each_fault_is_named_under_h11s_status(data: bytes, status: int, code: str, words: str) -> None:
    answer = framing_error(_refusal(data), HEAD_LIMIT)
    assert (answer.status, answer.code, answer.type) == (status, code, "invalid_request_error")
    assert words in answer.message


def test_a_long_detail_quoting_the_clients_bytes_is_cut() -> None:
    answer = framing_error(h11.RemoteProtocolError("Illegal header name " + "x" * 5000, 400), HEAD_LIMIT)
    assert answer.message.endswith("...")
    assert len(answer.message) < DETAIL_CHARS + 100


@given(st.binary(max_size=300))
def test_any_refusal_renders_in_both_shapes(data: bytes) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64)
    conn.receive_data(data)  # b"" is the client closing: h11 then answers ConnectionClosed for ever
    try:
        while (event := conn.next_event()) is not h11.NEED_DATA and event is not h11.PAUSED:
            if isinstance(event, h11.ConnectionClosed):
                break
    except h11.RemoteProtocolError as error:
        answer = framing_error(error, 64)
        assert answer.status in (400, 431, 501)
        assert json.loads(answer.body())["error"]["message"] == answer.message
        assert json.loads(answer.body(ErrorStyle.ANTHROPIC))["error"]["message"] == answer.message


# --- over a real socket ---------------------------------------------------------------------------------


def _answer(received: bytes) -> tuple[int, dict[bytes, bytes], dict[str, object]]:
    """Status, headers and JSON body of the one response in `received` (h11 checks its framing)."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(received)
    conn.receive_data(b"")
    response = conn.next_event()
    assert isinstance(response, h11.Response)
    body = b""
    while isinstance(event := conn.next_event(), h11.Data):
        body += event.data
    assert isinstance(event, h11.EndOfMessage)
    return response.status_code, dict(response.headers), json.loads(body)


async def _healthy(gateway: Gateway) -> bool:
    received = await raw_exchange(gateway, b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    return received.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(("data", "status", "code", "words"), FAULTS)
async def test_the_gateway_answers_each_fault_in_openai_shape(
    mock: MockProvider, data: bytes, status: int, code: str, words: str
) -> None:
    async with running_gateway(provider_config(mock.url)) as gateway:
        got, headers, body = _answer(await raw_exchange(gateway, data))
        assert got == status
        assert headers[b"content-type"] == b"application/json"
        assert headers[b"connection"] == b"close"
        error = body["error"]
        assert isinstance(error, dict)
        assert error["code"] == code and words in error["message"]
        assert await _healthy(gateway)


async def test_a_messages_request_with_a_broken_body_gets_anthropics_shape(mock: MockProvider) -> None:
    async with running_gateway(provider_config(mock.url)) as gateway:
        data = MESSAGES_HEAD + b"transfer-encoding: chunked\r\n\r\n5\r\nhello!!\r\n"
        status, _, body = _answer(await raw_exchange(gateway, data))
        assert status == 400
        assert body["type"] == "error"
        error = body["error"]
        assert isinstance(error, dict) and error["type"] == "invalid_request_error"
        assert "not valid HTTP/1.1" in error["message"]


async def test_the_sdks_raise_with_the_gateways_message_for_a_huge_header(
    mock: MockProvider,
) -> None:
    """An SDK user who put a huge value in a header sees what to cut, not a bare status code."""
    big = {"x-trace-blob": "a" * 100_000}  # longer than one 64 KiB read of the gateway: bounded
    async with running_gateway(provider_config(mock.url)) as gateway:
        chat = openai.OpenAI(base_url=gateway.v1, api_key="k", max_retries=0, timeout=10, default_headers=big)
        with pytest.raises(openai.APIStatusError) as raised:
            await in_thread(
                lambda: chat.chat.completions.create(
                    model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
            )
        assert raised.value.status_code == 431
        assert raised.value.code == "request_header_fields_too_large"
        assert f"limit of {HEAD_LIMIT} bytes" in raised.value.message

        claude = anthropic.Anthropic(
            base_url=gateway.base, api_key="k", max_retries=0, timeout=10, default_headers=big
        )
        with pytest.raises(anthropic.APIStatusError) as raised_too:
            await in_thread(
                lambda: claude.messages.create(
                    model="anthropic/claude-sonnet-4-6",
                    max_tokens=8,
                    messages=[{"role": "user", "content": "hi"}],
                )
            )
        assert raised_too.value.status_code == 431
        assert f"limit of {HEAD_LIMIT} bytes" in str(raised_too.value)
        with trio.fail_after(5):
            assert await _healthy(gateway)
