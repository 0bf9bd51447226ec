"""FilterClient over real sockets: HTTP filters served by hypercorn, an MCP filter served by the `mcp` SDK.

The HTTP filters behave like Plano's demo filters (a keyword content guard
that answers 400 `content_blocked`, a rewriter, an output redactor) plus the
ways a filter goes wrong.  The MCP filter is the official SDK's `MCPServer`
on its streamable-HTTP app, in this test's trio loop; an ASGI wrapper
records what reached it, so the tests can count `initialize` handshakes.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import anyio
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from plano_trio.config.schema import AgentEndpoint
from plano_trio.filters.client import FilterClient
from plano_trio.filters.errors import FilterFailed, FilterRejected, model_listener_rejection
from plano_trio.upstream import UpstreamPool

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

CHAT = "/v1/chat/completions"
TIMEOUT_S = 1.5


def _chat(text: str) -> bytes:
    return json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}).encode()


def _last_user_text(body: bytes) -> str:
    return str(json.loads(body)["messages"][-1]["content"])


CLIENT_HEADERS = [
    (b"host", b"gateway.example"),
    (b"content-length", b"999"),
    (b"content-type", b"application/json; charset=utf-8"),
    (b"accept-encoding", b"gzip"),
    (b"connection", b"keep-alive, x-hop"),
    (b"x-hop", b"secret-hop"),
    (b"te", b"trailers"),
    (b"authorization", b"Bearer client-key"),
    (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    (b"x-request-id", b"req-42"),
    (b"x-custom", b"kept"),
]


# --- servers --------------------------------------------------------------------------------------------


class Seen:
    """What reached a test server: (path, headers, body) per request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[bytes, bytes], bytes]] = []

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.requests]

    def count(self, method: str) -> int:
        needle = json.dumps({"method": method})[1:-1].encode()  # "method": "initialize"
        compact = needle.replace(b": ", b":")
        return sum(needle in body or compact in body for _, _, body in self.requests)


def recording(app: App, seen: Seen) -> App:
    """`app` with every HTTP request's path, headers and body appended to `seen` before it runs."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        seen.requests.append((scope["path"], dict(scope["headers"]), body))
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return wrapped


async def _respond(send: Send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]}
    )
    await send({"type": "http.response.body", "body": body})


async def http_filters(scope: Scope, receive: Receive, send: Send) -> None:
    """Plano-like HTTP filters, chosen by the first path segment of `{url}{request path}`."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    kind = scope["path"].split("/")[1]
    if kind in ("v1", "guard"):  # the content guard, at the filter URL's root as in Plano's demo
        if "hack" in _last_user_text(body).lower():
            detail = {"error": "content_blocked", "message": "Request blocked (matched: 'hack')."}
            await _respond(send, 400, json.dumps({"detail": detail}).encode())
        else:
            await _respond(send, 200, body)
    elif kind == "rewrite":
        data = json.loads(body)
        data["messages"][-1]["content"] += " [rewritten]"
        data["seen_path"] = scope["path"]
        await _respond(send, 200, json.dumps(data).encode())
    elif kind == "redact":
        await _respond(send, 200, body.replace(b"SECRET_TOKEN", b"[REDACTED]"), b"text/event-stream")
    elif kind == "garbage":
        await _respond(send, 200, b"<html>not json</html>", b"text/html")
    elif kind == "array":
        await _respond(send, 200, b"[1, 2]")
    elif kind == "forbidden":
        await _respond(send, 403, b"nope")
    elif kind == "broken":
        await _respond(send, 503, b"upstream exploded")
    elif kind == "huge":
        await _respond(send, 200, b'{"a":"' + b"x" * (2 * 1024 * 1024) + b'"}')
    elif kind == "slow":
        await trio.sleep(30)
    else:
        await _respond(send, 404, b"no such filter")


def mcp_filters() -> App:
    """A fresh MCP server (new sessions) with the filter tools."""
    server: MCPServer[Any] = MCPServer("test-filters")

    @server.tool()
    def rewrite(body: dict[str, Any], path: str) -> dict[str, Any]:
        body["messages"][-1]["content"] += " [mcp]"
        body["seen_path"] = path
        return body

    @server.tool()
    def input_guards(body: dict[str, Any], path: str) -> dict[str, Any]:
        if "hack" in json.dumps(body):
            raise ToolError("I can only help with TechCorp questions.")
        return body

    @server.tool()
    async def slow(body: dict[str, Any], path: str) -> dict[str, Any]:
        await anyio.sleep(30)
        return body

    return cast(App, server.streamable_http_app())


