"""Test helpers: run the real gateway in-process against the mock provider.

Everything between the client and the mock's socket is the production code:
config loading, hypercorn-trio, the handlers and the upstream pool.  Sync
SDK clients run in a worker thread (`in_thread`) so the gateway keeps running
on the test's trio loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import TypeVar

import h11
import trio

from plano_trio.config import load_config_text
from plano_trio.server.serve import serve

T = TypeVar("T")


def provider_config(
    mock_url: str, *, extra_providers: str = "", listener_extra: str = "", tail: str = ""
) -> str:
    """A config whose providers all point at the mock (`base_url`)."""
    return f"""
version: v0.4.0
listeners:
  - name: llm
    type: model
    address: 127.0.0.1
    port: 0
    timeout: 10s
{listener_extra}
model_providers:
  - model: openai/gpt-4o-mini
    access_key: server-key
    base_url: {mock_url}
    default: true
  - model: openai/*
    access_key: server-key
    base_url: {mock_url}
  - model: groq/llama-3.3-70b
    passthrough_auth: true
    base_url: {mock_url}/openai/v1
{extra_providers}
model_aliases:
  fast:
    target: gpt-4o-mini
{tail}
"""


class Gateway:
    def __init__(self, base: str) -> None:
        self.base = base
        host_port = base.removeprefix("http://")
        host, _, port = host_port.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)

    @property
    def v1(self) -> str:
        return f"{self.base}/v1"


@asynccontextmanager
async def running_gateway(config_text: str, env: Mapping[str, str] | None = None) -> AsyncIterator[Gateway]:
    config = load_config_text(config_text, env=env or {})
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(partial(serve, config, shutdown=shutdown))
        try:
            yield Gateway(binds[0])
        finally:
            shutdown.set()


async def in_thread(fn: Callable[[], T]) -> T:
    """Run a blocking client call without blocking the gateway's trio loop."""
    return await trio.to_thread.run_sync(fn)


def task_names(task: trio.lowlevel.Task | None = None) -> list[str]:
    """Names of `task` (default: the run's root task) and every task below it, depth first."""
    task = task or trio.lowlevel.current_root_task()
    names = [task.name]
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            names += task_names(child)
    return names


async def raw_exchange(gw: Gateway, request: bytes, timeout_s: float = 5) -> bytes:
    """Everything the gateway answers `request` (bytes as a raw HTTP client writes them) until it closes
    the connection: for tests of the framing itself, which SDK clients hide."""
    stream = await trio.open_tcp_stream(gw.host, gw.port)
    await stream.send_all(request)
    received = b""
    with trio.fail_after(timeout_s):
        while chunk := await stream.receive_some(65536):
            received += chunk
    await stream.aclose()
    return received


def dechunked_body(response: bytes) -> bytes:
    """The body of one chunked HTTP/1.1 response, parsed back by h11 (which checks the framing)."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="POST", target="/", headers=[(b"host", b"x"), (b"content-length", b"0")]))
    client.send(h11.EndOfMessage())
    client.receive_data(response)
    head = client.next_event()
    assert isinstance(head, h11.Response) and head.status_code == 200, head
    assert (b"transfer-encoding", b"chunked") in list(head.headers)
    body = b""
    while isinstance(event := client.next_event(), h11.Data):
        body += event.data
    assert isinstance(event, h11.EndOfMessage)
    return body
