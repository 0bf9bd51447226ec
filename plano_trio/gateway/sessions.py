"""Sessions in the route stage: which conversation a request continues, and what its binding says.

A session is keyed by `X-Model-Affinity`, or (when prompt caching's session
affinity, the routing budget, or `route_on_user_only` asks for it) by a hash
of the conversation's stable start.  Its binding, read from the session
store, says which model the conversation is warm on; the pure decision
(`plano_trio.router.session.decide`) then keeps or lets go of that model, and
the binding is written back.  After a successful answer the binding is
refreshed from the provider's reported usage.  All as Plano codes it; every
store operation is bounded by the store itself and fails open (a miss, a
dropped write), so the session cache can never fail a request.

One departure, for the hot path: Plano writes the decided binding before
dispatch and again after the answer.  Here the request only reads the store;
its binding is handed to a `BindingWriter` once the request is over (the
refreshed binding after a successful answer, else the decided one; the
decision API's at once), and written in the background.  That takes the
cache's round trips off the way to the first token and halves the writes.
A second request of the same session arriving while the first is still
streaming sees the binding as it was before the first: conversations are
sequential, so this matters only for a client that forks one.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from plano_trio.apis.http import Header
from plano_trio.apis.openai_chat import Usage
from plano_trio.config.routing_settings import RoutingSettings
from plano_trio.router.affinity import AffinityHasher, cache_key, implicit_affinity_enabled, resolve_session
from plano_trio.router.binding import SessionBinding, decode_binding, encode_binding
from plano_trio.router.budget import (
    MAX_SWITCH_SPEND_PCT_HEADER,
    RoutingBudget,
    budget_for_request,
    turn_cost_usd,
)
from plano_trio.router.conversation import Conversation
from plano_trio.router.rates import ModelRates
from plano_trio.router.session import (
    RouteDecision,
    RouteFacts,
    context_tokens,
    decide,
    rebound_binding,
    refreshed_binding,
    reuse_prior_decision,
)
from plano_trio.session import SessionStore
from plano_trio.session.writer import BindingWriter

AFFINITY_HEADER = b"x-model-affinity"
CACHE_HEADER = b"x-plano-cache"
_BUDGET_HEADER = MAX_SWITCH_SPEND_PCT_HEADER.lower().encode()

Rates = Callable[[str], ModelRates | None]
Servable = Callable[[str], bool]
"""Whether a model named by a stored binding can be dispatched here (configured, not "none")."""


class SessionTurn:
    """One request's place in its session: the key, the binding read, and what was decided."""

    __slots__ = (
        "binding",
        "budget",
        "context_tokens",
        "decision",
        "key",
        "lane",
        "prefix_hash",
        "ranked",
        "replay",
        "session_id",
        "settled",
        "stored",
    )

    def __init__(
        self,
        session_id: str,
        key: str,
        prefix_hash: int | None,
        lane: str,
        budget: RoutingBudget | None,
        binding: SessionBinding | None,
        tokens: int,
    ) -> None:
        self.session_id = session_id
        self.key = key
        self.prefix_hash = prefix_hash
        self.lane = lane
        self.budget = budget
        self.binding = binding
        self.context_tokens = tokens
        self.replay: tuple[str, str | None] | None = None
        """(model, route) of the session's last decision, replayed on a turn that is not the user's."""
        self.decision: RouteDecision | None = None
        self.stored: SessionBinding | None = None
        self.ranked: tuple[str, ...] = ()
        """The decision's ranked models (failover order), to name the model that answered."""
        self.settled = False
        """Whether this turn's binding was handed to the writer (once per turn)."""

    @property
    def warm(self) -> bool:
        return self.decision is not None and self.decision.warm

    @property
    def switched(self) -> bool:
        return self.decision is not None and self.decision.switched

    @property
    def route_name(self) -> str | None:
        return None if self.decision is None else self.decision.route_name


