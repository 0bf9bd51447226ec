"""Which client connections are live, and which requests each carries (see `request_scope`).

Pure bookkeeping: no I/O, no tasks.  The server edge reports each client
connection's start and end; a request registers its cancel scope under its
connection, and the end's report cancels it.  A connection may also come with
a `ChunkWriter`, which a request on it finds here.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

import trio

ConnectionKey = Hashable
"""A client connection: its client and server addresses, as the ASGI scope gives them."""


class ChunkWriter(Protocol):
    """A client connection's direct path for the chunks of a chunked HTTP/1.1 response body that the
    server has started (`server.connection.ClientConnection`): a streamed event written without an
    ASGI message through the server's protocol stack."""

    async def send_chunk(self, data: bytes) -> None: ...


class _Live:
    """One live connection: its requests in flight, and its chunk writer (None: it has none)."""

    __slots__ = ("requests", "writer")

    def __init__(self, writer: ChunkWriter | None) -> None:
        self.requests: list[Watched] = []
        self.writer = writer


class Watched:
    """One request registered under its connection; `gone` once the connection ended."""

    __slots__ = ("gone", "scope")

    def __init__(self, scope: trio.CancelScope) -> None:
        self.scope = scope
        self.gone = False


class ClientWatch:
    """The live client connections a server edge reports, and the requests in flight on each (pure
    bookkeeping: no I/O, no tasks)."""

    __slots__ = ("_live",)

    def __init__(self) -> None:
        self._live: dict[ConnectionKey, _Live] = {}

    def connection_started(self, key: ConnectionKey, writer: ChunkWriter | None = None) -> None:
        self._live[key] = _Live(writer)

    def connection_ended(self, key: ConnectionKey) -> int:
        """The client connection `key` is gone: cancel its requests; how many there were."""
        live = self._live.pop(key, None)
        if live is None:
            return 0
        for watched in live.requests:
            watched.gone = True
            watched.scope.cancel()
        return len(live.requests)

    def chunk_writer(self, key: ConnectionKey) -> ChunkWriter | None:
        """The live connection's chunk writer (None: not live, or it has none)."""
        live = self._live.get(key)
        return None if live is None else live.writer

    def watch(self, key: ConnectionKey, scope: trio.CancelScope) -> Watched | None:
        """Register a request's scope under its live connection; None when the connection is not one
        the edge reported live (already ended, or not reported at all): the caller must watch the ASGI
        way, where a disconnect that came first is still queued."""
        live = self._live.get(key)
        if live is None:
            return None
        watched = Watched(scope)
        live.requests.append(watched)
        return watched

    def unwatch(self, key: ConnectionKey, watched: Watched) -> None:
        live = self._live.get(key)
        if live is not None and watched in live.requests:
            live.requests.remove(watched)

    @property
    def connections(self) -> int:
        return len(self._live)

    @property
    def requests(self) -> int:
        return sum(len(live.requests) for live in self._live.values())
