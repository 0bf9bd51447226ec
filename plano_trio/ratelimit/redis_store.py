"""Buckets in Redis, shared by every gateway instance: one atomic script per check, failing open.

One request is one `EVALSHA` (an `EVAL` the first time after Redis lost its
script cache): the script reads every bucket the request charges, decides
with the same arithmetic as `gcra.decide` (the increments and periods are
computed here and passed in, so the script only adds and compares), and
writes the new TATs only when all of them admit the request.  Redis runs a
script alone, so two instances charging one bucket at once cannot both
spend its last tokens.  Time is Redis's own `TIME`: instances whose clocks
disagree still share one timeline.  Each TAT expires when its bucket would
be full again, so Redis holds only live buckets.

Fail open.  A rate limit must not take the gateway down with Redis: a call
that has not answered within `timeout_s` (connecting included), or fails,
lets the request through unlimited, counted (`failed_open`), and for the
next `SKIP_AFTER_FAILURE_S` requests go through without trying Redis, so a
hung Redis costs one wave of requests `timeout_s` each, not every request.
Failures are logged when they start, then at most once per
`LOG_INTERVAL_S`, and once when Redis answers again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Final

import trio

from plano_trio.session.failopen import ReplyError, describe_url
from plano_trio.session.redis_native import NativeRedis, make_ssl_context, parse_redis_url

from .gcra import Decision
from .rules import Charge
from .store import RateLimitCounters

log = logging.getLogger("plano_trio.ratelimit")

KEY_PREFIX: Final = "plano-trio:ratelimit:"
SKIP_AFTER_FAILURE_S: Final = 1.0
LOG_INTERVAL_S: Final = 30.0

GCRA_SCRIPT: Final = b"""
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local new = {}
local wait, refused = 0, -1
for i = 1, #KEYS do
  local inc = tonumber(ARGV[2 * i])
  local period = tonumber(ARGV[2 * i + 1])
  if inc > period then
    return {0, -1, i - 1}
  end
  local tat = tonumber(redis.call('GET', KEYS[i]) or '')
  if tat == nil or tat < now then
    tat = now
  end
  local ahead = tat + inc - now
  if ahead > period and ahead - period > wait then
    wait = ahead - period
    refused = i - 1
  end
  new[i] = tat + inc
end
if refused >= 0 then
  return {0, wait, refused}
end
for i = 1, #KEYS do
  local ttl_ms = math.floor((new[i] - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.0f', new[i]), 'PX', string.format('%.0f', ttl_ms))
end
return {1}
"""
"""KEYS: the buckets.  ARGV[1]: now in µs ('' = Redis's TIME; tests pass their own), then per bucket its
increment and period in µs.  Answers {1} (admitted and charged), {0, wait_µs, index} (refused by bucket
`index`), or {0, -1, index} (never: the cost is over a whole period).  Integers stay below 2^53, so Lua's
doubles hold them exactly; `%.0f` writes them without an exponent."""

GCRA_SHA1: Final = hashlib.sha1(GCRA_SCRIPT).hexdigest().encode()


def script_args(charges: Sequence[Charge], cost: int, now_us: int | None = None) -> list[bytes]:
    """The script's ARGV for `charges` (see `GCRA_SCRIPT`)."""
    args = [b"" if now_us is None else str(now_us).encode()]
    for charge in charges:
        args += (str(charge.quota.increment_us(cost)).encode(), str(charge.quota.period_us).encode())
    return args


def decision_of(reply: object) -> Decision:
    """The script's answer as a `Decision`; ValueError for anything else."""
    if isinstance(reply, list) and reply == [1]:
        return Decision(True)
    if isinstance(reply, list) and len(reply) == 3 and all(type(x) is int for x in reply) and reply[0] == 0:
        wait, index = reply[1], reply[2]
        return Decision(False, retry_after_us=None if wait < 0 else wait, refused=index)
    raise ValueError(f"unexpected script reply {reply!r:.80}")


class RedisBuckets:
    """`Buckets` on Redis through the native client."""

    def __init__(
        self,
        client: NativeRedis,
        counters: RateLimitCounters,
        *,
        timeout_s: float,
        target: str,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.counters = counters
        self.timeout_s = timeout_s
        self._client = client
        self._target = target
        self._clock = clock
        self._skip_until = -float("inf")
        self._failing = False
        self._last_logged = -float("inf")
        self._unlogged = 0
        self._calls: set[trio.CancelScope] = set()
        self._closed = False

    async def take(self, charges: Sequence[Charge], cost: int) -> Decision:
        if self._closed or self._clock() < self._skip_until:
            self.counters.failed_open += 1
            return Decision(True)
        keys = [(KEY_PREFIX + charge.bucket).encode() for charge in charges]
        args = script_args(charges, cost)
        reason = "timeout"
        with trio.move_on_after(self.timeout_s) as scope:
            self._calls.add(scope)
            try:
                decision = decision_of(await self._client.evalsha(GCRA_SHA1, GCRA_SCRIPT, keys, args))
            except (ReplyError, ValueError) as exc:  # Redis is up but refused the script: no skip window
                self.counters.store_errors += 1
                self.counters.failed_open += 1
                self._failure(f"{type(exc).__name__}: {exc}")
                return Decision(True)
            except Exception as exc:
                self.counters.store_errors += 1
                reason = f"{type(exc).__name__}: {exc}"
            else:
                self._recovered()
                return decision
            finally:
                self._calls.discard(scope)
        if scope.cancelled_caught and not self._closed:
            self.counters.store_timeouts += 1
        self.counters.failed_open += 1
        self._skip_until = self._clock() + SKIP_AFTER_FAILURE_S
        self._failure(reason)
        return Decision(True)

    def close(self) -> None:
        """Cancel the calls waiting on Redis (they fail open) and fail every later call open at once."""
        self._closed = True
        for scope in self._calls:
            scope.cancel()

    def _failure(self, reason: str) -> None:
        now = self._clock()
        if self._failing and now - self._last_logged < LOG_INTERVAL_S:
            self._unlogged += 1
            return
        log.warning(
            "rate limit store unavailable; requests pass unlimited",
            extra={"fields": {"target": self._target, "reason": reason, "not_logged": self._unlogged}},
        )
        self._failing, self._last_logged, self._unlogged = True, now, 0

    def _recovered(self) -> None:
        if self._failing:
            log.info("rate limit store reachable again", extra={"fields": {"target": self._target}})
            self._failing = False


@asynccontextmanager
async def open_redis_buckets(
    url: str, counters: RateLimitCounters, *, timeout_s: float
) -> AsyncIterator[RedisBuckets]:
    """Buckets on the Redis at `url` (connected on first use); every connection closed on exit.

    Raises `ValueError` before yielding for a URL the native client cannot use.
    """
    target = describe_url(url)
    try:
        endpoint = parse_redis_url(url)
        ssl_context = make_ssl_context(endpoint)
    except ValueError as exc:
        raise ValueError(f"plano_trio.ratelimit_store ({target}): {exc}") from None
    client = NativeRedis(endpoint, ssl_context)
    buckets = RedisBuckets(client, counters, timeout_s=timeout_s, target=target)
    try:
        yield buckets
    finally:
        buckets.close()
        with trio.CancelScope(shield=True):
            await client.aclose()
