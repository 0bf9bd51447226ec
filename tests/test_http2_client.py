"""End to end over HTTP/2: the official OpenAI SDK speaking h2c (prior knowledge) to the real gateway.

The gateway's listeners are plain TCP; hypercorn recognises the HTTP/2 connection preface on them and
serves the connection as HTTP/2, so an SDK client needs no TLS for it.  httpx, though, only speaks
HTTP/2 over plain http:// when told it must (`http1=False`): with `http2=True` alone it has no ALPN to
negotiate with and stays on HTTP/1.1, which a test pins so the bench README's advice stays true.

The last two are about hostile (or merely unlucky) framing: a body's END_STREAM in a frame of its own
(httpx's way), and DATA for a stream the gateway already answered, which hypercorn 0.18 fails on.
"""

from __future__ import annotations

import contextlib
import json
import socket

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import httpx
import openai

from bench import h2load
from bench.h2load import late_end_stream
from bench.loadgen import Request
from tests.mock_provider import MockProvider
from tests.support import Gateway, in_thread, provider_config, running_gateway

_CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()


def h2c_sdk(gw: Gateway, http_client: httpx.Client) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gw.v1, api_key="client-key", max_retries=0, timeout=10, http_client=http_client
    )


async def test_sdk_over_h2c_non_streamed_and_streamed(mock: MockProvider) -> None:
    def run() -> tuple[str, str, str, str]:
        with httpx.Client(http2=True, http1=False) as http_client:
            client = h2c_sdk(gw, http_client)
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "reply with exactly: pong"}]
            )
            answer = raw.parse().choices[0].message.content or ""
            stream = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                extra_headers={"x-mock-chunks": "12"},
            )
            text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
            return raw.http_response.http_version, answer, stream.response.http_version, text

    async with running_gateway(provider_config(mock.url)) as gw:
        json_version, answer, stream_version, text = await in_thread(run)
    assert (json_version, answer) == ("HTTP/2", "pong")
    assert (stream_version, text) == ("HTTP/2", "Hello from mock")
    assert mock.requests[-1].json["stream"] is True


async def test_http2_true_alone_stays_on_http1_over_plain_http(mock: MockProvider) -> None:
    def run() -> str:
        with httpx.Client(http2=True) as http_client:
            raw = h2c_sdk(gw, http_client).chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            return raw.http_response.http_version

    async with running_gateway(provider_config(mock.url)) as gw:
        assert await in_thread(run) == "HTTP/1.1"


async def test_one_h2_connection_carries_more_than_hypercorns_default_cap(mock: MockProvider) -> None:
    """hypercorn closes a connection after `keep_alive_max_requests` (1,000 by default) with a GOAWAY
    that admits the streams in flight and then leaves them unanswered until its keep-alive timeout:
    the gateway lifts the cap, so 1,100 requests over one connection, 8 at a time, all complete."""
    async with running_gateway(provider_config(mock.url)) as gw:
        request = Request("127.0.0.1", gw.port, "/v1/chat/completions", _CHAT, stream=False)
        result = await in_thread(lambda: h2load.run(request, 1100, concurrency=8, timeout_s=10))
    assert (len(result.ok), result.reconnects, result.retried) == (1100, 0, 0)


async def test_late_end_stream_frame_keeps_the_connection(mock: MockProvider) -> None:
    """httpx (the OpenAI SDK) ends a request body with its own empty DATA frame, sent after the body.

    The gateway used to answer as soon as the declared length was in; that frame then arrived for a
    stream already answered, and hypercorn raised KeyError, which ended the connection and, escaping
    its TCPServer, the gateway.  Over HTTP/2 the gateway now reads a body to its END_STREAM."""
    async with running_gateway(provider_config(mock.url)) as gw:
        body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        request = Request(gw.host, gw.port, "/v1/chat/completions", body.encode(), stream=False)
        assert await in_thread(lambda: late_end_stream(request)) == (200, 200)


def _data_after_an_early_answer(host: str, port: int) -> int | None:
    """A request whose declared length is too large (answered 413 at once, before its body), then DATA
    for that stream anyway: the frame hypercorn 0.18 fails on.  The 413's status, None if none came."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    headers = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":authority", f"{host}:{port}".encode()),
        (b":path", b"/v1/chat/completions"),
        (b"content-type", b"application/json"),
        (b"content-length", b"999999999999"),
    ]
    status = None
    with socket.create_connection((host, port), timeout=10) as sock:
        conn.initiate_connection()
        conn.send_headers(1, headers)
        sock.sendall(conn.data_to_send())
        while status is None:
            data = sock.recv(65536)
            if not data:
                return None
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers or [])[b":status"])
        conn.send_data(1, b"{" * 100)  # no END_STREAM: the declared length is not reached, so h2 accepts it
        with contextlib.suppress(OSError):
            sock.sendall(conn.data_to_send())
            while sock.recv(65536):
                pass
    return status


async def test_data_for_an_answered_stream_closes_only_that_connection(mock: MockProvider) -> None:
    """hypercorn 0.18 raises KeyError on DATA for a stream it no longer holds; that ends the connection
    (logged), never the gateway: the next client is served."""
    async with running_gateway(provider_config(mock.url)) as gw:
        assert await in_thread(lambda: _data_after_an_early_answer(gw.host, gw.port)) == 413
        with httpx.Client(http2=True, http1=False) as http_client:
            answer = await in_thread(
                lambda: h2c_sdk(gw, http_client).chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "reply with exactly: pong"}]
                )
            )
    assert answer.choices[0].message.content == "pong"
