"""The export queue: full batches go at once, a partial one after the delay, oldest first; closing
exports what is left and shuts the exporter down; a failing exporter does not stop the thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, get_value
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from plano_trio.telemetry.export_queue import ExportQueue


class Recording(SpanExporter):
    """Keeps each batch; `fail_first` batches raise."""

    def __init__(self, fail_first: int = 0) -> None:
        self.batches: list[list[Any]] = []
        self.suppressed: list[object] = []
        self.shut = False
        self.fail_first = fail_first
        self.got = threading.Event()

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.suppressed.append(get_value(_SUPPRESS_INSTRUMENTATION_KEY))
        if self.fail_first:
            self.fail_first -= 1
            raise RuntimeError("collector exploded")
        self.batches.append(list(spans))
        self.got.set()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.shut = True


def test_a_full_batch_goes_at_once_and_a_partial_one_waits() -> None:
    exporter = Recording()
    queue = ExportQueue(exporter, batch_size=4, delay_s=60)
    for item in range(6):
        queue.put(item)
    assert exporter.got.wait(5)
    time.sleep(0.05)
    assert exporter.batches == [[0, 1, 2, 3]] and len(queue) == 2  # the rest waits for the delay
    queue.close()
    assert exporter.batches == [[0, 1, 2, 3], [4, 5]] and exporter.shut and len(queue) == 0
    assert exporter.suppressed == [True, True]  # an instrumented client would not trace the export


def test_after_the_delay_a_partial_batch_goes() -> None:
    exporter = Recording()
    queue = ExportQueue(exporter, batch_size=100, delay_s=0.05)
    queue.put("a")
    queue.put("b")
    assert exporter.got.wait(5)
    assert exporter.batches == [["a", "b"]]
    queue.close()


def test_closing_exports_everything_in_batches_oldest_first() -> None:
    exporter = Recording()
    queue = ExportQueue(exporter, batch_size=3, delay_s=60)
    queue._woken = True  # the thread sleeps through the puts: all of it is left for closing
    for item in range(8):
        queue.put(item)
    queue.close()
    assert [item for batch in exporter.batches for item in batch] == list(range(8))
    assert all(len(batch) <= 3 for batch in exporter.batches)


def test_a_failing_export_does_not_stop_the_thread() -> None:
    exporter = Recording(fail_first=1)
    queue = ExportQueue(exporter, batch_size=1, delay_s=60)
    queue.put("lost")
    deadline = time.monotonic() + 5
    while not exporter.suppressed and time.monotonic() < deadline:
        time.sleep(0.01)
    queue.put("kept")
    assert exporter.got.wait(5)
    queue.close()
    assert exporter.batches == [["kept"]]


def test_many_producers_lose_nothing() -> None:
    exporter = Recording()
    queue = ExportQueue(exporter, batch_size=7, delay_s=0.01)

    def produce(base: int) -> None:
        for item in range(500):
            queue.put(base + item)

    threads = [threading.Thread(target=produce, args=(base,)) for base in (0, 1000, 2000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.close()
    exported = [item for batch in exporter.batches for item in batch]
    assert sorted(exported) == sorted(base + item for base in (0, 1000, 2000) for item in range(500))
