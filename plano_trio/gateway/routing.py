"""The route stage's decision: which model serves a request, when routing preferences exist.

Plano's preference-based routing, in the order it runs:

    inline preferences? → session key → (not a user turn: replay the session's model)
        → router call → route → ranked models → session gate (budget) → decision

The pure parts (prompt, reply, ranking, sessions, budget) live in
`plano_trio.router`; this module does the I/O around them (the router call,
the session store) and owns the counters.  A request without preferences
(none in the config, none inline) never gets here: `Routing.applies` is one
substring search over the body.

Where plano-trio does better than Plano: the router call is bounded
(`plano_trio.router_timeout_s`) and any router failure falls back to the
request's own model instead of answering 500; the decision names the
fallback's reason; the ranked models become the request's failover order.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import trio

from plano_trio.apis.http import Header
from plano_trio.apis.kind import Api
from plano_trio.apis.openai_chat import Usage
from plano_trio.config.schema import Config, RoutingPreference
from plano_trio.gateway.errors import ApiError
from plano_trio.gateway.metrics_feed import MetricsFeed
from plano_trio.gateway.router_call import RouterFailure, ask_router
from plano_trio.gateway.sessions import SessionGate, SessionTurn
from plano_trio.metrics.labels import ROUTE_LLM, ROUTE_ROUTING
from plano_trio.metrics.record import GATEWAY
from plano_trio.providers.resolve import ModelResolver, Route, RouteError
from plano_trio.router.choice import pick_route, rank_models
from plano_trio.router.conversation import Conversation, read_conversation
from plano_trio.router.inline import InlinePreferencesError, extract_inline_preferences
from plano_trio.router.metrics import EMPTY_SNAPSHOT
from plano_trio.router.prompt import render_prompt, router_request_body, select_conversation
from plano_trio.router.rates import ModelRates
from plano_trio.session import open_session_store
from plano_trio.session.writer import BindingWriter
from plano_trio.upstream import UpstreamPool

log = logging.getLogger("plano_trio.routing")

INLINE_KEY = b'"routing_preferences"'
NO_ROUTE = "none"
"""Plano's sentinel for "no route fits": the request's own model serves it."""


class RoutingDecision(NamedTuple):
    """What the route stage hands on: the model to resolve and the ranked alternatives."""

    model: str | None
    """The model to serve the request; None: the request's own model."""
    models: tuple[str, ...]
    """The route's models, ranked, the decided model first; empty when no route was chosen."""
    route_name: str | None
    fallback: str | None = None
    """Why the router's answer was not used (router down, slow, unreadable), else None."""
    session: SessionTurn | None = None
    """The session this turn belongs to (to refresh after a successful answer)."""

    @property
    def pinned(self) -> bool:
        return self.session is not None and self.session.warm

    @property
    def switched(self) -> bool:
        return self.session is not None and self.session.switched

    def headers(self) -> tuple[Header, ...]:
        """What the client is told about the decision (documented in the README)."""
        route = (self.route_name or NO_ROUTE).encode("utf-8", "replace")
        out: tuple[Header, ...] = ((b"x-plano-route", _header_safe(route)),)
        if self.fallback is not None:
            out += ((b"x-plano-routing-fallback", _header_safe(self.fallback.encode("utf-8", "replace"))),)
        if self.session is not None and self.session.session_id is not None:
            out += ((b"x-plano-session", _header_safe(self.session.session_id.encode("utf-8", "replace"))),)
        return out


