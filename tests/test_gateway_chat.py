"""End to end: the official OpenAI SDK → the real gateway → the mock provider's socket."""

from __future__ import annotations

import json
import socket
import time

import httpx
import openai
import pytest
import trio

from tests.mock_provider import MockProvider
from tests.support import (
    Gateway,
    dechunked_body,
    in_thread,
    provider_config,
    raw_exchange,
    running_gateway,
    task_names,
)


def sdk(gw: Gateway, api_key: str = "client-key") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=api_key, max_retries=0, timeout=10)


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "gpt-4o-mini", "fast"])
async def test_non_streaming_by_full_name_bare_id_and_alias(mock: MockProvider, model: str) -> None:
    async with running_gateway(provider_config(mock.url)) as gw:
        completion = await in_thread(
            lambda: sdk(gw).chat.completions.create(
                model=model, messages=[{"role": "user", "content": "reply with exactly: pong"}]
            )
        )
    assert completion.choices[0].message.content == "pong"
    seen = mock.requests[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.json["model"] == "gpt-4o-mini"
    assert seen.headers["authorization"] == "Bearer server-key"
    assert "client-key" not in json.dumps(seen.headers)


async def test_streaming_chat(mock: MockProvider) -> None:
    def run() -> tuple[str, list[str | None]]:
        stream = sdk(gw).chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-mock-chunks": "12"},
        )
        text, finishes = "", []
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finishes.append(chunk.choices[0].finish_reason)
        return text, finishes

    async with running_gateway(provider_config(mock.url)) as gw:
        text, finishes = await in_thread(run)
    assert text == "Hello from mock"
    assert finishes[-1] == "stop"
    assert mock.requests[-1].json["stream"] is True


async def test_streamed_tool_call_arguments_reassemble(mock: MockProvider) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]

    def run() -> tuple[str, str]:
        stream = sdk(gw).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "call tool"}], tools=tools, stream=True
        )
        name, args = "", ""
        for chunk in stream:
            for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                name += call.function.name or "" if call.function else ""
                args += call.function.arguments or "" if call.function else ""
        return name, args

    async with running_gateway(provider_config(mock.url)) as gw:
        name, args = await in_thread(run)
    assert name == "get_weather"
    assert json.loads(args) == {"location": "Seattle"}


async def test_wildcard_model_and_vendor_fields_survive(mock: MockProvider) -> None:
    async with running_gateway(provider_config(mock.url)) as gw:
        await in_thread(
            lambda: sdk(gw).chat.completions.create(
                model="openai/o9-preview",
                messages=[{"role": "user", "content": "hi"}],
                extra_body={
                    "x_vendor": {"keep": [1, 2.5, "é"]},
                    "routing_preferences": [{"name": "x", "description": "d", "models": ["openai/gpt-4o"]}],
                },
            )
        )
    body = mock.requests[-1].json
    assert body["model"] == "o9-preview"
    assert body["x_vendor"] == {"keep": [1, 2.5, "é"]}
    assert "routing_preferences" not in body


async def test_passthrough_auth_forwards_client_key(mock: MockProvider) -> None:
    async with running_gateway(provider_config(mock.url)) as gw:
        await in_thread(
            lambda: sdk(gw, api_key="users-own").chat.completions.create(
                model="groq/llama-3.3-70b", messages=[{"role": "user", "content": "hi"}]
            )
        )
    seen = mock.requests[-1]
    assert seen.path == "/openai/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer users-own"


async def test_models_listing_and_cors(mock: MockProvider) -> None:
    async with running_gateway(provider_config(mock.url)) as gw:
        models = await in_thread(lambda: sdk(gw).models.list())
        async with httpx.AsyncClient() as raw:  # httpx here is only the test's client
            options = await raw.request("OPTIONS", f"{gw.v1}/models")
            health = await raw.get(f"{gw.base}/healthz")
    ids = [m.id for m in models.data]
    assert ids[0] == "openai/gpt-4o-mini" and ids[-1] == "groq/llama-3.3-70b"  # `openai/*` expanded between
    assert "openai/gpt-4o" in ids and ids.count("openai/gpt-4o-mini") == 1
    assert models.data[0].owned_by == "OpenAI"
    assert options.status_code == 204
    assert options.headers["access-control-allow-origin"] == "*"
    assert health.status_code == 200


