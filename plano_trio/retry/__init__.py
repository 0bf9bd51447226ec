"""Retries and failover, decided without I/O.

`RetryPlan` says, for one request, which provider each attempt goes to and
how long to wait before it; `BlockState` holds the process-wide Retry-After
and high-latency blocks that all requests share; `listener_policy` turns a
listener's `max_retries` into a policy.  The gateway sends, measures and
sleeps; nothing here reads a clock, a socket or a global.

Imports only `plano_trio.config` and the standard library.
"""

from plano_trio.retry.blocks import BlockState
from plano_trio.retry.listener import listener_policy
from plano_trio.retry.outcome import Exhausted, Failure, Retry
from plano_trio.retry.plan import RetryPlan
from plano_trio.retry.ranked import ranked_policy

__all__ = ["BlockState", "Exhausted", "Failure", "Retry", "RetryPlan", "listener_policy", "ranked_policy"]
