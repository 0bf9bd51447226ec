"""`--workers N`: one scrape shows every worker, added up.

Each worker is a forked process with its own counters.  Rather than
prometheus-client's multiprocess mode (every update written to a
memory-mapped file, process metrics unsupported, scrape-time collectors
seeing only the scraping process), the numbers stay in each worker and a
scrape gathers them:

- the supervisor, before forking, binds the metrics socket once and makes
  a private directory (`share_with_workers`); forked workers inherit both;
- every worker accepts scrapes on the shared socket (the kernel hands each
  connection to one of them), and answers for its own numbers on a Unix
  socket `<directory>/<pid>.sock` (`serve_peer`: connect, read its
  snapshot as msgpack, EOF);
- the worker that got the scrape reads its peers' snapshots concurrently
  (each within `PEER_TIMEOUT_S`, at most `MAX_PEER_BYTES`) and adds them to
  its own (`exposition.merge`).  A worker that does not answer in time is
  left out of that scrape and counted in `plano_trio_metrics_workers_missing`
  (its counters then look reset to Prometheus for one scrape).

Nothing of this runs per request; a scrape with N workers costs N small
Unix-socket reads and decodes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

import msgspec
import trio
from prometheus_client.metrics_core import Metric

from plano_trio.metrics import families as f
from plano_trio.metrics.exposition import decode, encode, merge
from plano_trio.metrics.vectors import values_family

log = logging.getLogger("plano_trio.metrics")

PEER_TIMEOUT_S = 2.0
MAX_PEER_BYTES = 64 * 1024 * 1024
SOCKET_SUFFIX = ".sock"


class WorkerGroup:
    """What the supervisor shares with the workers it forks: the metrics socket and the peers' directory."""

    def __init__(self, sock: socket.socket, directory: Path) -> None:
        self.sock = sock
        self.directory = directory

    def peer_path(self, pid: int) -> Path:
        return self.directory / f"{pid}{SOCKET_SUFFIX}"

    def close(self) -> None:
        """The supervisor's end: its copy of the socket, and the directory (workers have exited)."""
        self.sock.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def make_group(sock: socket.socket) -> WorkerGroup:
    return WorkerGroup(sock, Path(tempfile.mkdtemp(prefix="plano-trio-metrics-")))


async def serve_peer(group: WorkerGroup, snapshot: Callable[[], list[Metric]]) -> None:
    """Answer this worker's peers on `<directory>/<pid>.sock` until cancelled; the file is removed on exit."""
    path = group.peer_path(os.getpid())
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            await sock.bind(str(path))
            sock.listen(16)
        except OSError as error:  # e.g. the directory is gone: this worker's numbers go missing, no more
            log.warning("metrics: cannot answer the other workers on %s: %s", path, error)
            return
        listener = trio.SocketListener(sock)
        async with listener:
            while True:
                stream = await listener.accept()
                try:
                    with trio.move_on_after(PEER_TIMEOUT_S):
                        await stream.send_all(encode(snapshot()))
                except (trio.BrokenResourceError, OSError) as error:
                    log.debug("metrics peer went away: %s", error)
                finally:
                    await trio.aclose_forcefully(stream)
    finally:
        sock.close()
        with contextlib.suppress(OSError):
            path.unlink()


async def gather(group: WorkerGroup) -> list[bytes | None]:
    """Every peer's encoded snapshot, in parallel; None for one that did not answer in time."""
    own = group.peer_path(os.getpid())
    peers = [path for path in group.directory.glob(f"*{SOCKET_SUFFIX}") if path != own]
    answers: list[bytes | None] = [None] * len(peers)

    async def fetch(index: int, path: Path) -> None:
        with trio.move_on_after(PEER_TIMEOUT_S):
            try:
                answers[index] = await _read_all(path)
            except OSError as error:
                log.debug("metrics peer %s did not answer: %s", path.name, error)

    async with trio.open_nursery() as nursery:
        for index, path in enumerate(peers):
            nursery.start_soon(fetch, index, path)
    return answers


def combine(own: list[Metric], answers: list[bytes | None]) -> list[Metric]:
    """This worker's snapshot plus the peers' (decoded here: run it in a thread), added up, with the
    number of peers missing from it."""
    snapshots = [own]
    missing = 0
    for data in answers:
        families = _decoded(data)
        if families is None:
            missing += 1
        else:
            snapshots.append(families)
    merged = merge(snapshots)
    merged.append(values_family(f.SCRAPE_PEERS_MISSING, [((), float(missing))]))
    return merged


def _decoded(data: bytes | None) -> list[Metric] | None:
    if data is None:
        return None
    try:
        return decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        log.warning("metrics: a worker sent an unreadable snapshot: %s", error)
        return None


async def _read_all(path: Path) -> bytes | None:
    """The whole exposition a peer sends, or None if it exceeds `MAX_PEER_BYTES`."""
    stream = await trio.open_unix_socket(str(path))
    async with stream:
        data = bytearray()
        while chunk := await stream.receive_some(1024 * 1024):
            data += chunk
            if len(data) > MAX_PEER_BYTES:
                return None
        return bytes(data)
