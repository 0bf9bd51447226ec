"""Hostile clients and broken providers, over real sockets: every fault gets a well-formed answer.

Each test sends the bad input the way an attacker or a broken provider
would, checks the answer is in the client API's own error shape (or an
in-stream error event), and then checks the gateway still serves.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import cast

import httpx
import pytest
import trio

from plano_trio.config import load_config_text
from plano_trio.server.send_guard import GuardedStream, SendGuard
from plano_trio.server.serve import serve
from plano_trio.translate.sse import SseParser
from tests.scripted_provider import (
    Script,
    chunk,
    hang_up,
    head,
    json_reply,
    scripted_provider,
    sse_then,
    stall,
)
from tests.support import Gateway, running_gateway

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
TO_ANTHROPIC = {"model": "anthropic/claude-x", "messages": [{"role": "user", "content": "hi"}]}
GOOD_CHAT_REPLY = json.dumps(
    {
        "id": "c1",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    }
).encode()


def config(url: str, *, settings: str = "", timeout: str = "5s", cap: int = 1048576) -> str:
    return f"""
version: v0.4.0
listeners:
  - name: llm
    type: model
    address: 127.0.0.1
    port: 0
    timeout: {timeout}
model_providers:
  - model: openai/gpt-4o-mini
    access_key: k
    base_url: {url}
    default: true
  - model: anthropic/claude-x
    access_key: k
    base_url: {url}
