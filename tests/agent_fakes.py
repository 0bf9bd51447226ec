"""Fake agents for agent-listener tests: small OpenAI Chat servers on real sockets.

A `FakeAgent` answers like Plano's demo agents (an SSE stream of chat
chunks, whatever the request's `stream` says) unless told otherwise: a
whole JSON completion, an error status, raw bytes, a delay, or a stream
that starts and then hangs until the gateway hangs up (recorded in `gone`).
Every request's path, headers and decoded body are kept.

`running_agent_listener` serves one agent listener of a config the way
`server.serve` does (hypercorn-trio, our `serve_app`), alone, so a test can
hand it a scripted filter client or orchestrator options
(`test_agent_serve` runs the whole server).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Literal

import trio
from hypercorn.utils import wrap_app
from scripted_provider import chunk, head, scripted_provider

from plano_trio.config import load_config_text
from plano_trio.filters.client import FilterClient
from plano_trio.gateway.agents import AgentListenerApp, FilterChain
from plano_trio.gateway.runtime import Runtime
from plano_trio.server.listen import serve_app
from plano_trio.server.serve import hypercorn_config
from tests.support import Gateway

Mode = Literal["sse", "json", "status", "raw", "hang"]


class AgentRequest:
    def __init__(self, path: str, headers: dict[str, str], body: Any) -> None:
        self.path = path
        self.headers = headers
        self.body = body

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body["messages"]
        return messages


class FakeAgent:
    def __init__(self, name: str, reply: str) -> None:
        self.name = name
        self.reply = reply
        self.mode: Mode = "sse"
        self.status = 200
        self.error_body = b'{"detail": "no such city"}'
        self.raw = b""
        self.raw_type = "application/json"
        self.delay_s = 0.0
        self.requests: list[AgentRequest] = []
        self.gone = trio.Event()
        """Set when a hanging agent saw the gateway close the connection."""
        self.url = ""

    def chunks(self) -> list[dict[str, Any]]:
        base = {
            "id": f"chatcmpl-{self.name}",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o",
        }
        words = self.reply.split(" ")
        pieces = [word if i == 0 else " " + word for i, word in enumerate(words)]
        out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
        out += [{**base, "choices": [{"index": 0, "delta": {"content": piece}}]} for piece in pieces]
        out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        return out

    def completion(self) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{self.name}",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": self.reply}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        }

    async def script(self, stream: trio.SocketStream, request: bytes) -> None:
        head_bytes, _, body = request.partition(b"\r\n\r\n")
        lines = head_bytes.split(b"\r\n")
        path = lines[0].split(b" ")[1].decode()
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode()] = value.strip().decode("latin-1")
        try:
            decoded: Any = json.loads(body)
        except ValueError:
            decoded = body
        self.requests.append(AgentRequest(path, headers, decoded))
        if self.delay_s:
            await trio.sleep(self.delay_s)
        if self.mode == "status":
            reply = head(
                self.status,
                ("content-type", "application/json"),
                ("content-length", str(len(self.error_body))),
            )
            await stream.send_all(reply + self.error_body)
        elif self.mode == "raw":
            reply = head(200, ("content-type", self.raw_type), ("content-length", str(len(self.raw))))
            await stream.send_all(reply + self.raw)
        elif self.mode == "json":
            payload = json.dumps(self.completion()).encode()
            reply = head(200, ("content-type", "application/json"), ("content-length", str(len(payload))))
            await stream.send_all(reply + payload)
        else:
            await stream.send_all(
                head(200, ("content-type", "text/event-stream"), ("transfer-encoding", "chunked"))
            )
            chunks = self.chunks()
            if self.mode == "hang":
                await stream.send_all(chunk(b"data: " + json.dumps(chunks[0]).encode() + b"\n\n"))
                while await stream.receive_some(65536):
                    pass
                self.gone.set()
                return
            for item in chunks:
                await stream.send_all(chunk(b"data: " + json.dumps(item).encode() + b"\n\n"))
            await stream.send_all(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")


@asynccontextmanager
async def fake_agent(name: str, reply: str) -> AsyncIterator[FakeAgent]:
    agent = FakeAgent(name, reply)
    async with scripted_provider(agent.script) as provider:
        agent.url = provider.url
        yield agent


@asynccontextmanager
async def running_agent_listener(
    config_text: str, filters: FilterChain | None = None, *, real_filters: bool = False, **options: Any
) -> AsyncIterator[Gateway]:
    """Serve the config's first agent listener in-process until the block ends (`real_filters`: with
    the filter client over the runtime's pool, as the server would give it)."""
    config = load_config_text(config_text, env={})
    listener = next(item for item in config.listeners if item.type == "agent")
    runtime = Runtime(config)
    if real_filters:
        filters = FilterClient(runtime.pool, config.agents, 5.0)
    shutdown = trio.Event()
    hconfig = hypercorn_config(listener, config.server.graceful_shutdown_s)
    app = wrap_app(
        AgentListenerApp(listener, runtime, filters, **options), hconfig.wsgi_max_body_size, "asgi"
    )  # type: ignore[arg-type]
    try:
        async with trio.open_nursery() as nursery:
            server = partial(
                serve_app,
                app,
                hconfig,
                hconfig.create_sockets(),
                max_connections=64,
                send_timeout_s=config.server.client_send_timeout_s,
                shutdown_trigger=shutdown.wait,
            )
            binds: list[str] = await nursery.start(server)
            try:
                yield Gateway(binds[0])
            finally:
                shutdown.set()
    finally:
        await runtime.aclose()