async def test_unknown_model_is_openai_error_naming_it(mock: MockProvider) -> None:
    async with running_gateway(provider_config(mock.url)) as gw:
        with pytest.raises(openai.BadRequestError) as caught:
            await in_thread(
                lambda: sdk(gw).chat.completions.create(
                    model="nope-1", messages=[{"role": "user", "content": "x"}]
                )
            )
    assert caught.value.status_code == 400
    assert "nope-1" in caught.value.message
    assert caught.value.code == "model_not_found"
    assert mock.requests == []


async def test_upstream_error_status_and_body_pass_through(mock: MockProvider) -> None:
    async with running_gateway(provider_config(mock.url)) as gw:
        with pytest.raises(openai.RateLimitError) as caught:
            await in_thread(
                lambda: sdk(gw).chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "x"}],
                    extra_headers={"x-mock-status": "429", "x-mock-error-message": "slow down please"},
                )
            )
    assert caught.value.status_code == 429
    assert "slow down please" in caught.value.message


async def test_mid_stream_drop_ends_with_error_not_done(mock: MockProvider) -> None:
    def run() -> list[str]:
        got: list[str] = []
        stream = sdk(gw).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            extra_headers={"x-mock-drop-after": "2", "x-mock-chunks": "10"},
        )
        for chunk in stream:
            got.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
        return got

    async with running_gateway(provider_config(mock.url)) as gw:
        with pytest.raises(openai.APIError) as caught:
            await in_thread(run)
        # raw view: the error event is there and no fake [DONE]
        async with httpx.AsyncClient() as raw:
            response = await raw.post(
                f"{gw.v1}/chat/completions",
                json={"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "x"}]},
                headers={"x-mock-drop-after": "2", "x-mock-chunks": "10"},
            )
    assert "broke off" in caught.value.message
    assert b"[DONE]" not in response.content
    assert b'"stream_interrupted"' in response.content


async def test_client_disconnect_cancels_upstream(mock: MockProvider) -> None:
    """Through our server edge an HTTP/1.1 request is watched by its connection's end, which the edge
    reports (`gateway.request_scope`): no task of its own waits for the ASGI disconnect, and closing the
    connection still ends the upstream call at once."""
    async with running_gateway(provider_config(mock.url)) as gw:
        stream = await trio.open_tcp_stream(gw.host, gw.port)
        await stream.send_all(_raw_stream_request("1.1", "x-mock-chunks: 200\r\nx-mock-delay-ms: 50"))
        first = await stream.receive_some(65536)
        assert b"200" in first.split(b"\r\n", 1)[0]
        assert not [name for name in task_names() if "watch_client" in name]
        closed_at = time.monotonic()
        await stream.aclose()
        seen = await in_thread(
            lambda: mock.wait_for(lambda m: any(kind == "disconnect" for _, kind, _ in m.events), timeout=5)
        )
    assert seen, "the mock never saw its upstream connection close"
    disconnect_at = next(t for t, kind, _ in mock.events if kind == "disconnect")
    assert disconnect_at - closed_at < 0.5


def _raw_stream_request(version: str, headers: str) -> bytes:
    """A streamed chat request as an HTTP/`version` client writes it, with extra header lines."""
    body = json.dumps(
        {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/{version}\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"{headers}\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def test_a_stream_is_chunked_for_http11_and_close_delimited_for_http10(mock: MockProvider) -> None:
    """Streamed events skip hypercorn's per-message path on HTTP/1.1 (the connection frames them as
    chunks itself); an HTTP/1.0 client, which cannot read chunks, gets them the ASGI way, unframed,
    ended by the connection's close.  Both parse back to the same events."""
    async with running_gateway(provider_config(mock.url)) as gw:
        http11, http10 = [
            await raw_exchange(gw, _raw_stream_request(version, "connection: close\r\nx-mock-chunks: 5"))
            for version in ("1.1", "1.0")
        ]
    events = dechunked_body(http11)
    head10, _, body10 = http10.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head10.lower()
    for body in (events, body10):  # the same events, framed and not
        assert _chat_text(body) == "Hello from mock"
        assert body.endswith(b"data: [DONE]\n\n")


def _chat_text(sse: bytes) -> str:
    chunks = [json.loads(line[6:]) for line in sse.split(b"\n") if line.startswith(b"data: {")]
    return "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])


async def test_upstream_unreachable_is_502(mock: MockProvider) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    extra = f"""  - model: mistral/m-dead
    access_key: k
    base_url: http://127.0.0.1:{dead_port}
"""
    async with running_gateway(provider_config(mock.url, extra_providers=extra)) as gw:
        with pytest.raises(openai.InternalServerError) as caught:
            await in_thread(
                lambda: sdk(gw).chat.completions.create(
                    model="m-dead", messages=[{"role": "user", "content": "x"}]
                )
            )
    assert caught.value.status_code == 502
    assert f"127.0.0.1:{dead_port}" in caught.value.message


async def test_listener_timeout_is_504(mock: MockProvider) -> None:
    config = provider_config(mock.url).replace("timeout: 10s", "timeout: 0.3s")
    async with running_gateway(config) as gw:
        with pytest.raises(openai.APIStatusError) as caught:
            await in_thread(
                lambda: sdk(gw).chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "x"}],
                    extra_headers={"x-mock-ttft-ms": "2000"},
                )
            )
    assert caught.value.status_code == 504


