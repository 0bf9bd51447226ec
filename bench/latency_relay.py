"""A TCP relay that adds a fixed one-way delay: a stand-in for a database on another host.

    python -m bench.latency_relay --target-port 5432 [--delay-ms 50] [--port 0]

The ``state`` scenario puts it between plano-trio and PostgreSQL to show that a slow database stays off
the token stream: every chunk read on one side is written to the other ``--delay-ms`` later, in each
direction, so one query round trip costs at least 2 x delay (100 ms at the default) plus the database's
own time.  It models *latency*, not bandwidth: chunks are pipelined (a chunk read 1 ms after another is
also forwarded 1 ms after it), order is kept, and each direction has its own queue, so a big COPY
stream is delayed once, not once per chunk in sequence.

Loopback only (it listens on and connects to 127.0.0.1, nothing else): it exists to make a local
benchmark realistic, not to forward traffic anywhere.  Prints ``listening on tcp://127.0.0.1:<port>``
once bound (the bench reads the port from it), serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Sequence

__all__ = ["main", "serve"]

HOST = "127.0.0.1"
_READ = 64 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay_s`` after it was read; EOF is delayed alike.

    A reader task stamps and queues chunks as they arrive while this task releases them on time, so a
    burst of chunks costs one delay in total, as on a real network path, rather than one per chunk.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        try:
            while chunk := await reader.read(_READ):
                queue.put_nowait((loop.time() + delay_s, chunk))
        except (ConnectionError, OSError):
            pass
        queue.put_nowait((loop.time() + delay_s, b""))  # EOF (or a reset): forwarded after the delay too

    reading = asyncio.ensure_future(read())
    try:
        while True:
            due, chunk = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        return
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading


async def _relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    target_port: int,
    delay_s: float,
) -> None:
    """One client connection: open the upstream one, pump both ways, close both when both are done."""
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(HOST, target_port)
    except OSError:
        client_writer.close()
        return
    for w in (client_writer, upstream_writer):
        sock = w.get_extra_info("socket")
        if sock is not None:  # Nagle would add its own delay on top of ours
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        await asyncio.gather(
            _pump(client_reader, upstream_writer, delay_s),
            _pump(upstream_reader, client_writer, delay_s),
        )
    finally:
        for w in (client_writer, upstream_writer):
            w.close()


async def serve(port: int, target_port: int, delay_s: float) -> None:
    """Listen on 127.0.0.1:``port`` (0: any free one), relay to 127.0.0.1:``target_port`` until signalled."""
    server = await asyncio.start_server(
        lambda r, w: _relay(r, w, target_port, delay_s), HOST, port, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    print(
        f"listening on tcp://{HOST}:{bound} (relay to {HOST}:{target_port}, +{delay_s * 1e3:g} ms each way)",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    summary = __doc__.splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m bench.latency_relay", description=summary)
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    parser.add_argument("--target-port", type=int, required=True, help="127.0.0.1 port to relay to")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="delay of every chunk, each direction")
    args = parser.parse_args(argv)
    if args.delay_ms < 0:
        parser.error("--delay-ms must be >= 0")
    asyncio.run(serve(args.port, args.target_port, args.delay_ms / 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
