"""The plan-attempts stage: retries and failover across models and providers.

Only requests whose provider has a `retry_policy` (or whose listener sets
`max_retries`) come here; everything else makes its one attempt directly,
so the machinery costs nothing when it is not configured.

Each attempt sends the client's original request, translated afresh for the
target's wire format (an OpenAI-compatible primary can fail over to an
Anthropic or Bedrock model for any client API), and gets the whole listener
timeout for its answer.  Whether to go on, where, and after what delay is the
pure planner's decision (`plano_trio.retry`); this module only runs the
attempts and the waits.  A retry happens only before anything reached the
client: once a response has started, a failure ends it as it would without
a policy.  All of it runs inside the request's one cancel scope, so a client
that goes away (or shutdown) ends the whole loop, backoff sleeps included.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import trio

from plano_trio.apis.http import Header
from plano_trio.gateway.errors import ApiError
from plano_trio.gateway.relay import Delivery, Interruption, Relay
from plano_trio.gateway.runtime import Runtime
from plano_trio.providers.resolve import Route, RouteError
from plano_trio.retry import Exhausted, Failure, RetryPlan

log = logging.getLogger("plano_trio.gateway")

MakeRelay = Callable[[Runtime, Route, RetryPlan], Relay]
"""Builds one attempt's relay for a target: its request translated for that provider's wire format.
Raises ApiError when the request cannot be sent there (e.g. a field that provider cannot express)."""


class Failover:
    """Runs attempts until one answers, the plan gives up, or the request's scope ends.

    Has the relay's two entry points (`run`, `interrupted`), so the pipeline
    runs one attempt or many the same way.
    """

    def __init__(
        self, runtime: Runtime, plan: RetryPlan, requested: Route, first: Route, make_relay: MakeRelay
    ) -> None:
        self.runtime = runtime
        self.plan = plan
        self.requested = requested
        self.route = first
        self.make_relay = make_relay
        self.relay: Relay | None = None
        self.attempts = 0

    @property
    def headers(self) -> tuple[Header, ...]:
        """Which model answered and after how many attempts, once it is not simply the requested
        model on the first try (errors included); a plain first-try answer carries nothing extra."""
        if self.attempts == 1 and self.route is self.requested:
            return ()
        return (
            (b"x-plano-model", self.route.label.encode()),
            (b"x-plano-attempts", b"%d" % self.attempts),
        )

    async def run(self, scope: trio.CancelScope) -> Delivery:
        """Attempt after attempt, all under the request's one `scope` (each attempt resets its
        deadline; the pool bounds each attempt's head wait without ending the request)."""
        while True:
            self.attempts += 1
            started = trio.current_time() if self.plan.records_slow_answers else 0.0
            try:
                relay = self.relay = self.make_relay(self.runtime, self.route, self.plan)
            except ApiError as error:  # this target cannot take the request as it is
                headers = self.headers
                delivery = Delivery(
                    error.status, "error", error=error.with_headers(headers) if headers else error
                )
                failure: Failure | None = Failure("status", error.status)
            else:
                relay.extra_headers = _merged(relay.extra_headers, self.headers)
                delivery = await relay.run(scope)
                failure = delivery.failure
            now = trio.current_time()
            counts = self.runtime.failover_counts
            if failure is None:
                if started:
                    self._record_slowness(started, now)
                if self.attempts > 1:
                    counts["recovered"] += 1
                return delivery
            decision = self.plan.next(self.route.provider, failure, now)
            if isinstance(decision, Exhausted):
                self._log(failure, "giving up")
                counts["exhausted"] += 1
                return self._give_up(delivery, decision)
            route = self._route_for(decision.target.name)
            if route is None:
                self._log(failure, "giving up")
                return self._give_up(
                    delivery, Exhausted(tuple(self.plan.attempts), "no route to the next model")
                )
            self._log(failure, f"next: {route.label} in {decision.delay_s:.3g}s")
            counts["retried" if route.label == self.route.label else "failed_over"] += 1
            if decision.delay_s > 0:
                scope.deadline = math.inf  # the wait is the plan's to bound (attempts, retry budget)
                await trio.sleep(decision.delay_s)
            self.route = route

    def interrupted(self, why: Interruption) -> Delivery:
        """The request's scope ended (client gone, shutdown cut) during an attempt or a backoff."""
        if self.relay is None:
            return Delivery(0, "client_disconnected" if why == "client_gone" else "cut")
        return self.relay.interrupted(why)

    def _record_slowness(self, started: float, now: float) -> None:
        """A completed answer still counts toward a latency block when it was slow (fail-open).

        Only with `measure: total`: with `ttfb`, an attempt slower than the
        threshold never got this far (it was stopped and failed over).
        """
        self.plan.record_slow_success(self.route.provider, round((now - started) * 1000), now)

    def _route_for(self, name: str) -> Route | None:
        try:
            return self.runtime.resolver.resolve(name)
        except RouteError:
            return None

    def _give_up(self, last: Delivery, exhausted: Exhausted) -> Delivery:
        """The last attempt's answer, its message saying what was tried."""
        error = last.error
        if error is None:
            return last
        message = f"{error.message} ({exhausted.reason})"
        final = error.but(message=message)
        if exhausted.retry_after_s is not None:
            final = final.with_headers(((b"retry-after", b"%d" % exhausted.retry_after_s),))
        return last._replace(error=final, message=message)

    def _log(self, failure: Failure, then: str) -> None:
        request_id = self.relay.ctx.request_id.decode() if self.relay is not None else "-"
        log.info(
            "attempt %d on %s failed (%s); %s",
            self.attempts,
            self.route.label,
            failure.describe(),
            then,
            extra={
                "fields": {"request_id": request_id, "attempt": self.attempts, "upstream": self.route.label}
            },
        )


def _merged(base: tuple[Header, ...], override: tuple[Header, ...]) -> tuple[Header, ...]:
    """`base` (e.g. the routing decision's headers) with `override`'s names replaced by its values."""
    if not override:
        return base
    names = {name for name, _ in override}
    return (*(h for h in base if h[0] not in names), *override)