class SessionGate:
    """The session half of routing: opens a turn, gates the router's candidate, refreshes after."""

    def __init__(
        self, settings: RoutingSettings, store: SessionStore, rates: Rates, writer: BindingWriter
    ) -> None:
        self.settings = settings
        self.store = store
        self.writer = writer
        self.rates = rates
        self.always = settings.prompt_caching.session_affinity or settings.budget is not None
        """Whether sessions apply to every request, with or without routing preferences."""
        self.hasher = AffinityHasher()
        """Implicit session keys, each long prompt chunk hashed once per process."""
        self.stores = 0
        """Bindings written (each turn's decision, each refresh), for metrics and `/debug/routing`."""
        self.refreshes = 0
        self.switch_decisions: Counter[tuple[str, str]] = Counter()
        """(decision, reason) of each warm session that weighed a switch."""

    async def open_turn(
        self,
        conversation: Conversation,
        lane: str,
        headers: list[Header],
        *,
        has_preferences: bool,
        servable: Servable,
    ) -> SessionTurn | None:
        """The request's session (None: it has none), its binding read from the store.

        A binding whose anchor `servable` rejects (Plano's "none" written by the
        decision API, or a model another deployment sharing the Redis serves)
        is treated as no binding: the turn is routed afresh instead of replaying
        or retaining a model this gateway cannot dispatch.
        """
        explicit = _header(headers, AFFINITY_HEADER)
        cache_off = (_header(headers, CACHE_HEADER) or "").lower() == "off"
        tenant_header = self.settings.session_cache.tenant_header
        tenant = _header(headers, tenant_header.lower().encode()) if tenant_header else None
        budget = budget_for_request(self.settings.budget, _header(headers, _BUDGET_HEADER))
        enabled = implicit_affinity_enabled(
            session_affinity=self.settings.prompt_caching.session_affinity,
            budget_active=budget is not None,
            route_on_user_only=self.settings.route_on_user_only,
            routing_can_override_model=has_preferences,
        )
        resolution = resolve_session(
            explicit,
            tenant,
            conversation.affinity_parts,
            self.hasher,
            implicit_enabled=enabled,
            cache_off=cache_off,
        )
        if resolution.session_id is None:
            return None
        key = cache_key(resolution.session_id, tenant)
        now = time.time()
        raw = await self.store.get(key)
        binding = None if raw is None else decode_binding(raw, now)
        if binding is not None and not servable(binding.anchor_model):
            binding = None
        tokens = 0
        if budget is not None:  # only the budget prices the context
            tokens = context_tokens((m.content for m in conversation.router_messages()), lane)
        turn = SessionTurn(resolution.session_id, key, resolution.prefix_hash, lane, budget, binding, tokens)
        if self.settings.route_on_user_only and not conversation.is_user_turn():
            reuse = reuse_prior_decision(binding, lane, resolution.prefix_hash, now)
            if reuse is not None:
                turn.replay = (reuse.model, reuse.route_name)
        return turn

    def gate(self, turn: SessionTurn, candidate: str, route_name: str | None) -> str:
        """The model to dispatch: the router's `candidate`, or the warm anchor it may not leave."""
        facts = RouteFacts(
            turn.session_id, turn.prefix_hash, turn.context_tokens, candidate, route_name, turn.lane
        )
        decision, stored = decide(facts, turn.binding, turn.budget, self.rates, time.time())
        turn.decision = decision
        turn.stored = stored
        if decision.switch_decision is not None and decision.switch_reason is not None:
            self.switch_decisions[(decision.switch_decision, decision.switch_reason)] += 1
        return decision.model

    def settle(self, turn: SessionTurn) -> None:
        """The request is over without a refresh (an error, or the decision API): store the decision."""
        stored, decision = turn.stored, turn.decision
        if turn.settled or stored is None or decision is None:
            return
        self._write(turn, encode_binding(stored), decision.gc_ttl_s)

    def after_answer(self, turn: SessionTurn, usage: Usage | None, answered: str | None = None) -> None:
        """A successful answer: the binding learns the provider's real context size and the turn's cost.

        `answered` is the model that answered when it is not the one decided
        (ranked failover moved on before the first byte): that model now holds
        the conversation's cache, so the session is rebound to it, as Plano
        rebinds a cold session to the router's candidate.
        """
        stored, decision = turn.stored, turn.decision
        if turn.settled or stored is None or decision is None:
            return
        model = decision.model if answered is None else answered
        gc_ttl_s = decision.gc_ttl_s
        if model != decision.model:
            stored, gc_ttl_s = rebound_binding(turn.binding, stored, model, turn.budget, time.time())
        prompt = usage.prompt_tokens if usage is not None else None
        cost = None
        rates = self.rates(model)
        if usage is not None and rates is not None:
            details = usage.prompt_tokens_details
            cached = getattr(details, "cached_tokens", 0) or 0 if details is not None else 0
            discount = turn.budget.cache_read_discount if turn.budget is not None else 0.1
            cost = turn_cost_usd(rates, usage.prompt_tokens, usage.completion_tokens, cached, discount)
        refreshed = refreshed_binding(stored, prompt, cost, time.time())
        self._write(turn, encode_binding(refreshed), gc_ttl_s)
        self.refreshes += 1

    def _write(self, turn: SessionTurn, value: bytes, gc_ttl_s: float) -> None:
        turn.settled = True
        if self.writer.submit(turn.key, value, _ttl(gc_ttl_s)):
            self.stores += 1

    def stats(self) -> dict[str, Any]:
        """Bindings stored and refreshed, switch decisions by decision and reason (`/debug/routing`)."""
        switches: dict[str, dict[str, int]] = {}
        for (decision, reason), count in self.switch_decisions.items():
            switches.setdefault(decision, {})[reason] = count
        writer = self.writer
        return {
            "stores": self.stores,
            "refreshes": self.refreshes,
            "switch_decisions": switches,
            "writes": {
                "pending": writer.pending,
                "written": writer.written,
                "coalesced": writer.coalesced,
                "dropped": writer.dropped,
            },
        }


def _ttl(seconds: float) -> int:
    return max(1, int(seconds))


def _header(headers: list[Header], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None