class Routing:
    """Process-wide routing parts: preferences, the router's route, the metrics feed, the sessions."""

    def __init__(
        self,
        config: Config,
        resolver: ModelResolver,
        pool: UpstreamPool,
        feed: MetricsFeed | None = None,
        sessions: SessionGate | None = None,
    ) -> None:
        self.preferences: tuple[RoutingPreference, ...] = config.routing_preferences
        self.settings = config.routing
        self.resolver = resolver
        self.pool = pool
        self.feed = feed
        self.sessions = sessions
        self.aliases: Mapping[str, str] = dict(config.model_aliases)
        self.counts: Counter[str] = Counter()
        """Decisions since start: `routed`, `no_route`, `fallback`, `replayed`, `router_calls`."""
        self.always = bool(self.preferences) or (sessions is not None and sessions.always)
        """Whether every request is routed (else only those carrying inline preferences)."""

    def applies(self, body: bytes) -> bool:
        """Whether this request goes through routing: config preferences, sessions, or inline ones."""
        return self.always or INLINE_KEY in body

    def router_route(self) -> Route:
        """The router provider: whichever configured provider serves the router model id."""
        try:
            route = self.resolver.resolve(self.settings.router_model)
        except RouteError as error:
            raise RouterFailure(f"router provider misconfigured: {error}") from None
        if route is None:
            raise RouterFailure(f"no provider serves the router model '{self.settings.router_model}'")
        return route

    async def decide(
        self,
        api: Api,
        request: dict[str, Any],
        requested_model: str,
        headers: list[Header],
        request_id: bytes,
        *,
        decision_api: bool = False,
    ) -> RoutingDecision:
        """Route one request (raises ApiError 400 for malformed inline preferences)."""
        try:
            inline = extract_inline_preferences(request, strict=True)
        except InlinePreferencesError as error:
            raise ApiError(
                400, f"Invalid routing_preferences: {error}", param="routing_preferences"
            ) from None
        preferences = inline if inline is not None else self.preferences
        lane = self.aliases.get(requested_model, requested_model)
        conversation = read_conversation(api, request)  # read once, for the session and the router
        sessions = self.sessions
        turn = None
        if sessions is not None:
            turn = await sessions.open_turn(
                conversation,
                lane,
                headers,
                has_preferences=bool(preferences),
                servable=_anything if decision_api else self.servable,
            )
            if turn is not None and turn.replay is not None:  # not a user turn: no new routing
                self.counts["replayed"] += 1
                replayed, replayed_route = turn.replay
                decided = sessions.gate(turn, replayed, replayed_route)
                turn.ranked = (decided,)
                if decision_api:  # nothing follows a decision: store it now
                    sessions.settle(turn)
                return RoutingDecision(decided, (decided,), replayed_route, None, turn)
        candidate: str | None = None
        models: tuple[str, ...] = ()
        route_name: str | None = None
        fallback: str | None = None
        if preferences:
            started = time.perf_counter()
            route_label = ROUTE_ROUTING if decision_api else ROUTE_LLM
            try:
                chosen = await self._ask(conversation, preferences, headers, request_id)
            except RouterFailure as failure:
                GATEWAY.router_decision(route_label, "unknown", True, time.perf_counter() - started)
                fallback = failure.reason
                self.counts["fallback"] += 1
                log.warning(
                    "router failed, using the request's own model: %s",
                    failure.reason,
                    extra={"fields": {"request_id": request_id.decode(errors="replace")}},
                )
            else:
                if chosen is None:
                    self.counts["no_route"] += 1
                else:
                    self.counts["routed"] += 1
                    route_name = chosen.name
                    models = tuple(self._rank(chosen))
                    candidate = models[0] if models else None
                elapsed = time.perf_counter() - started
                GATEWAY.router_decision(route_label, candidate or NO_ROUTE, candidate is None, elapsed)
        if sessions is not None and turn is not None:
            # The session may keep a warm model the router would leave (budget); without a route the
            # candidate is the request's own model, or Plano's "none" for the decision API.
            unrouted = NO_ROUTE if decision_api else lane
            decided = sessions.gate(turn, candidate or unrouted, route_name)
            if decided not in (NO_ROUTE, candidate or unrouted):
                models = (decided, *(m for m in models if m != decided))
                candidate = decided
                route_name = turn.route_name
            turn.ranked = models
            if decision_api:
                sessions.settle(turn)
        return RoutingDecision(candidate, models, route_name, fallback, turn)

    async def _ask(
        self,
        conversation: Conversation,
        preferences: Sequence[RoutingPreference],
        headers: list[Header],
        request_id: bytes,
    ) -> RoutingPreference | None:
        """The route the router picks for this conversation (None: no route fits)."""
        messages = conversation.router_messages()
        if not messages:  # as Plano: no conversation at all, no router call
            return None
        selected = select_conversation(messages, self.settings.router_context_tokens)
        prompt = render_prompt(preferences, selected)
        route = self.router_route()
        self.counts["router_calls"] += 1
        reply = await ask_router(
            self.pool,
            route,
            router_request_body(route.model, prompt),
            headers,
            request_id,
            self.settings.router_timeout_s,
        )
        return pick_route(reply.names, preferences)

    def servable(self, model: str) -> bool:
        """Whether `model` can be dispatched here: not Plano's "none", and served by a provider."""
        if model == NO_ROUTE:
            return False
        try:
            return self.resolver.resolve(model) is not None
        except RouteError:
            return False

    def after_answer(self, turn: SessionTurn, usage: Usage | None, answered_label: str | None = None) -> None:
        """A successful answer refreshes the session's binding (real context size, running cost).

        `answered_label` is the label (`provider/model`) of the route that
        answered.  When ranked failover moved past the decided model, the
        session is rebound to the model that answered, named as the ranking
        named it (so the next turn's router pick compares equal to it).
        """
        if self.sessions is None:
            return
        self.sessions.after_answer(turn, usage, self._moved_to(turn, answered_label))

    def settle(self, turn: SessionTurn) -> None:
        """The request is over: a binding not refreshed by `after_answer` is stored as decided."""
        if self.sessions is not None:
            self.sessions.settle(turn)

    def _moved_to(self, turn: SessionTurn, label: str | None) -> str | None:
        """The ranked model that `label` names, when it is not the decided one (else None)."""
        decision = turn.decision
        if label is None or decision is None or self._label(decision.model) == label:
            return None
        return next((m for m in turn.ranked if self._label(m) == label), label)

    def _label(self, model: str) -> str | None:
        try:
            route = self.resolver.resolve(model)
        except RouteError:
            return None
        return None if route is None else route.label

    def stats(self) -> dict[str, Any]:
        """Decisions, session cache events and metrics feed freshness, for `/debug/routing`."""
        out: dict[str, Any] = {"decisions": dict(self.counts)}
        if self.sessions is not None:
            store = self.sessions.store
            out["session_cache"] = {"backend": store.backend, **dataclasses.asdict(store.counters)}
            out["sessions"] = self.sessions.stats()
        if self.feed is not None:
            out["metrics_sources"] = {
                "last_refresh": self.feed.last_refresh,
                "refresh_failures": self.feed.refresh_failures,
                "last_error": self.feed.last_error,
            }
        return out

    def rates_for(self, model: str) -> ModelRates | None:
        """Prices from the cost feed (None without one, or for a model it does not list)."""
        return (self.feed.snapshot if self.feed is not None else EMPTY_SNAPSHOT).rates_for(model)

    def _rank(self, preference: RoutingPreference) -> list[str]:
        feed = self.feed
        if feed is None:
            return list(preference.models)
        snapshot = feed.snapshot
        return rank_models(preference, snapshot.rank_rates_for, snapshot.latency_for)


