"""Scrape-time collectors: numbers the gateway already keeps, read only when Prometheus asks.

The state store, the upstream pool, admission, failover and routing each
keep plain counters for their own use (and for the `/debug/*` JSON views);
`RuntimeCollector` turns a snapshot of them into families at scrape time,
so none of these costs anything per request.  brightstaff's session and
router-skip families are among them, because our sessions and router
count those events anyway.

This package sits below the gateway and cannot import its `Runtime`; the
`Observed` protocol names the attributes read here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sized
from typing import Any, Protocol

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

import plano_trio
from plano_trio.metrics import families as f
from plano_trio.metrics.vectors import Key, values_family
from plano_trio.state import StateStore
from plano_trio.upstream import UpstreamPool


class _LoopLag(Protocol):
    @property
    def lag_s(self) -> float: ...


class _Admission(Protocol):
    @property
    def in_flight(self) -> int: ...
    @property
    def refused(self) -> Mapping[str, int]: ...
    @property
    def loop_lag(self) -> _LoopLag | None: ...


class _Routing(Protocol):
    def stats(self) -> dict[str, Any]:
        """`/debug/routing`'s JSON: `decisions`, and `session_cache`, `sessions`, `metrics_sources` when
        those exist."""
        ...


class Observed(Protocol):
    """What the collector reads from the gateway's `Runtime`."""

    @property
    def store(self) -> StateStore | None: ...
    @property
    def pool(self) -> UpstreamPool: ...
    @property
    def admission(self) -> _Admission: ...
    @property
    def live_requests(self) -> Sized: ...
    @property
    def failover_counts(self) -> Mapping[str, int]: ...
    @property
    def routing(self) -> _Routing: ...


def _one(spec: f.Family, value: float) -> Metric:
    return values_family(spec, [((), value)])


def _by(spec: f.Family, values: Iterable[tuple[Key, float]]) -> Metric:
    return values_family(spec, values)


class RuntimeCollector:
    """plano-trio's own families and brightstaff's session and router-skip families, from `runtime`."""

    def __init__(self, runtime: Observed) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        runtime = self.runtime
        yield from _state(runtime.store)
        yield from _pool(runtime.pool)
        admission = runtime.admission
        yield _one(f.LLM_IN_FLIGHT, admission.in_flight)
        yield _by(f.LLM_REFUSED, (((reason,), n) for reason, n in admission.refused.items()))
        lag = admission.loop_lag
        yield _by(f.LOOP_LAG, [((), lag.lag_s)] if lag is not None else [])
        yield _one(f.STREAMS_IN_FLIGHT, len(runtime.live_requests))
        yield _by(f.FAILOVER, (((event,), n) for event, n in runtime.failover_counts.items()))
        yield from _routing(runtime.routing.stats())


def _state(store: StateStore | None) -> Iterator[Metric]:
    """The state store's counters (families without samples when no `state_storage` is configured)."""
    stats = store.stats if store is not None else None
    backend = (stats.backend,) if stats is not None else ()

    def one(spec: f.Family, value: float) -> Metric:
        return _by(spec, [(backend, value)] if stats is not None else [])

    yield one(f.STATE_QUEUE_DEPTH, stats.queue_depth if stats else 0)
    yield one(f.STATE_RESERVED, stats.reserved if stats else 0)
    yield one(f.STATE_BATCHES, stats.batches if stats else 0)
    yield one(f.STATE_LAST_BATCH, stats.last_batch_size if stats else 0)
    yield one(f.STATE_FLUSH_SECONDS, stats.flush_latency_avg_s * stats.batches if stats else 0)
    yield one(f.STATE_FLUSH_LAST, stats.flush_latency_last_s if stats else 0)
    yield one(f.STATE_WRITE_FAILURES, stats.write_failures if stats else 0)
    yield one(f.STATE_REFUSED, stats.refused if stats else 0)
    yield one(f.STATE_FLUSHED, stats.flushed_total if stats else 0)
    yield one(f.STATE_REJECTED, stats.rejected_total if stats else 0)
    yield one(f.STATE_READS, stats.reads if stats else 0)
    yield one(f.STATE_ENTRIES, stats.entries if stats else 0)
    yield one(f.STATE_BYTES, stats.bytes if stats else 0)
    if stats is None:
        yield _by(f.STATE_CACHE, [])
        yield _by(f.STATE_REMOVED, [])
        return
    yield _by(
        f.STATE_CACHE,
        [((stats.backend, "hit"), stats.cache_hits), ((stats.backend, "miss"), stats.cache_misses)],
    )
    yield _by(
        f.STATE_REMOVED,
        [((stats.backend, "evicted"), stats.evicted), ((stats.backend, "expired"), stats.expired)],
    )


