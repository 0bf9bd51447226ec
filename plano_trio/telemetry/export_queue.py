"""The queue between the event loop and the export thread, and that thread.

What the SDK's `BatchSpanProcessor` did for us, as the SDK does it: items
wait in a queue; a thread takes them off in batches of `batch_size`, oldest
first, as soon as a full batch is waiting, else every `delay_s` seconds
(`OTEL_BSP_SCHEDULE_DELAY`), and hands each batch to the exporter with
instrumentation suppressed (so an instrumented gRPC or HTTP client does not
trace the export itself); closing exports what is left, then shuts the
exporter down.

Why not the SDK's: its `on_end` is the request path's way in, seven Python
calls and a `getpid()` system call per request (about 12,000 instructions of
the 130,000 tracing costs the event loop, `bench.tracing_cost`); here it is
one append and one length test (`put`).  The queue needs no bound of its
own: `export.SpanExport` admits only what fits its span bound and counts
the rest, before anything is queued.  (Not handled, because the gateway
never does it: forking with a queue open; a worker forks before it opens
tracing.)
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("plano_trio.tracing")


class ExportQueue:
    """Items for `exporter`, exported in batches by a thread of the queue's own."""

    def __init__(self, exporter: SpanExporter, batch_size: int, delay_s: float) -> None:
        self._exporter = exporter
        self._items: deque[Any] = deque()
        self._batch = max(1, batch_size)
        self._delay = delay_s
        self._wake = threading.Event()
        self._woken = False
        """Set by `put` when it woke the thread for a full batch (so the next puts do not set the event
        again); cleared by the thread once it is up."""
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="plano-trio-trace-export", daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        """Queue `item` (any thread; the request path's only cost)."""
        items = self._items
        items.append(item)
        if len(items) >= self._batch and not self._woken:
            self._woken = True
            self._wake.set()

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> None:
        """Export what is queued, stop the thread, shut the exporter down (blocking, for as long as the
        exporter takes: the caller bounds its wait and shuts the exporter down under it)."""
        self._closing = True
        self._wake.set()
        self._thread.join()
        self._exporter.shutdown()

    def _run(self) -> None:
        while not self._closing:
            full = self._wake.wait(self._delay)
            self._wake.clear()
            self._woken = False
            if not self._closing:
                self._export(at_least_one=not full)
        self._export(everything=True)

    def _export(self, *, at_least_one: bool = False, everything: bool = False) -> None:
        """Export full batches; with `at_least_one` (the delay passed) also a partial one; with
        `everything`, all that is queued."""
        items = self._items
        batch_size = self._batch
        while items and (everything or at_least_one or len(items) >= batch_size):
            at_least_one = False
            batch = [items.popleft() for _ in range(min(batch_size, len(items)))]
            token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
            try:
                self._exporter.export(batch)
            except Exception:  # the exporter's to report (`export._CountingExporter` counts it failed)
                log.exception("tracing: exporting a batch failed")
            finally:
                detach(token)
