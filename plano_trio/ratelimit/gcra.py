"""GCRA, the generic cell rate algorithm, as pure arithmetic on integer microseconds.

A bucket is one number, its theoretical arrival time (TAT): the moment the
bucket would be empty again if nothing more arrived.  A quota of `tokens`
per `period` spends `period / tokens` of TAT per token and lets the TAT run
at most one `period` ahead of now, so a full bucket takes a whole period's
tokens at once (the burst) and then refills steadily, exactly as Plano's
`governor` quotas do (`Quota::per_minute(n)`: burst n, one token back every
minute/n).  Unlike a fixed window, nothing resets at a boundary, so no
client gets two windows' worth by straddling one; unlike a sliding log, a
bucket is one integer, which is what lets Redis hold it and update it in one
script.

A request charges one or more buckets at once (a key's own limit and a
`ratelimits` rule): all of them must admit it, and none is charged when
one refuses.  A cost larger than a whole period can never be admitted; that
is told apart (`retry_after_us` None) so the client is not told to retry.

The Redis script (`redis_store.GCRA_SCRIPT`) runs the same arithmetic on
values this module computes (`Quota.increment_us`, `Quota.period_us`), so
the two agree to the microsecond; tests check both against each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

PERIOD_US: Final = {
    "second": 1_000_000,
    "minute": 60_000_000,
    "hour": 3_600_000_000,
    "day": 86_400_000_000,
}
"""One `unit` in microseconds.  `day` is a real day (Plano gives `day` a per-hour quota of tokens/24)."""


class Quota(NamedTuple):
    tokens: int
    """Tokens per period, and the most a full bucket admits at once."""
    period_us: int

    @classmethod
    def per(cls, tokens: int, unit: str) -> Quota:
        return cls(tokens, PERIOD_US[unit])

    def increment_us(self, cost: int) -> int:
        """How far `cost` tokens move the TAT: cost * period / tokens, rounded up (a charge is never
        free because of rounding)."""
        return -(-cost * self.period_us // self.tokens)


class Decision(NamedTuple):
    allowed: bool
    tats: tuple[int, ...] = ()
    """The buckets' new TATs, in the order given (when allowed)."""
    retry_after_us: int | None = 0
    """When refused: how long until the same request would be admitted; None: never (its cost is over
    a whole period of some quota)."""
    refused: int = -1
    """When refused: the index of the bucket that refused (the one with the longest wait)."""


def decide(now_us: int, cost: int, quotas: Sequence[Quota], tats: Sequence[int | None]) -> Decision:
    """Admit `cost` tokens into every bucket (`tats[i]` under `quotas[i]`; None: a fresh bucket), or none.

    Refused: `retry_after_us` is the longest wait among the buckets that refused.
    """
    new: list[int] = []
    wait = 0
    refused = -1
    for index, (quota, tat) in enumerate(zip(quotas, tats, strict=True)):
        increment = quota.increment_us(cost)
        if increment > quota.period_us:
            return Decision(False, retry_after_us=None, refused=index)
        start = now_us if tat is None or tat < now_us else tat
        ahead = start + increment - now_us
        if ahead > quota.period_us and ahead - quota.period_us > wait:
            wait, refused = ahead - quota.period_us, index
        new.append(start + increment)
    if refused >= 0:
        return Decision(False, retry_after_us=wait, refused=refused)
    return Decision(True, tuple(new))


def retry_after_s(wait_us: int) -> int:
    """A `Retry-After` value: whole seconds, rounded up, at least 1."""
    return max(1, -(-wait_us // 1_000_000))
