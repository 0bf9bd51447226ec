"""Filter servers for the ``filters`` scenario: an HTTP filter and an MCP filter that pass the body through.

    python -m bench.filter_server http [--delay-ms 5] [--port 0]
    python -m bench.filter_server mcp [--delay-ms 5] [--port 0]

Both answer what a guard that lets everything through answers: the request body, unchanged, after
``--delay-ms`` (a stand-in for the filter's own work; the scenario subtracts the filter's measured
latency, so the delay only has to be realistic, not exact).

* ``http`` is Plano's HTTP filter contract at its smallest: ``POST <any path>`` → 200 with the same
  bytes.  asyncio (uvloop when installed), a hand-written HTTP/1.1 reader for Content-Length bodies
  and keep-alive, ``GET /healthz`` → 200.  Written by hand rather than on an ASGI server so that the
  filter's own cost is small and stable: it runs on the client's CPU beside the mocks.
* ``mcp`` is the official ``mcp`` SDK's server (``MCPServer``, its streamable-HTTP app under uvicorn,
  as ``MCPServer.run("streamable-http")`` would serve it; stateful sessions, replies as SSE, the SDK's
  defaults) with one tool, ``echo(body, path)``, returning the body.  Sessions left idle for
  ``--session-idle-s`` are closed: a client that opens a session per request (Plano) leaves one
  behind every time.

Loopback only.  Prints ``listening on http://127.0.0.1:<port>`` once the socket is bound (the bench
reads the port from it) and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

HOST = "127.0.0.1"
MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 4 * 1024 * 1024


# -- http ----------------------------------------------------------------------------------------------


def _response(status: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n".encode()
    return head + b"content-type: " + content_type + b"\r\n\r\n" + body


def _content_length(head: bytes) -> int | None:
    """The request's Content-Length (0 if absent); None if it is chunked or unreadable (refused)."""
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return None
    return length if 0 <= length <= MAX_BODY_BYTES else None


async def _echo_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float
) -> None:
    """Requests on one keep-alive connection, one at a time: the body back after ``delay_s``."""
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            length = _content_length(head)
            if length is None:
                writer.write(_response("411 Length Required", b"{}"))
                return
            body = await reader.readexactly(length)
            if head.startswith(b"GET /healthz"):
                writer.write(_response("200 OK", b"{}"))
            else:
                if delay_s:
                    await asyncio.sleep(delay_s)
                writer.write(_response("200 OK", body))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def _serve_http(sock: socket.socket, delay_s: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: _echo_connection(r, w, delay_s), sock=sock, limit=MAX_HEAD_BYTES
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def _run_http(sock: socket.socket, delay_s: float) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve_http(sock, delay_s))
    else:
        uvloop.run(_serve_http(sock, delay_s))


# -- mcp -----------------------------------------------------------------------------------------------


def mcp_app(delay_s: float, session_idle_s: float) -> Any:
    """The MCP SDK's streamable-HTTP app (at ``/mcp``) with the pass-through tool ``echo``."""
    import anyio
    from mcp.server import MCPServer

    server: MCPServer[Any] = MCPServer("bench-filters", log_level="WARNING")  # INFO logs every session

    @server.tool()
    async def echo(body: dict[str, Any], path: str) -> dict[str, Any]:
        """Let the request through unchanged (what a guard answers when nothing matched)."""
        if delay_s:
            await anyio.sleep(delay_s)
        return body

    return server.streamable_http_app(session_idle_timeout=session_idle_s)


def _run_mcp(sock: socket.socket, delay_s: float, session_idle_s: float) -> None:
    import uvicorn

    config = uvicorn.Config(
        mcp_app(delay_s, session_idle_s), log_level="warning", access_log=False, lifespan="on"
    )
    uvicorn.Server(config).run(sockets=[sock])


# -- cli -----------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    summary = __doc__.splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m bench.filter_server", description=summary)
    parser.add_argument("kind", choices=("http", "mcp"))
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    parser.add_argument("--delay-ms", type=float, default=5.0, help="time the filter takes per call")
    parser.add_argument("--session-idle-s", type=float, default=30.0, help="mcp: idle sessions closed after")
    args = parser.parse_args(argv)
    if args.delay_ms < 0:
        parser.error("--delay-ms must be >= 0")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, args.port))
    sock.listen(1024)
    print(f"listening on http://{HOST}:{sock.getsockname()[1]} ({args.kind} filter)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        if args.kind == "http":
            _run_http(sock, args.delay_ms / 1000)
        else:
            _run_mcp(sock, args.delay_ms / 1000, args.session_idle_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
