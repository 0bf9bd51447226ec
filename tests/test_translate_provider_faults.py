"""A provider answering in the wrong shape, over real sockets: a 502 or an error event, never a 500 or a cut.

A scripted provider (a few lines of trio, so it can send what no real
provider library would) answers the gateway's translated request with a
body or stream whose shape is wrong; the client must get a well-formed
error in its own API's shape, and the gateway must keep serving.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import httpx
import pytest
import trio

from tests.support import provider_config, running_gateway

_MAX_REQUEST = 1 << 20


async def _answer(response: bytes, stream: trio.SocketStream) -> None:
    """Read one request (headers, then `content-length` bytes), send `response`, close."""
    data = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in data and len(data) < _MAX_REQUEST:
            chunk = await stream.receive_some()
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        while len(body) < length:
            chunk = await stream.receive_some()
            if not chunk:
                return
            body += chunk
        await stream.send_all(response)
    await stream.aclose()


@asynccontextmanager
async def scripted_provider(status: int, content_type: str, body: bytes) -> AsyncIterator[str]:
    """A provider that answers every request with this status, content type and body, then closes."""
    head = f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
    response = head.encode() + b"connection: close\r\n\r\n" + body
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, partial(_answer, response), 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}"
        nursery.cancel_scope.cancel()


def _config(provider_url: str) -> str:
    extra = f"""  - model: anthropic/claude-x
    access_key: anthropic-key
    base_url: {provider_url}
"""
    return provider_config(provider_url, extra_providers=extra)


def _sse(*events: dict[str, object]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


CHAT = {"model": "anthropic/claude-x", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    "body",
    [
        {"content": "abc"},
        {"content": [7, None, "s"]},
        {"content": [{"type": "tool_use", "input": 5, "id": 1}]},
    ],
    ids=["content-string", "content-junk-list", "tool-use-wrong-types"],
)
async def test_malformed_anthropic_response_is_502_in_chat_shape(body: object) -> None:
    async with (
        scripted_provider(200, "application/json", json.dumps(body).encode()) as url,
        running_gateway(_config(url)) as gw,
        httpx.AsyncClient(timeout=10) as client,
    ):
        reply = await client.post(f"{gw.v1}/chat/completions", json=CHAT)
        health = await client.get(f"{gw.base}/healthz")
    assert reply.status_code == 502, reply.text
    error = reply.json()["error"]
    assert "provider sent a malformed Anthropic message" in error["message"]
    assert health.status_code == 200


START = {
    "type": "message_start",
    "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 1}},
}


@pytest.mark.parametrize(
    "events",
    [
        [{"type": "message_start", "message": "oops"}],
        [START, {"type": "content_block_delta", "index": 0, "delta": 42}],
        [START, {"type": "content_block_start", "index": 0, "content_block": [1]}],
    ],
    ids=["message-not-object", "delta-not-object", "block-not-object"],
)
async def test_malformed_anthropic_stream_ends_with_chat_error_event(events: list[dict[str, object]]) -> None:
    async with (
        scripted_provider(200, "text/event-stream", _sse(*events)) as url,
        running_gateway(_config(url)) as gw,
        httpx.AsyncClient(timeout=10) as client,
    ):
        reply = await client.post(f"{gw.v1}/chat/completions", json={**CHAT, "stream": True})
        health = await client.get(f"{gw.base}/healthz")
    assert reply.status_code == 200
    data = [line.removeprefix("data: ") for line in reply.text.splitlines() if line.startswith("data: ")]
    assert "[DONE]" not in data
    error = json.loads(data[-1])["error"]
    assert "provider sent a malformed Anthropic stream event" in error["message"]
    assert health.status_code == 200
