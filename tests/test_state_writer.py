"""The write-behind queue's bound: `queue_depth + reserved <= queue_size` under any interleaving.

A gated sink holds each batch until the test opens (or fails) it, so turns
sit in all three places at once: reserved by `admit()`, queued in the
channel, and taken by the writer into a batch that is being written.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Literal

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.state import StoreFullError, Turn
from plano_trio.state.model import EncodedTurn, encode_turn
from plano_trio.state.writer import Rejection, WriteBehind


class GatedSink:
    """Each `write` waits for `open()` (commit) or `fail()` (a transient error, retried by the writer)."""

    def __init__(self) -> None:
        self._gate = trio.Event()
        self._fail = False

    async def write(self, batch: Sequence[EncodedTurn], *, retry: bool) -> list[Rejection]:
        gate = self._gate
        await gate.wait()
        if self._fail:
            raise OSError("connection lost")
        return []

    def _release(self, fail: bool) -> None:
        self._fail = fail
        self._gate.set()
        self._gate = trio.Event()

    def open(self) -> None:
        self._release(False)

    def fail(self) -> None:
        self._release(True)


def record(n: int) -> EncodedTurn:
    return encode_turn(Turn(f"resp_{n}", None, [], [], "m", "p", time.time()))


def check_bound(writer: WriteBehind, queue_size: int) -> None:
    assert 0 <= writer.queue_depth <= queue_size
    assert writer.queue_depth + writer.reserved <= queue_size


async def test_a_batch_in_flight_still_occupies_the_queue() -> None:
    """Regression: the writer's batch left the channel, and a full queue refilled behind it."""
    sink = GatedSink()
    writer = WriteBehind(sink, queue_size=4, max_batch=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for n in range(4):
            writer.admit()
            writer.put(record(n))
        await trio.testing.wait_all_tasks_blocked()  # the writer holds a batch of 2 in the sink
        with pytest.raises(StoreFullError):
            writer.admit()
        with pytest.raises(StoreFullError):
            writer.put(record(99))  # a put without admit is bounded the same way
        check_bound(writer, 4)
        assert writer.queue_depth == 4
        sink.open()
        await trio.testing.wait_all_tasks_blocked()
        writer.admit()  # the committed batch made room
        writer.release()
        nursery.cancel_scope.cancel()


Op = Literal["admit", "put", "put_unadmitted", "release", "open", "fail"]


@given(
    queue_size=st.integers(1, 6),
    max_batch=st.integers(1, 4),
    ops=st.lists(st.sampled_from(["admit", "put", "put_unadmitted", "release", "open", "fail"]), max_size=60),
)
def test_queue_depth_never_exceeds_queue_size(queue_size: int, max_batch: int, ops: list[Op]) -> None:
    async def main() -> None:
        sink = GatedSink()
        writer = WriteBehind(sink, queue_size=queue_size, max_batch=max_batch)
        held = 0  # reservations this "client" holds: put() after admit() must never fail
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            for n, op in enumerate(ops):
                if op == "admit":
                    try:
                        writer.admit()
                        held += 1
                    except StoreFullError:
                        pass
                elif op == "put" and held:
                    held -= 1
                    writer.put(record(n))
                elif op == "put_unadmitted" and not held:
                    with contextlib.suppress(StoreFullError):
                        writer.put(record(n))
                elif op == "release" and held:
                    held -= 1
                    writer.release()
                elif op == "open":
                    sink.open()
                elif op == "fail":
                    sink.fail()
                await trio.testing.wait_all_tasks_blocked()
                check_bound(writer, queue_size)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
