"""Every bad input a client can send gets a clear OpenAI error JSON, and the gateway keeps serving."""

from __future__ import annotations

from collections.abc import AsyncIterator

import h11
import httpx
import pytest
import trio

from tests.mock_provider import MockProvider
from tests.support import provider_config, running_gateway

OK_BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}'


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "needle"),
    [
        ("POST", "/v1/chat/completions", b"{not json", 400, "not valid JSON"),
        ("POST", "/v1/chat/completions", b"", 400, "empty"),
        ("POST", "/v1/chat/completions", b"[1,2]", 400, "Invalid chat completion request"),
        ("POST", "/v1/chat/completions", b'{"model":"gpt-4o-mini","input":"x"}', 400, "'messages'"),
        ("POST", "/v1/chat/completions", b'{"messages":[]}', 400, "'model'"),
        ("POST", "/v1/chat/completions", b'{"model":7,"messages":[]}', 400, "$.model"),
        ("POST", "/v1/chat/completions", b'{"model":"gpt-4o-mini","messages":{}}', 400, "$.messages"),
        (
            "POST",
            "/v1/chat/completions",
            b'{"model":"gpt-4o-mini","messages":[],"stream":"yes"}',
            400,
            "$.stream",
        ),
        ("POST", "/v1/chat/completions", "\u00ff".encode("latin-1"), 400, "not valid JSON"),
        ("GET", "/v1/chat/completions", b"", 405, "not allowed"),
        ("DELETE", "/v1/models", b"", 405, "not allowed"),
        ("POST", "/v1/nothing-here", OK_BODY, 404, "Unknown path"),
        ("GET", "/", b"", 404, "Unknown path"),
    ],
)
async def test_bad_request_gets_openai_error(
    mock: MockProvider, method: str, path: str, body: bytes, status: int, needle: str
) -> None:
    async with running_gateway(provider_config(mock.url)) as gw, httpx.AsyncClient() as client:
        response = await client.request(
            method, gw.base + path, content=body, headers={"content-type": "application/json"}
        )
        still_ok = await client.post(f"{gw.v1}/chat/completions", content=OK_BODY)
    assert response.status_code == status
    error = response.json()["error"]
    assert needle in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert response.headers["x-request-id"]
    if status == 405:
        assert response.headers["allow"]
    assert still_ok.status_code == 200
    assert len(mock.requests) == 1  # only the good request reached the provider


async def _pieces(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_body_over_limit_is_413(mock: MockProvider) -> None:
    config = provider_config(mock.url, tail="plano_trio:\n  max_request_body_bytes: 1024\n")
    big = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"' + b"a" * 4096 + b'"}]}'
    async with running_gateway(config) as gw, httpx.AsyncClient() as client:
        response = await client.post(f"{gw.v1}/chat/completions", content=big)
        chunked = await client.post(f"{gw.v1}/chat/completions", content=_pieces(big[:600], big[600:]))
    assert response.status_code == 413
    assert "1024" in response.json()["error"]["message"]
    assert chunked.status_code == 413
    assert mock.requests == []


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v1/messages", b"{oops", 400, "not valid JSON"),
        ("/v1/messages", b'{"model":"gpt-4o-mini","max_tokens":5}', 400, "'messages'"),
        ("/v1/messages", b'{"model":"nope","max_tokens":5,"messages":[]}', 400, "Model 'nope' not found"),
        (
            "/v1/messages",
            b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"x"}]}]}',
            400,
            "",
        ),
        ("/v1/responses", b"[]", 400, "Invalid responses request"),
        ("/v1/responses", b'{"model":"gpt-4o-mini"}', 400, "'input'"),
        (
            "/v1/responses",
            b'{"model":"groq/llama-3.3-70b","input":"x","previous_response_id":"resp_1"}',
            400,
            "previous_response_id",
        ),
    ],
)
async def test_bad_messages_and_responses_requests(
    mock: MockProvider, path: str, body: bytes, status: int, needle: str
) -> None:
    async with running_gateway(provider_config(mock.url)) as gw, httpx.AsyncClient() as client:
        response = await client.post(
            gw.base + path,
            content=body,
            headers={"content-type": "application/json", "authorization": "Bearer k"},
        )
    assert response.status_code == status
    payload = response.json()
    if path == "/v1/messages":  # the Anthropic SDK's error shape
        assert payload["type"] == "error" and set(payload["error"]) == {"type", "message"}
        assert needle in payload["error"]["message"]
    else:
        assert needle in payload["error"]["message"]
    assert mock.requests == []


async def _next_response(stream: trio.SocketStream, client: h11.Connection) -> tuple[h11.Response, bytes]:
    """The next whole response on `stream`, parsed by `client`."""
    head: h11.Response | None = None
    body = b""
    with trio.fail_after(5):
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                client.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return head, body


@pytest.mark.parametrize(
    ("tail", "keeps_connection"),
    [("", True), ("plano_trio:\n  max_request_body_bytes: 16\n", False)],
    ids=["body-read-and-dropped", "body-over-limit-closes"],
)
async def test_refused_before_its_body_arrived_keeps_the_connection_usable(
    mock: MockProvider, tail: str, keeps_connection: bool
) -> None:
    """A request refused on its path alone (404) whose body arrives after its head: the gateway reads
    the body (bounded) before answering, so the keep-alive connection serves the next request; a body
    past the limit is not read, and the answer says `connection: close`."""
    async with running_gateway(provider_config(mock.url, tail=tail)) as gw:
        stream = await trio.open_tcp_stream(gw.host, gw.port)
        client = h11.Connection(h11.CLIENT)
        head = h11.Request(
            method="POST",
            target="/v1/nothing-here",
            headers=[(b"host", b"x"), (b"content-length", str(len(OK_BODY)).encode())],
        )
        await stream.send_all(client.send(head))
        await trio.sleep(0.2)  # the head alone first: the route is refused before the body exists
        await stream.send_all(client.send(h11.Data(data=OK_BODY)) + client.send(h11.EndOfMessage()))
        response, body = await _next_response(stream, client)
        assert response.status_code == 404 and b"Unknown path" in body
        closes = (b"connection", b"close") in list(response.headers)
        assert closes is not keeps_connection
        if keeps_connection:
            client.start_next_cycle()
            await stream.send_all(
                client.send(h11.Request(method="GET", target="/v1/models", headers=[(b"host", b"x")]))
            )
            await stream.send_all(client.send(h11.EndOfMessage()))
            models, _ = await _next_response(stream, client)
            assert models.status_code == 200
        await stream.aclose()
    assert mock.requests == []