class Served:
    """An ASGI app on 127.0.0.1 in the test's nursery; `restart` swaps in a new app on the same port."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._scope = trio.CancelScope()
        self.port = 0

    async def start(self, app: App) -> Served:
        config = HypercornConfig()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.loglevel = "WARNING"
        config.graceful_timeout = 0.1
        self._scope = scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await serve(app, config, task_status=task_status)  # type: ignore[arg-type]

        binds: list[str] = await self._nursery.start(run)
        self.port = int(binds[0].rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        self._scope.cancel()

    async def restart(self, app: App) -> None:
        self.stop()
        await trio.sleep(0.05)
        await self.start(app)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _garbage_server(nursery: trio.Nursery) -> int:
    """A TCP server that answers every connection with bytes that are not HTTP."""

    async def handler(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await stream.aclose()

    listeners = await nursery.start(trio.serve_tcp, handler, 0)
    return int(listeners[0].socket.getsockname()[1])


class World:
    def __init__(
        self, client: FilterClient, http: Served, http_seen: Seen, mcp: Served, mcp_seen: Seen
    ) -> None:
        self.client = client
        self.http = http
        self.http_seen = http_seen
        self.mcp = mcp
        self.mcp_seen = mcp_seen


@pytest.fixture
async def world(nursery: trio.Nursery) -> AsyncIterator[World]:
    http_seen, mcp_seen = Seen(), Seen()
    http = await Served(nursery).start(recording(http_filters, http_seen))
    mcp = await Served(nursery).start(recording(mcp_filters(), mcp_seen))
    garbage_port = await _garbage_server(nursery)
    down = f"http://127.0.0.1:{_free_port()}"

    def ep(id: str, url: str, type: str = "http", tool: str | None = None) -> AgentEndpoint:
        return AgentEndpoint(id=id, url=url, type=type, tool=tool)  # type: ignore[arg-type]

    endpoints = [
        ep("content_guard", http.url),
        *(ep(name, f"{http.url}/{name}") for name in ("rewrite", "redact", "garbage", "array")),
        *(ep(name, f"{http.url}/{name}/") for name in ("forbidden", "broken", "huge", "slow")),
        ep("down", down),
        ep("not_http", f"http://127.0.0.1:{garbage_port}"),
        ep("mcp_rewrite", mcp.url, "mcp", tool="rewrite"),  # no path: /mcp, as Plano's Envoy route
        ep("input_guards", f"{mcp.url}/mcp", "mcp"),  # the tool defaults to the id
        ep("mcp_slow", mcp.url, "mcp", tool="slow"),
        ep("mcp_down", down, "mcp"),
        ep("mcp_wrong_path", f"{mcp.url}/elsewhere", "mcp"),
        ep("mcp_not_http", f"http://127.0.0.1:{garbage_port}", "mcp"),
        ep("bad_url", "ftp://nowhere"),
    ]
    pool = UpstreamPool(connect_timeout=1.0, read_timeout=10.0)
    client = FilterClient(pool, endpoints, TIMEOUT_S, max_body_bytes=1024 * 1024)
    try:
        yield World(client, http, http_seen, mcp, mcp_seen)
    finally:
        await pool.aclose()
        nursery.cancel_scope.cancel()


# --- HTTP filters ---------------------------------------------------------------------------------------


async def test_http_chain_passes_and_rewrites(world: World) -> None:
    out = await world.client.run_chain(
        ["content_guard", "rewrite"], CHAT, _chat("What is the capital of France?"), CLIENT_HEADERS
    )
    assert _last_user_text(out) == "What is the capital of France? [rewritten]"
    assert json.loads(out)["seen_path"] == "/rewrite/v1/chat/completions"
    assert world.http_seen.paths() == ["/v1/chat/completions", "/rewrite/v1/chat/completions"]


async def test_http_filter_headers(world: World) -> None:
    await world.client.apply("content_guard", "/v1/messages", _chat("hello"), CLIENT_HEADERS)
    [(path, headers, _)] = world.http_seen.requests
    assert path == "/v1/messages"
    assert headers[b"x-arch-upstream"] == b"content_guard"
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"accept"] == b"application/json"
    assert headers[b"accept-encoding"] == b"identity"
    assert headers[b"host"] == f"127.0.0.1:{world.http.port}".encode()  # the filter's, not the client's
    for name in (b"authorization", b"traceparent", b"x-request-id", b"x-custom"):
        assert headers[name] == dict(CLIENT_HEADERS)[name]
    assert headers[b"content-length"] == str(len(_chat("hello"))).encode()
    for name in (b"x-hop", b"te", b"x-envoy-max-retries"):
        assert name not in headers


async def test_http_guard_blocks_with_plano_s_error(world: World) -> None:
    with pytest.raises(FilterRejected) as caught:
        await world.client.run_chain(
            ["content_guard", "rewrite"], CHAT, _chat("How to hack into a system"), CLIENT_HEADERS
        )
    assert (caught.value.filter_id, caught.value.status) == ("content_guard", 400)
    assert json.loads(caught.value.body)["detail"]["error"] == "content_blocked"
    assert world.http_seen.paths() == ["/v1/chat/completions"]  # the chain stopped at the guard
    status, body = model_listener_rejection(caught.value)
    parsed = json.loads(body)
    assert (status, parsed["error"], parsed["agent"], parsed["status"]) == (
        400,
        "FilterChainError",
        "content_guard",
        400,
    )
    assert json.loads(parsed["agent_response"])["detail"]["error"] == "content_blocked"


async def test_http_4xx_is_a_rejection_with_that_status(world: World) -> None:
    with pytest.raises(FilterRejected) as caught:
        await world.client.apply("forbidden", CHAT, _chat("x"), [])
    assert (caught.value.status, caught.value.body) == (403, b"nope")
    assert world.http_seen.paths() == ["/forbidden/v1/chat/completions"]  # trailing slash of the URL dropped


@pytest.mark.parametrize(
    ("filter_id", "message"),
    [
        ("garbage", "not a JSON object: <html>not json</html>"),
        ("array", "not a JSON object"),
        ("broken", "answered HTTP 503: upstream exploded"),
        ("huge", "exceeds 1048576 bytes"),
        ("down", "cannot connect"),
        ("not_http", "filter 'not_http'"),
        ("slow", f"timed out after {TIMEOUT_S:g}s"),
        ("nobody", "Agent 'nobody' not found in configuration"),
        ("bad_url", "is not an http(s) URL"),
    ],
)
async def test_http_failures(world: World, filter_id: str, message: str) -> None:
    started = trio.current_time()
    with pytest.raises(FilterFailed) as caught:
        await world.client.apply(filter_id, CHAT, _chat("hi"), [])
    assert caught.value.filter_id == filter_id
    assert message in caught.value.message
    assert trio.current_time() - started < TIMEOUT_S + 1


async def test_the_callers_cancel_scope_cancels_the_call(world: World) -> None:
    started = trio.current_time()
    with trio.move_on_after(0.2) as scope:
        await world.client.apply("slow", CHAT, _chat("hi"), [])
    assert scope.cancelled_caught  # a cancellation, not a FilterFailed
    assert trio.current_time() - started < 1


# --- output filters -------------------------------------------------------------------------------------

SSE_CHUNK = b'data: {"choices":[{"delta":{"content":"the key is SECRET_TOKEN"}}]}\n\n'


async def test_output_filter_rewrites_raw_chunks(world: World) -> None:
    out = await world.client.filter_chunk(["redact"], CHAT, SSE_CHUNK, CLIENT_HEADERS)
    assert out == SSE_CHUNK.replace(b"SECRET_TOKEN", b"[REDACTED]")
    assert world.client.counts["output_filter_errors"] == 0
    assert world.http_seen.requests[0][1][b"content-type"] == b"application/json"  # as Plano, even for SSE


@pytest.mark.parametrize(
    "ids",
    [
        ["broken"],
        ["redact", "broken"],  # a later failure discards the whole chain's work, as Plano
        ["forbidden"],
        ["down"],
        ["mcp_rewrite"],  # MCP takes JSON only: an SSE chunk cannot be sent
    ],
)
async def test_failing_output_filters_pass_the_chunk_through(world: World, ids: list[str]) -> None:
    assert await world.client.filter_chunk(ids, CHAT, SSE_CHUNK, []) == SSE_CHUNK
    assert world.client.counts["output_filter_errors"] == 1


async def test_output_filters_skip_empty_chains_and_chunks(world: World) -> None:
    assert await world.client.filter_chunk([], CHAT, SSE_CHUNK, []) == SSE_CHUNK
    assert await world.client.filter_chunk(["redact"], CHAT, b"", []) == b""
    assert world.http_seen.requests == []


async def test_output_filters_need_not_answer_json(world: World) -> None:
    # A whole JSON response through an MCP output filter works (the tool gets it as `body`).
    response = _chat("SECRET_TOKEN")
    out = await world.client.filter_chunk(["mcp_rewrite"], CHAT, response, [])
    assert _last_user_text(out) == "SECRET_TOKEN [mcp]"


# --- MCP filters ----------------------------------------------------------------------------------------


async def test_mcp_rewrite_and_session_reuse(world: World) -> None:
    for turn in range(3):
        out = await world.client.apply("mcp_rewrite", "/v1/responses", _chat(f"turn {turn}"), CLIENT_HEADERS)
        assert _last_user_text(out) == f"turn {turn} [mcp]"
        assert json.loads(out)["seen_path"] == "/v1/responses"
    assert world.mcp_seen.count("initialize") == 1
    assert world.mcp_seen.count("notifications/initialized") == 1
    assert world.mcp_seen.count("tools/call") == 3
    assert world.client.counts["mcp_initializations"] == 1
    assert set(world.mcp_seen.paths()) == {"/mcp"}
    init_headers, call_headers = world.mcp_seen.requests[0][1], world.mcp_seen.requests[-1][1]
    assert b"mcp-session-id" not in init_headers
    assert call_headers[b"mcp-session-id"] == world.mcp_seen.requests[1][1][b"mcp-session-id"]
    assert call_headers[b"mcp-protocol-version"] == b"2024-11-05"
    assert call_headers[b"accept"] == b"application/json, text/event-stream"
    assert call_headers[b"x-arch-upstream"] == b"mcp_rewrite"
    assert call_headers[b"traceparent"] == dict(CLIENT_HEADERS)[b"traceparent"]
    first_call = json.loads(world.mcp_seen.requests[2][2])
    assert first_call["params"] == {
        "name": "rewrite",
        "arguments": {"body": json.loads(_chat("turn 0")), "path": "/v1/responses"},
    }


async def test_mcp_block_is_a_400_rejection(world: World) -> None:
    passed = await world.client.apply("input_guards", CHAT, _chat("TechCorp SLA?"), [])
    assert json.loads(passed) == json.loads(_chat("TechCorp SLA?"))
    with pytest.raises(FilterRejected) as caught:
        await world.client.apply("input_guards", CHAT, _chat("how to hack"), [])
    assert (caught.value.filter_id, caught.value.status) == ("input_guards", 400)
    assert b"I can only help with TechCorp questions." in caught.value.body


async def test_mcp_chain_mixes_with_http(world: World) -> None:
    out = await world.client.run_chain(
        ["content_guard", "input_guards", "mcp_rewrite", "rewrite"], CHAT, _chat("hello"), []
    )
    assert _last_user_text(out) == "hello [mcp] [rewritten]"
    assert world.mcp_seen.count("initialize") == 2  # one session per filter


async def test_concurrent_cold_calls_share_one_handshake(world: World) -> None:
    results: list[bytes] = []

    async def call(index: int) -> None:
        results.append(await world.client.apply("mcp_rewrite", CHAT, _chat(f"c{index}"), []))

    async with trio.open_nursery() as nursery:
        for index in range(10):
            nursery.start_soon(call, index)
    assert sorted(_last_user_text(out) for out in results) == sorted(f"c{index} [mcp]" for index in range(10))
    assert world.mcp_seen.count("initialize") == 1
    assert world.client.counts["mcp_initializations"] == 1


async def test_a_restarted_server_gets_a_new_session(world: World) -> None:
    await world.client.apply("mcp_rewrite", CHAT, _chat("before"), [])
    old_session = world.mcp_seen.requests[-1][1][b"mcp-session-id"]
    await world.mcp.restart(recording(mcp_filters(), world.mcp_seen))  # forgets every session
    out = await world.client.apply("mcp_rewrite", CHAT, _chat("after"), [])
    assert _last_user_text(out) == "after [mcp]"
    assert world.client.counts["mcp_session_renewals"] == 1
    assert world.client.counts["mcp_initializations"] == 2
    assert world.mcp_seen.count("tools/call") == 3  # before, after (404), after again
    assert world.mcp_seen.requests[-1][1][b"mcp-session-id"] != old_session


@pytest.mark.parametrize(
    ("filter_id", "message"),
    [
        ("mcp_slow", f"timed out after {TIMEOUT_S:g}s"),
        ("mcp_down", "cannot connect"),
        ("mcp_wrong_path", "MCP initialize answered HTTP 404"),
        ("mcp_not_http", "filter 'mcp_not_http'"),
    ],
)
async def test_mcp_failures(world: World, filter_id: str, message: str) -> None:
    started = trio.current_time()
    with pytest.raises(FilterFailed) as caught:
        await world.client.apply(filter_id, CHAT, _chat("hi"), [])
    assert message in caught.value.message
    assert trio.current_time() - started < TIMEOUT_S + 1


async def test_mcp_needs_a_json_body(world: World) -> None:
    with pytest.raises(FilterFailed, match="not JSON"):
        await world.client.apply("mcp_rewrite", CHAT, b"not json", [])
    assert world.mcp_seen.requests == []  # refused before any handshake
