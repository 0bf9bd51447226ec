"""Faults found by reviewing the request path, each reproduced over real sockets first.

- a failover head timeout must fail over, not end the request, whatever the listener timeout;
- `Content-Length` with `Transfer-Encoding`: the chunked framing decides where the body ends;
- HTTP/2: the last send waits for the client's flow-control window, which no socket-write guard
  sees, so it is bounded on its own;
- a large JSON body cut mid-way ends visibly incomplete, never with an SSE error event appended;
- a request that reaches the upstream after shutdown's cut is cut as well.
"""

from __future__ import annotations

import json
from functools import partial

import h2.config
import h2.connection
import h2.settings
import httpx
import trio

from plano_trio.config import load_config_text
from plano_trio.server.serve import serve
from tests.failover_support import ANTHROPIC, PRIMARY, config, mocks, provider
from tests.mock_provider import MockProvider
from tests.scripted_provider import head, json_reply, scripted_provider
from tests.support import Gateway, provider_config, running_gateway

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
REPLY = json.dumps(
    {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    }
).encode()


async def test_head_timeout_fails_over_even_with_a_long_listener_timeout() -> None:
    async def silent(stream: trio.SocketStream, request: bytes) -> None:
        await trio.sleep_forever()

    policy = """
      on_timeout: {strategy: different_provider, max_attempts: 2}"""
    async with scripted_provider(silent) as primary:
        with mocks(1) as (fallback,):
            text = config(
                provider(PRIMARY, primary.url, policy=policy, default=True),
                provider(ANTHROPIC, fallback.url),
                timeout="5s",  # the pool's timer ticks every 1.25 s: it may fire up to 6.25 s in
            )
            async with running_gateway(text) as gw, httpx.AsyncClient(timeout=20) as client:
                response = await client.post(f"{gw.v1}/chat/completions", json={**CHAT, "model": PRIMARY})
    assert response.status_code == 200, response.text
    assert response.headers["x-plano-model"] == ANTHROPIC


async def test_chunked_framing_decides_the_body_end_despite_a_content_length() -> None:
    async with (
        scripted_provider(json_reply(REPLY)) as upstream,
        running_gateway(provider_config(upstream.url)) as gw,
    ):
        first = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
        second = b"THIS IS NOT JSON"
        stream = await trio.open_tcp_stream(gw.host, gw.port)
        async with stream:
            await stream.send_all(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\ntransfer-encoding: chunked\r\n\r\n"
                % len(first)
                + b"%x\r\n%s\r\n" % (len(first), first)
            )
            await trio.sleep(0.2)
            await stream.send_all(b"%x\r\n%s\r\n0\r\n\r\n" % (len(second), second))
            received = b""
            with trio.move_on_after(5):
                while chunk := await stream.receive_some(65536):
                    received += chunk
    assert received.startswith(b"HTTP/1.1 400"), received[:200]
    assert upstream.requests == []  # the first chunk alone never went upstream as "the body"


async def test_http2_client_with_a_closed_window_cannot_hold_the_request() -> None:
    with MockProvider() as mock:
        tail = "plano_trio:\n  client_send_timeout_s: 1\n  max_concurrent_requests: 1\n"
        async with running_gateway(provider_config(mock.url, tail=tail)) as gw:
            stream = await trio.open_tcp_stream(gw.host, gw.port)
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.local_settings = h2.settings.Settings(
                client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}
            )
            conn.initiate_connection()
            body = json.dumps(CHAT).encode()
            headers = [
                (":method", "POST"),
                (":path", "/v1/chat/completions"),
                (":scheme", "http"),
                (":authority", "x"),
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
            ]
            conn.send_headers(1, headers)
            conn.send_data(1, body, end_stream=True)
            await stream.send_all(conn.data_to_send())
            # The window stays shut, so the answer can never be delivered; with one admission slot,
            # the next request is refused (503) until that request ends, which the send bound ensures.
            async with httpx.AsyncClient(timeout=5) as client:
                with trio.fail_after(8):
                    while True:
                        response = await client.post(f"{gw.v1}/chat/completions", json=CHAT)
                        if response.status_code == 200:
                            break
                        assert response.status_code == 503
                        await trio.sleep(0.2)
            await stream.aclose()


async def test_large_json_body_cut_mid_way_is_left_visibly_incomplete() -> None:
    async def stalls_mid_body(stream: trio.SocketStream, request: bytes) -> None:
        await stream.send_all(
            head(200, ("content-type", "application/json"), ("transfer-encoding", "chunked"))
        )
        blob = b'{"id":"x","choices":[{"message":{"content":"' + b"a" * (1100 * 1024)
        await stream.send_all(b"%x\r\n%s\r\n" % (len(blob), blob))
        await trio.sleep_forever()

    async with scripted_provider(stalls_mid_body) as upstream:
        text = provider_config(upstream.url).replace("timeout: 10s", "timeout: 2s")
        async with running_gateway(text) as gw:
            stream = await trio.open_tcp_stream(gw.host, gw.port)
            async with stream:
                body = json.dumps(CHAT).encode()
                await stream.send_all(
                    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(body), body)
                )
                received = b""
                with trio.move_on_after(8):
                    while chunk := await stream.receive_some(65536):
                        received += chunk
    assert received.startswith(b"HTTP/1.1 200")
    assert b"data: {" not in received  # no SSE error event inside a JSON body
    assert not received.endswith(b"\r\n0\r\n\r\n")  # and no clean end of the chunked body


async def test_a_request_arriving_after_the_cut_is_cut_too() -> None:
    with MockProvider() as mock:
        loaded = load_config_text(provider_config(mock.url, tail="plano_trio:\n  graceful_shutdown_s: 2\n"))
        shutdown = trio.Event()
        received: list[bytes] = []
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(serve, loaded, shutdown=shutdown))
            gw = Gateway(binds[0])

            async def late_client() -> None:
                body = json.dumps({**CHAT, "stream": True}).encode()
                stream = await trio.open_tcp_stream(gw.host, gw.port)
                async with stream:
                    await stream.send_all(
                        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-mock-ttft-ms: 500\r\n"
                        b"x-mock-chunks: 50\r\nx-mock-delay-ms: 100\r\ncontent-length: %d\r\n\r\n%s"
                        % (len(body), body[:10])
                    )
                    await trio.sleep(2.0)  # the body completes after the cut (at 1.8 s)
                    await stream.send_all(body[10:])
                    data = b""
                    with trio.move_on_after(10):
                        while chunk := await stream.receive_some(65536):
                            data += chunk
                    received.append(data)

            nursery.start_soon(late_client)
            await trio.sleep(0.1)
            shutdown.set()
    answer = received[0]
    assert answer.startswith(b"HTTP/1.1 503"), answer[:300]
    assert b"shutdown" in answer