def _anything(model: str) -> bool:
    """The decision API's test of a stored anchor: it names models, it does not dispatch them."""
    del model
    return True


def _header_safe(value: bytes) -> bytes:
    """A header value without control characters (route names come from config or the request)."""
    return bytes(b if 0x20 <= b < 0x7F else 0x3F for b in value[:256])


@asynccontextmanager
async def open_routing(config: Config, resolver: ModelResolver, pool: UpstreamPool) -> AsyncIterator[Routing]:
    """Routing with its metrics feed (loaded once, then refreshed in the background) and its session
    store (memory, or Redis), all stopped on exit.

    Raises `MetricsStartupError` when a metrics source cannot be read at startup, as Plano refuses to
    start then.
    """
    feed = None
    if not config.metrics_sources.empty:
        feed = MetricsFeed(config.metrics_sources)
        await feed.load(pool)
    cache = config.routing.session_cache
    async with (
        open_session_store(
            cache.type,
            url=cache.url,
            max_entries=config.routing.session_max_entries,
            timeout_s=cache.timeout_s,
            client=cache.client,
        ) as store,
        trio.open_nursery() as background,
    ):
        if feed is not None:
            await background.start(feed.refresh_forever, pool)
        routing = Routing(config, resolver, pool, feed)
        writer = BindingWriter(store)
        background.start_soon(writer.run)
        routing.sessions = SessionGate(config.routing, store, routing.rates_for, writer)
        routing.always = bool(routing.preferences) or routing.sessions.always
        try:
            yield routing
        finally:
            background.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                await writer.drain()  # the servers have drained: the last bindings reach the store