def _pool(pool: UpstreamPool) -> Iterator[Metric]:
    origins = pool.origin_stats()
    yield _by(f.UPSTREAM_OPEN, (((o.origin,), o.in_use + o.idle) for o in origins))
    yield _by(f.UPSTREAM_IDLE, (((o.origin,), o.idle) for o in origins))
    yield _by(f.UPSTREAM_WAITING, (((o.origin,), o.waiting) for o in origins))
    yield _by(f.UPSTREAM_OPENED, (((o.origin,), o.opened) for o in origins))


def _routing(stats: Mapping[str, Any]) -> Iterator[Metric]:
    """Routing's `/debug/routing` numbers, as brightstaff's session families and our routing families."""
    decisions: Mapping[str, int] = stats.get("decisions", {})
    yield _by(f.ROUTING_DECISIONS, (((k,), n) for k, n in decisions.items() if k != "router_calls"))
    yield _one(f.ROUTER_CALLS, decisions.get("router_calls", 0))
    replayed = decisions.get("replayed", 0)
    yield _by(f.ROUTER_SKIPS, [(("not_user_turn",), replayed)] if replayed else [])
    cache: Mapping[str, Any] = stats.get("session_cache", {})
    sessions: Mapping[str, Any] = stats.get("sessions", {})
    events: list[tuple[Key, float]] = []
    if cache:
        events = [
            (("hit",), cache.get("hits", 0)),
            (("miss",), cache.get("misses", 0)),
            (("error",), cache.get("errors", 0) + cache.get("timeouts", 0)),
            (("store",), sessions.get("stores", 0)),
        ]
    yield _by(f.SESSION_CACHE, events)
    refreshes = sessions.get("refreshes", 0)
    yield _by(f.SESSION_BINDING, [(("refresh",), refreshes)] if refreshes else [])
    switches: Mapping[str, Mapping[str, int]] = sessions.get("switch_decisions", {})
    yield _by(
        f.SESSION_SWITCH,
        (((decision, reason), n) for decision, reasons in switches.items() for reason, n in reasons.items()),
    )
    backend = str(cache.get("backend", ""))
    yield _by(
        f.SESSION_STORE,
        (((backend, k), v) for k, v in cache.items() if k != "backend" and isinstance(v, int | float)),
    )
    feed: Mapping[str, Any] = stats.get("metrics_sources", {})
    failures: Mapping[str, int] = feed.get("refresh_failures", {})
    last: Mapping[str, float] = feed.get("last_refresh", {})
    yield _by(f.FEED_FAILURES, (((source,), n) for source, n in failures.items()))
    yield _by(f.FEED_LAST_REFRESH, (((source,), t) for source, t in last.items()))


class BuildInfo:
    """`brightstaff_build_info{version, git_sha}` = 1: plano-trio's version, and `GIT_SHA` from the
    environment (as brightstaff takes it from the build's), else `unknown`."""

    def __init__(self) -> None:
        family = GaugeMetricFamily(f.BUILD_INFO.name, f.BUILD_INFO.help, labels=f.BUILD_INFO.labels)
        family.add_metric([plano_trio.__version__, os.environ.get("GIT_SHA") or "unknown"], 1.0)
        self.family = family

    def collect(self) -> Iterator[Metric]:
        yield self.family
