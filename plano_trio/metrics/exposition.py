"""One process's families, several workers' families added into one, and the text of either.

`ProcessMetrics` gathers what a scrape of this process shows: brightstaff's
request families (`record.GATEWAY`), the runtime's counters
(`collectors.RuntimeCollector`), `brightstaff_build_info` and
prometheus-client's process collector (`process_*`, which Plano's
dashboard reads for RSS and CPU).  `snapshot()` runs on the trio thread
(it reads live dicts) and costs well under a millisecond; turning the
snapshot into text (`render`, prometheus-client's `generate_latest`, about
10 µs a line) runs in a thread, so a scrape never holds up a stream.

`merge` is the pure half of `--workers N`: samples with the same name and
labels are added, so counters, histogram buckets, in-flight gauges, pool
sizes, CPU seconds and RSS become the whole gateway's.  A few gauges are
not amounts: `MAX_OF` keep the largest value (build info, descriptor
limit, last-batch and last-refresh figures, the loop lag: the most lagging
worker's), `MIN_OF` the smallest (the start time: the gateway's oldest
process).  Workers hand each other their
snapshots as msgpack (`encode`, `decode`), not as text: prometheus-client's
text parser took ~13 ms per worker for a typical exposition.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import msgspec
from prometheus_client import ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from plano_trio.metrics import families as f
from plano_trio.metrics.collectors import BuildInfo, Observed, RuntimeCollector
from plano_trio.metrics.record import GATEWAY, GatewayMetrics

MAX_OF = frozenset(
    {
        f.BUILD_INFO.name,
        "process_max_fds",
        f.STATE_FLUSH_LAST.name,
        f.STATE_LAST_BATCH.name,
        f.FEED_LAST_REFRESH.name,
        f.LOOP_LAG.name,
    }
)
MIN_OF = frozenset({"process_start_time_seconds"})


class Families:
    """A fixed list of families, as a prometheus-client collector."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class ProcessMetrics:
    """Everything this process exposes; `runtime` None leaves out the runtime's families (tests)."""

    def __init__(self, runtime: Observed | None, gateway: GatewayMetrics = GATEWAY) -> None:
        parts: list[Collector] = [gateway, BuildInfo(), ProcessCollector(registry=None)]
        if runtime is not None:
            parts.insert(1, RuntimeCollector(runtime))
        self.parts = parts

    def collect(self) -> Iterator[Metric]:
        for part in self.parts:
            yield from part.collect()

    def snapshot(self) -> list[Metric]:
        return list(self.collect())


def render(families: list[Metric]) -> bytes:
    """Prometheus text (format 0.0.4) of `families`."""
    return generate_latest(Families(families))


_Sample = tuple[str, dict[str, str], float]
_Family = tuple[str, str, str, list[_Sample]]
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[_Family])


def encode(families: list[Metric]) -> bytes:
    """A snapshot as msgpack, for another worker's `decode`."""
    return _encoder.encode(
        [
            (f.name, f.type, f.documentation, [(s.name, s.labels, s.value) for s in f.samples])
            for f in families
        ]
    )


def decode(data: bytes) -> list[Metric]:
    """A peer's snapshot (raises `msgspec.DecodeError` or `ValidationError` for anything else)."""
    families = []
    for name, kind, documentation, samples in _decoder.decode(data):
        family = Metric(name, documentation, kind)
        for sample_name, labels, value in samples:
            family.add_sample(sample_name, labels, value)
        families.append(family)
    return families


def merge(snapshots: Iterable[list[Metric]]) -> list[Metric]:
    """The families of several snapshots with their samples combined (see the module docstring).

    Families and samples keep the order they are first seen in, so each
    histogram's buckets stay in `le` order.
    """
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for families in snapshots:
        for family in families:
            target = merged.get(family.name)
            if target is None:
                target = merged[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            combine = max if family.name in MAX_OF else min if family.name in MIN_OF else _add
            seen = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sample.labels.items()))
                old = seen.get(key)
                seen[key] = sample.value if old is None else combine(old, sample.value)
    for name, family in merged.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    return list(merged.values())


def _add(a: float, b: float) -> float:
    return a + b
