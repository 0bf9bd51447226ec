"""The ``floor`` target: hypercorn-trio answering a constant chat completion, no upstream at all.

Why it exists: plano-trio runs on hypercorn-trio, which alone costs ~500-650 CPU-µs per JSON request on
the project machine (``docs/measurements.md``, "hypercorn-trio cost"), far more than the gateway's own
logic should.  Serving the *same bytes* from the *same server stack started the same way* (in-process
``hypercorn.trio.serve``, one process, no access log) tells us how much of a proxied request's cost is
hypercorn's own; the target "CPU per proxied request <= 1.3x floor" is measured against this.

To make the comparison exact, the reply bytes come from the mock provider's own reply builder (same
JSON, same 20 x ~180-byte SSE deltas) and the ASGI message pattern copies what the gateway does with an
undelayed upstream stream: one ``http.response.start``, one body message holding every event (the
gateway relays one downstream write per upstream read, and the mock writes an undelayed stream in one
go), then an empty final message.  With ``x-mock-delay-ms`` > 0 each event is its own message, as a
paced upstream would force.

Per request (same header names as the mock; the bench sends them to the floor only):
``x-mock-chunks`` (default 20), ``x-mock-delay-ms`` (default 0), ``x-mock-chunk-bytes`` (default
180).  Streaming is chosen by ``"stream":true`` in the body.  ``GET /healthz`` answers 200.

Run: ``python -m bench.floor_app --host 127.0.0.1 --port 0`` (prints ``listening on http://HOST:PORT``).
"""

from __future__ import annotations

import argparse
import functools
import json
import signal
import sys

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.utils import wrap_app

from plano_trio.gateway.asgi import Receive, Scope, Send, lifespan
from plano_trio.server.listen import serve_app
from tests.mock_provider import Control, build_reply

_REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
_JSON_HEADERS = [(b"content-type", b"application/json"), (b"x-request-id", b"floor")]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-request-id", b"floor"),
]


@functools.cache
def reply_json() -> bytes:
    """The mock's non-streamed chat completion for the bench request (default 5 deltas, no padding)."""
    body = json.dumps(_REQUEST).encode()
    return build_reply("POST", "/v1/chat/completions", body, _REQUEST, Control()).body


@functools.cache
def reply_events(chunks: int, chunk_bytes: int = 180) -> tuple[bytes, ...]:
    """The mock's SSE events (role chunk, ``chunks`` deltas, finish chunk, ``[DONE]``)."""
    payload = {**_REQUEST, "stream": True}
    body = json.dumps(payload).encode()
    reply = build_reply(
        "POST", "/v1/chat/completions", body, payload, Control(chunks=chunks, chunk_bytes=chunk_bytes)
    )
    return tuple(reply.head + reply.deltas + reply.tail)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    chunks, delay_ms, chunk_bytes = 20, 0.0, 180
    for name, value in scope["headers"]:
        if name == b"x-mock-chunks":
            chunks = max(0, int(value))
        elif name == b"x-mock-delay-ms":
            delay_ms = max(0.0, float(value))
        elif name == b"x-mock-chunk-bytes":
            chunk_bytes = max(0, int(value))
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    if scope["path"] == "/healthz":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b""})
        return
    if b'"stream":true' not in body.replace(b" ", b""):
        data = reply_json()
        await send({"type": "http.response.start", "status": 200, "headers": _JSON_HEADERS})
        await send({"type": "http.response.body", "body": data})
        return
    events = reply_events(chunks, chunk_bytes)
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
    if delay_ms <= 0:
        await send({"type": "http.response.body", "body": b"".join(events), "more_body": True})
    else:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
            for i, event in enumerate(events):
                if 2 <= i <= chunks:  # events[1..chunks] are the deltas: sleep *between* them, like the mock
                    await trio.sleep(delay_ms / 1000)
                await send({"type": "http.response.body", "body": event, "more_body": True})
            nursery.cancel_scope.cancel()
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _cancel_on_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    """Stop a paced stream whose client left.  hypercorn ignores sends after a disconnect, so without
    this an abandoned 10-second stream (a client that gave up on an overloaded floor) keeps the floor
    busy until its last delta, on the CPU the next target is measured on.  The gateway watches for the
    disconnect the same way, so the floor pays the same one waiting task per stream."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _main(host: str, port: int, edge: str = "hypercorn") -> None:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.graceful_timeout = 1
    config.include_server_header = False
    config.backlog = 1024
    shutdown = trio.Event()

    async def watch_signals() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                shutdown.set()
                return

    if edge == "ours":
        wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
        server = functools.partial(
            serve_app,
            wrapped,
            config,
            config.create_sockets(),
            max_connections=4096,
            send_timeout_s=30.0,
            shutdown_trigger=shutdown.wait,
        )
    else:
        server = functools.partial(serve, app, config, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_signals)
        binds: list[str] = await nursery.start(server)
        print(f"listening on {binds[0]}", flush=True)
        await shutdown.wait()
        # serve() returns once in-flight requests drained; then stop the signal watcher.
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor_app", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--edge",
        choices=("hypercorn", "ours"),
        default="hypercorn",
        help="hypercorn.trio.serve as shipped (the floor), or the gateway's own server edge around "
        "hypercorn's protocol code (plano_trio.server.listen: connection bound, send guard, one idle-timer "
        "task per connection)",
    )
    args = parser.parse_args(argv)
    trio.run(_main, args.host, args.port, args.edge)


if __name__ == "__main__":
    main()