async def test_missing_provider_key_names_provider(mock: MockProvider) -> None:
    extra = """  - model: deepseek/deepseek-chat
"""
    async with running_gateway(provider_config(mock.url, extra_providers=extra)) as gw:
        with pytest.raises(openai.BadRequestError) as caught:
            await in_thread(
                lambda: sdk(gw).chat.completions.create(
                    model="deepseek-chat", messages=[{"role": "user", "content": "x"}]
                )
            )
    assert "deepseek/deepseek-chat" in caught.value.message
    assert mock.requests == []


async def test_h2c_prior_knowledge(mock: MockProvider) -> None:
    async with (
        running_gateway(provider_config(mock.url)) as gw,
        httpx.AsyncClient(http1=False, http2=True) as client,
    ):
        response = await client.post(
            f"{gw.v1}/chat/completions",
            json={
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "reply with exactly: h2"}],
            },
        )
    assert response.http_version == "HTTP/2"
    assert response.json()["choices"][0]["message"]["content"] == "h2"


async def test_request_id_honoured_or_generated(mock: MockProvider) -> None:
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    async with running_gateway(provider_config(mock.url)) as gw, httpx.AsyncClient() as client:
        given = await client.post(
            f"{gw.v1}/chat/completions", json=payload, headers={"x-request-id": "abc-123"}
        )
        generated = await client.post(f"{gw.v1}/chat/completions", json=payload)
    assert given.headers["x-request-id"] == "abc-123"
    assert mock.requests[0].headers["x-request-id"] == "abc-123"
    assert len(generated.headers["x-request-id"]) == 32
    assert mock.requests[1].headers["x-request-id"] == generated.headers["x-request-id"]


async def test_upstream_connections_are_reused(mock: MockProvider) -> None:
    async with running_gateway(provider_config(mock.url)) as gw:
        client = sdk(gw)
        for _ in range(4):
            await in_thread(
                lambda: client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
                )
            )
    assert len(mock.requests) == 4
    assert mock.connections_opened == 1
