"""What the retry planner is told and what it answers: plain values, no behaviour beyond wording.

`Failure` describes one failed attempt; `next()` answers `Retry` (where and
after how long) or `Exhausted` (stop, and why, in words a client can read).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from plano_trio.config.schema import ModelProvider

FailureKind = Literal["status", "timeout", "high_latency"]


class Failure(NamedTuple):
    """One failed attempt.

    An unreachable provider (connection refused or reset, no response at all)
    is `Failure("status", 502)`: it is retried like a bad gateway answer.
    `measured_ms` is the latency that was measured (time to first byte, or in
    all); for a timeout it also feeds the high-latency trigger.
    """

    kind: FailureKind
    status: int | None = None
    retry_after_s: float | None = None
    measured_ms: int | None = None

    def describe(self) -> str:
        """`HTTP 429`, `timeout after 30000 ms`, `high latency (2400 ms)`: for messages and logs."""
        if self.kind == "status":
            return f"HTTP {self.status if self.status is not None else 502}"
        if self.kind == "timeout":
            return "timeout" if self.measured_ms is None else f"timeout after {self.measured_ms} ms"
        return "high latency" if self.measured_ms is None else f"high latency ({self.measured_ms} ms)"


Attempt = tuple[str, Failure]
"""(provider name, how it failed)."""


class Retry(NamedTuple):
    """Send the request again, to `target`, after sleeping `delay_s` seconds."""

    target: ModelProvider
    delay_s: float


class Exhausted(NamedTuple):
    """Stop: answer the client with an error.

    `reason` is human text for the client's error message.  `retry_after_s`
    is what a `Retry-After` response header should say, when known: the
    shortest remaining block when every candidate is blocked, else the
    (capped) Retry-After of the last failure, if it sent one.
    `attempts` is empty when nothing was sent at all (every candidate was
    blocked at initial selection).
    """

    attempts: tuple[Attempt, ...]
    reason: str
    retry_after_s: int | None = None

    @property
    def status(self) -> int:
        """The HTTP status to answer with, as Plano's proposed design picks it.

        The last upstream status; 504 when the last attempt timed out or was
        too slow; 503 when nothing was sent because every candidate is
        blocked (the client should come back after `retry_after_s`).
        """
        if not self.attempts:
            return 503
        last = self.attempts[-1][1]
        if last.kind == "status":
            return last.status if last.status is not None else 502
        return 504


def describe_attempts(attempts: tuple[Attempt, ...] | list[Attempt]) -> str:
    """`all 2 attempts failed (openai/gpt-4o: HTTP 429; anthropic/claude: HTTP 503)`."""
    count = len(attempts)
    detail = "; ".join(f"{name}: {failure.describe()}" for name, failure in attempts)
    lead = "1 attempt failed" if count == 1 else f"all {count} attempts failed"
    return f"{lead} ({detail})"