plano_trio:
  max_upstream_body_bytes: {cap}
{settings}
"""


@asynccontextmanager
async def gateway_on(
    script: Script, *, settings: str = "", timeout: str = "5s", cap: int = 1048576
) -> AsyncIterator[Gateway]:
    async with (
        scripted_provider(script) as provider,
        running_gateway(config(provider.url, settings=settings, timeout=timeout, cap=cap)) as gateway,
    ):
        yield gateway


async def post(gateway: Gateway, path: str, body: dict[str, object]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(f"{gateway.base}{path}", json=body)


async def assert_still_serves(gateway: Gateway) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{gateway.base}/healthz")
    assert response.status_code == 200


def sse_events(body: bytes) -> list[bytes]:
    return [event.data for event in SseParser().feed(body)]


async def raw_exchange(gateway: Gateway, request: bytes, *, wait: float = 5.0) -> bytes:
    """Send raw bytes, read until the gateway closes (or `wait` passes)."""
    stream = await trio.open_tcp_stream(gateway.host, gateway.port)
    received = b""
    async with stream:
        await stream.send_all(request)
        with trio.move_on_after(wait):
            while chunk := await stream.receive_some(65536):
                received += chunk
    return received


# --- broken providers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [b'{"content": "abc"}', b'{"content": [7, null, "s"]}', b"[1, 2]", b"not json", b'"text"'],
)
async def test_malformed_anthropic_reply_is_502_in_the_clients_shape(reply: bytes) -> None:
    async with gateway_on(json_reply(reply)) as gateway:
        response = await post(gateway, "/v1/chat/completions", TO_ANTHROPIC)
        assert response.status_code == 502
        error = response.json()["error"]
        assert "anthropic" in error["message"] and "ExceptionGroup" not in error["message"]
        await assert_still_serves(gateway)


@pytest.mark.parametrize(
    "event",
    [
        b'event: message_start\ndata: {"type": "message_start", "message": "oops"}\n\n',
        b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": 42}\n\n',
        b"data: [1, 2, 3]\n\n",
        b"data: {not json\n\n",
    ],
)
async def test_malformed_stream_event_ends_with_an_error_event(
    event: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plano_trio.access")
    async with gateway_on(sse_then([event], hang_up)) as gateway:
        response = await post(gateway, "/v1/chat/completions", {**TO_ANTHROPIC, "stream": True})
        assert response.status_code == 200
        events = sse_events(response.content)
        assert events and b'"error"' in events[-1], response.content
        assert b"[DONE]" not in response.content
        json.loads(events[-1])  # the error event is whole JSON, never glued to a half event
        await assert_still_serves(gateway)
    access = [r for r in caplog.records if r.name == "plano_trio.access" and "chat" in r.getMessage()]
    assert access and access[-1].fields["outcome"] == "upstream_error"  # type: ignore[attr-defined]


async def test_passthrough_stream_cut_mid_event_puts_the_error_on_a_fresh_line() -> None:
    first = b'data: {"id": "c", "choices": [{"index": 0, "delta": {"content": "a"}}]}\n\n'
    half = b'data: {"id": "c", "choi'
    async with gateway_on(sse_then([first, half], hang_up)) as gateway:
        response = await post(gateway, "/v1/chat/completions", {**CHAT, "stream": True})
        events = sse_events(response.content)
        assert len(events) == 2, response.content
        assert json.loads(events[0])["id"] == "c"
        assert "error" in json.loads(events[1])
        assert response.content.count(b'"choi') == 1  # the half event never reached the client


async def test_provider_silent_mid_stream_is_cut_by_the_idle_bound(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="plano_trio.access")
    first = b'data: {"id": "c", "choices": [{"index": 0, "delta": {"content": "a"}}]}\n\n'
    settings = "  upstream_read_timeout_s: 1"
    async with gateway_on(sse_then([first], stall), settings=settings, timeout="30s") as gateway:
        with trio.fail_after(10):
            response = await post(gateway, "/v1/chat/completions", {**CHAT, "stream": True})
        events = sse_events(response.content)
        assert "sent nothing for 1s" in json.loads(events[-1])["error"]["message"]
    access = [r for r in caplog.records if r.name == "plano_trio.access" and "chat" in r.getMessage()]
    assert access[-1].fields["outcome"] == "timeout"  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [999, 600])
async def test_impossible_status_is_502(status: int) -> None:
    async with gateway_on(json_reply(GOOD_CHAT_REPLY, status=status)) as gateway:
        response = await post(gateway, "/v1/chat/completions", CHAT)
        assert response.status_code == 502
        assert str(status) in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "path,body", [("/v1/chat/completions", CHAT), ("/v1/chat/completions", TO_ANTHROPIC)]
)
async def test_empty_close_delimited_200_is_502(path: str, body: dict[str, object]) -> None:
    async def script(stream: trio.SocketStream, request: bytes) -> None:
        await stream.send_all(head(200, ("content-type", "application/json")))
        await stream.aclose()

    async with gateway_on(script) as gateway:
        response = await post(gateway, path, body)
        assert response.status_code == 502
        assert "empty body" in response.json()["error"]["message"]


def _endless(sizes: list[int]) -> Script:
    async def script(stream: trio.SocketStream, request: bytes) -> None:
        await stream.send_all(
            head(200, ("content-type", "application/json"), ("transfer-encoding", "chunked"))
        )
        piece = chunk(b"x" * 65536)
        for _ in range(4000):  # 256 MiB if nobody stops it
            sizes.append(_rss())
            await stream.send_all(piece)

    return script


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


async def test_endless_body_to_a_translated_route_is_502_and_memory_stays_bounded() -> None:
    sizes: list[int] = []
    async with gateway_on(_endless(sizes)) as gateway:
        before = _rss()
        response = await post(gateway, "/v1/chat/completions", TO_ANTHROPIC)
        assert response.status_code == 502
        assert "limit of 1048576 bytes" in response.json()["error"]["message"]
        assert max(sizes) - before < 64 * 1024 * 1024
        await assert_still_serves(gateway)


async def test_endless_passthrough_body_is_streamed_then_cut_at_the_cap() -> None:
    sizes: list[int] = []
    async with gateway_on(_endless(sizes)) as gateway:
        before = _rss()
        with pytest.raises(httpx.RemoteProtocolError):
            await post(gateway, "/v1/chat/completions", CHAT)
        assert max(sizes) - before < 64 * 1024 * 1024
        await assert_still_serves(gateway)


async def test_huge_error_body_is_bounded() -> None:
    async def script(stream: trio.SocketStream, request: bytes) -> None:
        body = b'{"error": {"message": "' + b"x" * (3 * 1024 * 1024) + b'"}}'
        await stream.send_all(
            head(500, ("content-type", "application/json"), ("content-length", str(len(body))))
        )
        await stream.send_all(body)

    async with gateway_on(script) as gateway:
        response = await post(gateway, "/v1/chat/completions", TO_ANTHROPIC)
        assert response.status_code == 502
        assert "limit" in response.json()["error"]["message"]


async def test_unexpected_translator_failure_is_502_not_an_exception_group(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from plano_trio.gateway import relay

    def explode(self: object, data: bytes, plan: object) -> object:
        raise RuntimeError("bug")

    monkeypatch.setattr(relay.Relay, "_translate_body", explode)
    reply = json.dumps({"id": "m", "type": "message", "role": "assistant", "content": []}).encode()
    async with gateway_on(json_reply(reply)) as gateway:
        response = await post(gateway, "/v1/messages", {**CHAT, "max_tokens": 5})
        # /v1/messages to an OpenAI provider is translated; the error is Anthropic-shaped
        assert response.status_code == 502
        assert response.json()["type"] == "error"
        await assert_still_serves(gateway)
    assert any(
        "relaying the provider's answer failed" in r.getMessage() and r.exc_info for r in caplog.records
    )


# --- hostile clients -----------------------------------------------------------------------------------


async def test_declared_oversized_body_is_413_before_reading() -> None:
    async with gateway_on(json_reply(GOOD_CHAT_REPLY)) as gateway:
        request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 1000000000\r\n\r\n"
        )
        with trio.fail_after(5):
            received = await raw_exchange(gateway, request)
        assert received.startswith(b"HTTP/1.1 413")
        assert b'"request_too_large"' in received


async def test_stalled_body_is_408_and_the_connection_closes() -> None:
    async with gateway_on(json_reply(GOOD_CHAT_REPLY), settings="  client_body_timeout_s: 0.5") as gateway:
        request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{"
        with trio.fail_after(5):
            received = await raw_exchange(gateway, request)
        assert received.startswith(b"HTTP/1.1 408")
        assert b"connection: close" in received.lower()
        await assert_still_serves(gateway)


async def test_trickled_body_is_bounded_in_total() -> None:
    settings = "  client_body_timeout_s: 5\n  client_body_total_timeout_s: 1"
    async with gateway_on(json_reply(GOOD_CHAT_REPLY), settings=settings) as gateway:
        stream = await trio.open_tcp_stream(gateway.host, gateway.port)
        async with stream:
            await stream.send_all(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            received = b""
            with trio.fail_after(5):
                while not received:
                    await stream.send_all(b"1\r\n \r\n")
                    with trio.move_on_after(0.3):
                        received = await stream.receive_some(65536)
        assert received.startswith(b"HTTP/1.1 408")


async def test_headers_over_the_limit_in_one_write_are_431() -> None:
    async with gateway_on(json_reply(GOOD_CHAT_REPLY)) as gateway:
        filler = b"".join(b"x-fill-%d: %s\r\n" % (n, b"v" * 1000) for n in range(45))
        body = json.dumps(CHAT).encode()
        request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
            + filler
            + b"content-length: %d\r\n\r\n" % len(body)
            + body
        )
        received = await raw_exchange(gateway, request)
        assert received.split(b"\r\n", 1)[0] in (
            b"HTTP/1.1 431 ",
            b"HTTP/1.1 431 Request Header Fields Too Large",
        )


@pytest.mark.parametrize(
    "target",
    [b"/v1/models?q=" + b"a" * 17_000, b"/v1/" + b"b" * 17_000],
)
async def test_a_long_target_in_one_write_counts_against_the_head_bound(target: bytes) -> None:
    """h11 parses a whole head that arrives in one read whatever its size; the app counts the target."""
    async with gateway_on(json_reply(GOOD_CHAT_REPLY)) as gateway:
        received = await raw_exchange(gateway, b"GET " + target + b" HTTP/1.1\r\nhost: x\r\n\r\n")
        assert received.startswith(b"HTTP/1.1 431")
        assert (
            b"The request's target and headers are larger than the gateway's limit of 16384 bytes" in received
        )
        assert len(received) < 1000  # the answer does not echo the target back
        await assert_still_serves(gateway)


async def test_content_length_and_transfer_encoding_close_the_connection() -> None:
    async with gateway_on(json_reply(GOOD_CHAT_REPLY)) as gateway:
        body = json.dumps(CHAT).encode()
        request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n"
            b"transfer-encoding: chunked\r\n\r\n" + chunk(body) + b"0\r\n\r\n"
        )
        with trio.fail_after(5):
            received = await raw_exchange(gateway, request)
        response_head = received.split(b"\r\n\r\n", 1)[0].lower()
        assert b"connection: close" in response_head


async def test_admission_refuses_beyond_the_limit_and_healthz_still_answers() -> None:
    release = trio.Event()

    async def slow(stream: trio.SocketStream, request: bytes) -> None:
        await release.wait()
        await json_reply(GOOD_CHAT_REPLY)(stream, request)

    async with gateway_on(slow, settings="  max_concurrent_requests: 1") as gateway:
        async with trio.open_nursery() as nursery:
            first: list[httpx.Response] = []

            async def occupy() -> None:
                first.append(await post(gateway, "/v1/chat/completions", CHAT))

            nursery.start_soon(occupy)
            await trio.sleep(0.3)
            refused = await post(gateway, "/v1/chat/completions", CHAT)
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["code"] == "overloaded"
            await assert_still_serves(gateway)
            release.set()
        assert first[0].status_code == 200


async def _never_reading_clients(
    gateway: Gateway, body: dict[str, object], count: int
) -> list[trio.SocketStream]:
    data = json.dumps(body).encode()
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (
        len(data),
        data,
    )
    streams = []
    for _ in range(count):
        stream = await trio.open_tcp_stream(gateway.host, gateway.port)
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await stream.send_all(request)
        streams.append(stream)
    return streams


def _access(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "plano_trio.access"]


async def test_client_that_never_reads_a_whole_body_is_cut_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="plano_trio.access")
    big = json.dumps({**json.loads(GOOD_CHAT_REPLY), "pad": "x" * (24 * 1024 * 1024)}).encode()
    settings = "  client_send_timeout_s: 0.5"
    async with gateway_on(json_reply(big), settings=settings, cap=32 * 1024 * 1024) as gateway:
        streams = await _never_reading_clients(gateway, CHAT, 5)
        with trio.fail_after(10):  # each request ends (and frees its body) although nobody reads
            while len(_access(caplog)) < 5:
                await trio.sleep(0.1)
        for stream in streams:  # the gateway closed them: reading runs into the end, never blocks
            with trio.fail_after(5):
                while await _receive_or_reset(stream):
                    pass
            await stream.aclose()
        await assert_still_serves(gateway)


async def _receive_or_reset(stream: trio.SocketStream) -> bytes:
    try:
        return await stream.receive_some(1 << 20)
    except trio.BrokenResourceError:
        return b""


async def test_client_that_never_reads_a_stream_is_cut_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="plano_trio.access")
    event = b'data: {"id": "c", "choices": [{"index": 0, "delta": {"content": "' + b"x" * 60000 + b'"}}]}\n\n'

    async def endless_stream(stream: trio.SocketStream) -> None:
        for _ in range(2000):
            await stream.send_all(chunk(event))

    settings = "  client_send_timeout_s: 0.5"
    async with gateway_on(sse_then([], endless_stream), settings=settings, timeout="60s") as gateway:
        streams = await _never_reading_clients(gateway, {**CHAT, "stream": True}, 3)
        with trio.fail_after(10):
            while len(_access(caplog)) < 3:
                await trio.sleep(0.1)
        assert {r.fields["outcome"] for r in _access(caplog)} == {"client_disconnected"}  # type: ignore[attr-defined]
        for stream in streams:
            await stream.aclose()
        await assert_still_serves(gateway)


@pytest.mark.parametrize("value", [b"a b c", b"\xff\xfe", b"x" * 300, b"id\tstatus=200"])
async def test_unsafe_request_id_is_replaced(value: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="plano_trio.access")
    async with gateway_on(json_reply(GOOD_CHAT_REPLY)) as gateway, httpx.AsyncClient() as client:
        response = await client.get(f"{gateway.base}/healthz", headers={b"x-request-id": value})
        assert response.status_code == 200
        echoed = response.headers.get("x-request-id")
        assert echoed is None or echoed.encode() != value
    access = [r for r in caplog.records if r.name == "plano_trio.access"]
    assert len(access) == 1 and access[0].fields["request_id"].isalnum()  # type: ignore[attr-defined]


async def test_safe_request_id_is_kept() -> None:
    async with gateway_on(json_reply(GOOD_CHAT_REPLY)) as gateway, httpx.AsyncClient() as client:
        response = await client.post(
            f"{gateway.base}/v1/chat/completions", json=CHAT, headers={"x-request-id": "trace-42.a:b"}
        )
        assert response.headers["x-request-id"] == "trace-42.a:b"


async def test_stream_cut_by_the_shutdown_grace_period_ends_with_an_error_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="plano_trio.access")
    first = b'data: {"id": "c", "choices": [{"index": 0, "delta": {"content": "a"}}]}\n\n'
    async with scripted_provider(sse_then([first], stall)) as provider:
        loaded = load_config_text(config(provider.url, settings="  graceful_shutdown_s: 1", timeout="60s"))
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(serve, loaded, shutdown=shutdown))
            async with (
                httpx.AsyncClient(timeout=10) as client,
                client.stream(
                    "POST", f"{binds[0]}/v1/chat/completions", json={**CHAT, "stream": True}
                ) as response,
            ):
                received = b""
                async for piece in response.aiter_bytes():
                    received += piece
                    shutdown.set()  # after the first event: the grace period starts now
        events = sse_events(received)
        assert json.loads(events[0])["id"] == "c"
        assert "shutting down" in json.loads(events[-1])["error"]["message"]
        assert b"[DONE]" not in received
    access = [r for r in _access(caplog) if "chat" in r.getMessage()]
    assert access[-1].fields["outcome"] == "cut"  # type: ignore[attr-defined]


def test_send_guard_finds_writes_stalled_for_the_timeout() -> None:
    guard = SendGuard(2.0)  # ticks of 0.5 s; stalled after 4 ticks without progress
    streams = [GuardedStream(cast(trio.SocketStream, _FakeStream()), guard) for _ in range(3)]
    guard.streams.update(streams)
    streams[0].since = 0  # writing since tick 0
    streams[1].since = 2  # writing since tick 2
    # streams[2] is idle
    for tick, expected in [(3, []), (4, [streams[0]]), (5, [streams[0]]), (6, [streams[0], streams[1]])]:
        guard.tick = tick
        assert sorted(map(id, guard.stalled())) == sorted(map(id, expected)), tick


class _FakeStream:
    socket = None


async def test_send_guard_writes_nothing_for_an_empty_write() -> None:
    """hypercorn ends every chunked body with an empty write: it must not cost a syscall (shown on a
    closed socket, where any syscall would fail)."""
    ours, theirs = trio.socket.socketpair()
    guard = SendGuard(1.0)
    stream = GuardedStream(trio.SocketStream(ours), guard)
    await stream.send_all(b"abc")
    assert await theirs.recv(10) == b"abc"
    assert stream.since == -1  # idle again: the guard does not see a pending write
    ours.close()
    await stream.send_all(b"")
    with pytest.raises(trio.ClosedResourceError):
        await stream.send_all(b"abc")
    theirs.close()
