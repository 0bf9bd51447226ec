"""Admission: refuse work the process cannot take, at once, instead of queueing it.

A gateway that accepts every request only moves the overload somewhere
worse (timeouts after minutes, memory growth).  A new LLM request is
answered 503 with `Retry-After` before its body is read, so a load balancer
or client can go elsewhere, when either

* `max_concurrent_requests` LLM requests are already in flight, or
* `max_loop_lag_ms` is set and the event loop runs later than that
  (`gateway.loop_lag`): the process is out of CPU for the streams it holds,
  and a new one would wait seconds for its first token.

Health checks and the other cheap endpoints are never admitted here, so
never refused.  Refusals are counted by reason for the metrics.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from plano_trio.gateway.errors import ApiError, unavailable

if TYPE_CHECKING:
    from plano_trio.gateway.loop_lag import LoopLag

CONCURRENCY = "max_concurrent_requests"
LOOP_LAG = "loop_lag"
"""Reasons for a refusal (the `reason` label of `plano_trio_llm_requests_refused_total`)."""


class Admission:
    """A counter, not a semaphore: nobody ever waits for a slot.

    Used as `with admission:` around a request; a plain context manager
    rather than a generator one, since it runs on every request.  Without
    `loop_lag` (the key unset) the lag costs one attribute test per request.
    """

    __slots__ = ("in_flight", "limit", "loop_lag", "refused")

    def __init__(self, limit: int, loop_lag: LoopLag | None = None) -> None:
        self.limit = limit
        self.in_flight = 0
        self.loop_lag = loop_lag
        """How late the loop runs (None: `max_loop_lag_ms` unset, never refused for it)."""
        self.refused: Counter[str] = Counter()
        """Requests refused since start, by reason (`CONCURRENCY`, `LOOP_LAG`)."""

    def __enter__(self) -> None:
        if self.in_flight >= self.limit:
            raise self._refuse(
                CONCURRENCY, f"The gateway is at its limit of {self.limit} concurrent requests"
            )
        lag = self.loop_lag
        if lag is not None and lag.over:
            raise self._refuse(
                LOOP_LAG,
                f"The gateway's event loop is running {lag.lag_s * 1000:.0f} ms late "
                f"(limit {lag.limit_s * 1000:g} ms)",
            )
        self.in_flight += 1

    def __exit__(self, *exc_info: object) -> None:
        self.in_flight -= 1

    def _refuse(self, reason: str, why: str) -> ApiError:
        self.refused[reason] += 1
        return unavailable(f"{why}; retry shortly", "overloaded")
