"""The last N traces a listener received, grouped by span links, bounded in count and in bytes.

Spans are grouped by `traceId`, except that a span whose parent is already stored joins its parent's
group, and a span that is the parent of stored spans pulls their group into its own.  That is what Plano's
listener does: its spans can reach the collector under different trace ids while still naming their parent
(a trace id not propagated between two of its processes), and the viewer should still show one tree.
Groups are ordered by their last update; `snapshot` lists the most recent first, which is what the
viewer's `last` means.

Bounds: `Limits.max_traces` groups, `max_spans_per_trace` spans in each (later ones are only counted),
and `max_total_bytes` for an estimate of the memory the spans hold; past either store-wide bound the least
recently updated group goes.  Ids of spans not kept are not indexed, so a sender flooding one trace grows
no index.

Thread-safe (one lock): the gRPC server calls it from its worker threads, the HTTP receiver from trio's.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from plano_trio.tracing_cli.limits import Limits
from plano_trio.tracing_cli.spans import Span, Trace

# Checked against a real listener: 60 traces of 500 spans with 15 forty-character attributes each filled
# the 64 MiB estimate at 30 traces, and the process's RSS grew by 81 MiB (from 51 MiB).
SPAN_OVERHEAD_BYTES = 600
"""Rough CPython cost of one stored span beyond its text: the struct, its strings' headers, the tuple."""
SMALLEST_TRACE_JSON = len(b'{"trace_id":"","spans":[]}')
ATTRIBUTE_OVERHEAD_BYTES = 200
"""Rough cost of one attribute beyond its key and value text: two structs and two string headers."""


def span_cost(span: Span) -> int:
    """The estimate `max_total_bytes` is checked against (characters count as bytes)."""
    text = len(span.name) + len(span.service) + len(span.trace_id) + len(span.span_id)
    for attribute in span.attributes:
        text += len(attribute.key) + len(attribute.value.text() or "") + ATTRIBUTE_OVERHEAD_BYTES
    return SPAN_OVERHEAD_BYTES + text


@dataclass(slots=True)
class _Group:
    key: str
    spans: list[Span] = field(default_factory=list)
    span_ids: set[str] = field(default_factory=set)
    waiting_for: set[str] = field(default_factory=set)
    """Parent span ids named by spans of this group and not stored yet."""
    cost: int = 0
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class StoreStats:
    traces: int
    spans: int
    bytes_estimate: int
    dropped_spans: int
    """Spans refused because their trace was full, since the start."""
    evicted_traces: int


class TraceStore:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._groups: OrderedDict[str, _Group] = OrderedDict()
        self._group_of_span: dict[str, str] = {}
        self._group_waiting_for: dict[str, str] = {}
        """Parent span id -> the group holding spans that name it."""
        self._cost = 0
        self._spans = 0
        self._dropped = 0
        self._evicted = 0
        self._lock = threading.Lock()

    def add(self, spans: Iterable[Span]) -> None:
        with self._lock:
            for span in spans:
                self._add(span)
            self._enforce_bounds()

    def snapshot(self) -> list[Trace]:
        """Every stored trace, most recently updated first."""
        with self._lock:
            groups = [(group.key, tuple(group.spans)) for group in self._groups.values()]
        return [Trace(key, spans) for key, spans in reversed(groups)]

    def reply_json(self) -> bytes:
        """The `GetTraces` answer: `{"traces": [...]}`, newest first, within `Limits.reply_budget_bytes`.

        A trace that does not fit is left out and smaller older ones still go in, so one huge trace
        cannot hide the rest from a viewer that refuses answers over gRPC's default 4 MiB.
        """
        budget = self.limits.reply_budget_bytes - len(b'{"traces":[]}')
        parts: list[bytes] = []
        for trace in self.snapshot():
            if budget < SMALLEST_TRACE_JSON:
                break
            encoded = msgspec.json.encode(trace)
            if len(encoded) + 1 <= budget:
                parts.append(encoded)
                budget -= len(encoded) + 1
        return b'{"traces":[' + b",".join(parts) + b"]}"

    def stats(self) -> StoreStats:
        with self._lock:
            return StoreStats(len(self._groups), self._spans, self._cost, self._dropped, self._evicted)

    def _add(self, span: Span) -> None:
        parent, own = span.parent_span_id, span.span_id
        key = self._group_of_span.get(parent) if parent else None
        waiting = self._group_waiting_for.pop(own, None)
        if key is None:
            # A root that arrives after its children keeps its own trace id, the one a user selects by.
            key = waiting if waiting is not None and parent else span.trace_id
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key)
        else:
            self._groups.move_to_end(key)
        if waiting is not None:
            self._groups[waiting].waiting_for.discard(own)
            self._merge(waiting, group)
        if own in group.span_ids:
            return
        if len(group.spans) >= self.limits.max_spans_per_trace:
            group.dropped += 1
            self._dropped += 1
            return
        self._insert(group, span)
        if parent and parent not in self._group_of_span:
            sibling = self._group_waiting_for.get(parent)
            if sibling is not None and sibling != group.key:
                self._merge(sibling, group)
            self._group_waiting_for[parent] = group.key
            group.waiting_for.add(parent)

    def _insert(self, group: _Group, span: Span) -> None:
        cost = span_cost(span)
        group.spans.append(span)
        group.span_ids.add(span.span_id)
        group.cost += cost
        self._group_of_span[span.span_id] = group.key
        self._cost += cost
        self._spans += 1

    def _merge(self, source_key: str, target: _Group) -> None:
        """Move the spans of group `source_key` into `target`; the source group ends."""
        if source_key == target.key:
            return
        source = self._groups.pop(source_key)
        self._forget(source)
        for span in source.spans:
            if span.span_id in target.span_ids:
                continue
            if len(target.spans) >= self.limits.max_spans_per_trace:
                target.dropped += 1
                self._dropped += 1
                continue
            self._insert(target, span)
        for parent in source.waiting_for:
            if parent not in self._group_of_span:
                self._group_waiting_for[parent] = target.key
                target.waiting_for.add(parent)

    def _forget(self, group: _Group) -> None:
        """Unindex a group that left the store (evicted or merged away)."""
        for span_id in group.span_ids:
            if self._group_of_span.get(span_id) == group.key:
                del self._group_of_span[span_id]
        for parent in group.waiting_for:
            if self._group_waiting_for.get(parent) == group.key:
                del self._group_waiting_for[parent]
        self._cost -= group.cost
        self._spans -= len(group.spans)

    def _enforce_bounds(self) -> None:
        while self._groups and (
            len(self._groups) > self.limits.max_traces or self._cost > self.limits.max_total_bytes
        ):
            _, oldest = self._groups.popitem(last=False)
            self._forget(oldest)
            self._evicted += 1
