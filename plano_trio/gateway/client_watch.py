"""Which client connections are live, and which requests each carries (see `request_scope`).

Pure bookkeeping: no I/O, no tasks.  The server edge reports each client
connection's start and end; a request registers its cancel scope under its
connection, and the end's report cancels it.
"""

from __future__ import annotations

from collections.abc import Hashable

import trio

ConnectionKey = Hashable
"""A client connection: its client and server addresses, as the ASGI scope gives them."""


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
        self._live: dict[ConnectionKey, list[Watched]] = {}

    def connection_started(self, key: ConnectionKey) -> None:
        self._live[key] = []

    def connection_ended(self, key: ConnectionKey) -> int:
        """The client connection `key` is gone: cancel its requests; how many there were."""
        requests = self._live.pop(key, ())
        for watched in requests:
            watched.gone = True
            watched.scope.cancel()
        return len(requests)

    def watch(self, key: ConnectionKey, scope: trio.CancelScope) -> Watched | None:
        """Register a request's scope under its live connection; None when the connection is not one
        the edge reported live (already ended, or not reported at all): the caller must watch the ASGI
        way, where a disconnect that came first is still queued."""
        requests = self._live.get(key)
        if requests is None:
            return None
        watched = Watched(scope)
        requests.append(watched)
        return watched

    def unwatch(self, key: ConnectionKey, watched: Watched) -> None:
        requests = self._live.get(key)
        if requests is not None and watched in requests:
            requests.remove(watched)

    @property
    def connections(self) -> int:
        return len(self._live)

    @property
    def requests(self) -> int:
        return sum(map(len, self._live.values()))
