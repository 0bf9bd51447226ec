"""The write-behind queue: admission, pending turns, group commit, retry, drain.

Backend-agnostic: it hands batches to a `BatchSink` and knows nothing of SQL.

Request path (all sync, never awaits the database):

- `admit()` reserves a queue slot *before* the request goes upstream, or
  raises `StoreFullError` (-> 503 + Retry-After).  So a turn is refused up
  front or accepted for good; it is never accepted and then dropped.
- `put()` consumes the reservation and enqueues; it cannot fail for lack of
  room after a successful `admit()`.  `release()` gives the slot back when the
  upstream failed and there is nothing to store.
- `pending()` exposes queued-but-uncommitted turns so reads see their own
  writes at once.

Writer task (one, in the store's nursery): wait for the first queued turn;
unless a full batch is already waiting (or the store is draining), linger
`linger_s` for more to join it; then take whatever is queued (up to
`max_batch`) and write it as one batch with one commit.  Every write costs
the event loop a send and a wake-up whatever its size (postgres.py has the
measurement): at low load the linger makes lone turns share one, under load
it makes batches larger, and a backlog is written at once.  A turn is
therefore written within `linger_s` plus one round trip of its arrival when
the database keeps up.

On failure the batch is kept and retried with exponential backoff (capped at
2 s) -- the sink reconnects as needed -- and the retry is flagged so the sink
writes idempotently (a batch that did commit before the connection died must
not fail on duplicates).  Meanwhile the queue absorbs new turns until it is
full, and then `admit()` refuses.  Turns are only ever dropped when the sink
reports them individually as rejected data (a permanent error), which is
logged and counted.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import trio

from .errors import StateUnavailableError, StoreClosedError, StoreFullError
from .model import DrainReport, EncodedTurn

log = logging.getLogger("plano_trio.state")

BACKOFF_INITIAL_S = 0.05
BACKOFF_MAX_S = 2.0
MAX_BATCH_BYTES = 16 * 1024 * 1024
"""A batch also stops growing past this many JSON bytes (a few huge turns must not make one giant COPY)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A turn the backend refused as data (retrying cannot help)."""

    response_id: str
    reason: str


def _describe(exc: Exception) -> str:
    """What the log says about a failed write: a store error's detail, else the exception itself."""
    if isinstance(exc, StateUnavailableError) and exc.detail:
        return exc.detail
    return f"{type(exc).__name__}: {exc}".strip()


class BatchSink(Protocol):
    async def write(self, batch: Sequence[EncodedTurn], *, retry: bool) -> list[Rejection]:
        """Store `batch` in one transaction and return the turns refused as bad data.

        Raise on any transient failure (the whole batch is retried).  `retry`
        is true when an earlier attempt of this batch failed: it may have
        committed anyway, so the write must tolerate rows that already exist.
        """
        ...


