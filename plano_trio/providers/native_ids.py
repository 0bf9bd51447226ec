"""Which provider stored a Responses turn: response id -> route, for turns a native provider keeps.

OpenAI and xAI (and any provider whose Responses API the gateway passes
through) store a turn themselves; plano-trio never sees it again unless a
client asks `GET /v1/responses/{id}`.  To send that question to the right
provider, the relay records each native answer's id here, with the route
that produced it.

Why memory, bounded, rather than the state store: the mapping is a routing
hint, not conversation state.  Written to the conversation table, a native
id would become a row that a `previous_response_id` for a *non*-native
model finds (an empty history silently continued, where Plano answers 409);
it would cost a database write on every native Responses request for a
retrieval few clients make; and native providers need no `state_storage` at
all.  The price: the map is per process (another `--workers` process, or a
restart, does not know the id), for which retrieval falls back to the one
native provider when the config has exactly one.

`capacity` ids are kept, least recently recorded or used dropped first
(about 200 bytes each: ~6.5 MB at the default), and an id longer than
`MAX_ID_CHARS` is not recorded (a provider's id is ~60 characters).
"""

from __future__ import annotations

from collections import OrderedDict

from plano_trio.providers.resolve import Route

DEFAULT_CAPACITY = 32 * 1024
MAX_ID_CHARS = 256


class NativeResponseIds:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._routes: OrderedDict[str, Route] = OrderedDict()

    def __len__(self) -> int:
        return len(self._routes)

    def record(self, response_id: str, route: Route) -> None:
        """`response_id` was answered (and maybe stored) by `route`'s provider."""
        if not response_id or len(response_id) > MAX_ID_CHARS:
            return
        routes = self._routes
        routes[response_id] = route
        routes.move_to_end(response_id)
        if len(routes) > self.capacity:
            routes.popitem(last=False)

    def route(self, response_id: str) -> Route | None:
        """The route that answered `response_id`, if this process recorded it."""
        route = self._routes.get(response_id)
        if route is not None:
            self._routes.move_to_end(response_id)
        return route

    def forget(self, response_id: str) -> None:
        self._routes.pop(response_id, None)