class WriteBehind:
    """The queue is a deque the writer empties a batch at a time, woken by an event only when it sleeps.

    A turn costs the request path an append and a dict entry (a trio memory
    channel cost three Python calls a turn on each side, for nothing this
    single consumer needs); a batch costs the writer one wake-up, one linger,
    one write and one pass over its turns to retire them.
    """

    def __init__(self, sink: BatchSink, *, queue_size: int, max_batch: int, linger_s: float = 0.0) -> None:
        self._sink = sink
        self._linger_s = linger_s
        self._queue_size = queue_size
        self._max_batch = max_batch
        self._queue: deque[EncodedTurn] = deque()
        self._queued_bytes = 0
        self._arrived: trio.Event | None = None
        """Set by the next `put()`: exists only while the writer waits for a first turn."""
        self._pending: dict[str, tuple[int, EncodedTurn]] = {}
        self._depth = 0
        self._reserved = 0
        self._no_reservations = trio.Event()
        self._closing = False
        """Draining: `admit()` refuses; a reserved slot may still be `put()`."""
        self._closed = False
        """No more intake (drained, or the writer is gone): a `put()` now is a lost turn."""
        self._done = trio.Event()
        self._next_seq = 0
        self._taken_seq = 0
        self._flushed_seq = 0
        self._flushed_event = trio.Event()
        self._report: DrainReport | None = None
        # counters (read by the store's `stats`)
        self.flushed_total = 0
        self.rejected_total = 0
        self.lost_after_close = 0
        self.refused = 0
        self.batches = 0
        self.last_batch_size = 0
        self.flush_latency_last_s = 0.0
        self._latency_sum_s = 0.0
        self.write_failures = 0

    # --- request path (sync) -----------------------------------------------------------------------

    @property
    def reserved(self) -> int:
        return self._reserved

    @property
    def queue_depth(self) -> int:
        """Accepted turns not yet committed (queued or in the batch being written).

        Committed-or-rejected is the only way out of the count: the batch being
        written, or held for retry, still occupies the queue (counting only
        what waits let a full queue refill behind a slow batch, to
        `queue_size + max_batch`).  So `queue_depth + reserved <= queue_size`
        always holds.
        """
        return self._depth

    @property
    def accepted_total(self) -> int:
        return self._depth + self.flushed_total + self.rejected_total

    @property
    def flush_latency_avg_s(self) -> float:
        return self._latency_sum_s / self.batches if self.batches else 0.0

    def _refuse(self) -> Exception:
        self.refused += 1
        if self._closing:
            return StoreClosedError()
        return StoreFullError(f"state store write queue is full ({self._queue_size} turns)")

    def admit(self) -> None:
        if self._closing or self._depth + self._reserved >= self._queue_size:
            raise self._refuse()
        self._reserved += 1

    def release(self) -> None:
        if self._reserved > 0:
            self._reserved -= 1
            if self._reserved == 0 and self._closing:
                self._no_reservations.set()

    def put(self, record: EncodedTurn) -> None:
        """Enqueue `record`; never blocks.  After `admit()` it cannot fail."""
        if self._reserved > 0:
            self._reserved -= 1  # release(), inlined: this runs for every turn
            if self._reserved == 0 and self._closing:
                self._no_reservations.set()
        elif self._closing or self._depth >= self._queue_size:
            raise self._refuse()
        if self._closed:
            # Only after a drain that gave up at its deadline; the turn was admitted, so count it as lost.
            self.lost_after_close += 1
            log.error(
                "state turn arrived after the store closed; not stored",
                extra={"fields": {"response_id": record.turn.response_id}},
            )
            return
        self._next_seq += 1
        self._queue.append(record)
        self._queued_bytes += len(record.row)
        self._depth += 1
        self._pending[record.turn.response_id] = (self._next_seq, record)
        if self._arrived is not None:
            self._arrived.set()
            self._arrived = None

    def pending(self, response_id: str) -> EncodedTurn | None:
        entry = self._pending.get(response_id)
        return entry[1] if entry else None

    async def wait_flushed(self, response_id: str) -> None:
        """Wait until the pending turn `response_id` (if any) is committed or rejected."""
        entry = self._pending.get(response_id)
        if entry is None:
            return
        seq = entry[0]
        while self._flushed_seq < seq:
            await self._flushed_event.wait()

    # --- writer task -------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                if not self._queue:
                    if self._closed:
                        break
                    self._arrived = arrived = trio.Event()
                    await arrived.wait()
                    continue
                if self._linger_s and not self._closing and len(self._queue) < self._max_batch:
                    await trio.sleep(self._linger_s)  # let more turns join this write
                batch = self._take()
                self._taken_seq += len(batch)
                await self._write(batch, self._taken_seq)
        finally:
            self._close()
            self._done.set()

    def _take(self) -> list[EncodedTurn]:
        """The next batch: up to `max_batch` turns, and no more once it holds `MAX_BATCH_BYTES`."""
        queue = self._queue
        if len(queue) <= self._max_batch and self._queued_bytes <= MAX_BATCH_BYTES:
            batch = list(queue)  # the usual case, in C
            queue.clear()
            self._queued_bytes = 0
            return batch
        batch = [queue.popleft()]
        nbytes = len(batch[0].row)
        while queue and len(batch) < self._max_batch and nbytes < MAX_BATCH_BYTES:
            record = queue.popleft()
            batch.append(record)
            nbytes += len(record.row)
        self._queued_bytes -= nbytes
        return batch

    def _close(self) -> None:
        self._closed = True
        if self._arrived is not None:
            self._arrived.set()
            self._arrived = None

    async def _write(self, batch: list[EncodedTurn], last_seq: int) -> None:
        attempt = 0
        delay = BACKOFF_INITIAL_S
        while True:
            started = trio.current_time()
            try:
                rejections = await self._sink.write(batch, retry=attempt > 0)
            except Exception as exc:
                attempt += 1
                self.write_failures += 1
                log.warning(
                    "state batch write failed; keeping the batch and retrying",
                    extra={
                        "fields": {
                            "batch": len(batch),
                            "attempt": attempt,
                            "retry_in_s": round(delay, 3),
                            "queue_depth": self.queue_depth,
                            "error": _describe(exc),
                        }
                    },
                )
                await trio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            break
        latency = trio.current_time() - started
        if attempt:
            log.info(
                "state batch write recovered",
                extra={"fields": {"batch": len(batch), "attempts": attempt + 1}},
            )
        for rejection in rejections:
            log.error(
                "state turn rejected by the database; not stored",
                extra={"fields": {"response_id": rejection.response_id, "reason": rejection.reason}},
            )
        self.batches += 1
        self.last_batch_size = len(batch)
        self.flush_latency_last_s = latency
        self._latency_sum_s += latency
        self.rejected_total += len(rejections)
        self.flushed_total += len(batch) - len(rejections)
        self._depth -= len(batch)
        pending = self._pending
        for record in batch:
            response_id = record.turn.response_id
            entry = pending.get(response_id)
            if entry is not None and entry[1] is record:  # not a later turn that reused the id
                del pending[response_id]
        self._flushed_seq = last_seq
        self._flushed_event.set()
        self._flushed_event = trio.Event()

    # --- shutdown ----------------------------------------------------------------------------------

    async def drain(self, deadline_s: float) -> DrainReport:
        """Stop intake, flush what is queued within `deadline_s`, report.  Idempotent.

        Waits first for admitted requests to `put()` or `release()` their slot,
        then closes the queue and lets the writer empty it.  When the deadline
        hits, the writer is left running: the owner cancels it.
        """
        if self._report is not None:
            return self._report
        self._closing = True
        started = trio.current_time()
        flushed_before = self.flushed_total
        rejected_before = self.rejected_total
        with trio.move_on_after(deadline_s):
            while self._reserved > 0:
                self._no_reservations = trio.Event()
                await self._no_reservations.wait()
            self._close()
            await self._done.wait()
        self._close()
        timed_out = not self._done.is_set()
        self._report = DrainReport(
            flushed=self.flushed_total - flushed_before,
            lost=self.queue_depth + self._reserved + self.lost_after_close,
            rejected=self.rejected_total - rejected_before,
            timed_out=timed_out,
            elapsed_s=round(trio.current_time() - started, 4),
        )
        return self._report
