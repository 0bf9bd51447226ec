"""The signals worker without the gateway: the frame codec, the child's analysis, and the parent's queue,
restarts and shutdown against real child processes (ours, and scripted ones that die, babble or hang)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import msgspec
import pytest
import trio

from plano_trio.apis.kind import Api
from plano_trio.gateway import signals_worker
from plano_trio.gateway.signals_worker import SignalsWorker, worker_command
from plano_trio.signals.frames import (
    JOB_HEAD,
    MAX_RESULT_BYTES,
    RESULT_HEAD,
    SPAN_FLAG,
    Analysis,
    FrameError,
    encode_job,
    encode_result,
    take_results,
)
from plano_trio.signals.job import analyse
from plano_trio.signals.worker import BATCH_CPU_S, answer
from tests.test_signals_gateway import CONVERSATION, EXPECTED, EXPECTED_TYPES

BODY = json.dumps({"model": "m", "messages": CONVERSATION}).encode()


# -- the codec and the child's work (pure) ---------------------------------------------------------------


def test_result_frames_are_taken_whole_and_a_partial_one_waits() -> None:
    one, two = Analysis(quality="good", score=62.0), Analysis(error="nope")
    wire = encode_result(7, one) + encode_result(8, two)
    buffer = bytearray(wire[:-3])
    assert take_results(buffer) == [(7, one)]
    assert len(buffer) == len(encode_result(8, two)) - 3
    buffer += wire[-3:]
    assert take_results(buffer) == [(8, two)] and buffer == bytearray()
    assert take_results(bytearray(wire[:5])) == []


@pytest.mark.parametrize(
    "frame",
    [
        RESULT_HEAD.pack(1, MAX_RESULT_BYTES + 1),
        RESULT_HEAD.pack(1, 5) + b"hello",
        RESULT_HEAD.pack(1, 12) + b'{"score":"x"}'[:12],
    ],
)
def test_a_frame_that_is_not_ours_is_an_error(frame: bytes) -> None:
    with pytest.raises(FrameError):
        take_results(bytearray(frame))


def test_a_job_head_round_trips() -> None:
    assert JOB_HEAD.unpack(encode_job(0xFFFFFFFF, Api.RESPONSES, 12)) == (0xFFFFFFFF, 2 | SPAN_FLAG, 12)
    assert JOB_HEAD.unpack(encode_job(1, Api.MESSAGES, 0, span=False)) == (1, 1, 0)


def test_an_untraced_request_gets_no_span_part() -> None:
    full, bare = analyse(0, BODY), analyse(0, BODY, span=False)
    assert (bare.attributes, bare.events) == ({}, [])
    assert (bare.quality, bare.score, bare.concerning, bare.turns, bare.types) == (
        full.quality,
        full.score,
        full.concerning,
        full.turns,
        full.types,
    )


def test_the_child_analyses_the_request_as_plano_reads_it() -> None:
    analysis = analyse(0, BODY)
    assert analysis.error is None and analysis.attributes == EXPECTED and analysis.types == EXPECTED_TYPES
    assert (analysis.quality, analysis.score, analysis.concerning, analysis.turns) == ("poor", 31.0, True, 3)
    assert analysis.events[0][0] == "signal.interaction.misalignment.correction"
    assert analysis.cpu_s > 0
    again = msgspec.json.decode(msgspec.json.encode(analysis), type=Analysis)
    assert again == analysis  # floats survive JSON exactly (the span carries Plano's f32 values)


@pytest.mark.parametrize("body", [b"[1, 2]", b"{not json", b"[" * 100_000 + b"]" * 100_000])
def test_what_cannot_be_read_is_an_error_result(body: bytes) -> None:
    analysis = analyse(0, body)
    assert analysis.error is not None and analysis.quality == "" and len(analysis.error) <= 500


class _Costing:
    """An analysis stand-in that reports `cpu_s` of work per job and records the calls it got."""

    def __init__(self, cpu_s: float) -> None:
        self.cpu_s = cpu_s
        self.calls: list[tuple[int, bytes, bool]] = []

    def __call__(self, api_index: int, body: bytes, span: bool) -> Analysis:
        self.calls.append((api_index, body, span))
        return Analysis(quality="good", cpu_s=self.cpu_s)


@pytest.mark.parametrize(
    ("jobs", "cpu_s", "tail", "writes"),
    [
        (0, 0.001, b"", []),
        (3, 0.001, b"", [3]),  # well under BATCH_CPU_S: one write at the end
        (3, BATCH_CPU_S, b"", [1, 1, 1]),  # each analysis fills a batch
        (5, BATCH_CPU_S / 2, b"", [2, 2, 1]),
        (2, 0.001, encode_job(9, Api.CHAT, 10) + b"part", [2]),  # an incomplete job waits in the buffer
    ],
)
def test_answer_batches_results_and_gives_way_after_each_analysis(
    jobs: int, cpu_s: float, tail: bytes, writes: list[int]
) -> None:
    buffer = bytearray(b"".join(encode_job(n, Api.MESSAGES, 2, span=n % 2 == 0) + b"{}" for n in range(jobs)))
    buffer += tail
    analyse_job = _Costing(cpu_s)
    written: list[bytes] = []
    yields: list[int] = []
    answer(buffer, analyse_job, written.append, lambda: yields.append(len(analyse_job.calls)))
    assert bytes(buffer) == tail
    assert analyse_job.calls == [(1, b"{}", n % 2 == 0) for n in range(jobs)]
    assert yields == list(range(1, jobs + 1))  # the CPU offered away after every analysis
    batches = [take_results(bytearray(frame)) for frame in written]
    assert [len(batch) for batch in batches] == writes
    assert [job_id for batch in batches for job_id, _ in batch] == list(range(jobs))


def test_an_unknown_api_is_answered_with_an_error_and_not_analysed() -> None:
    analyse_job = _Costing(0.0)
    written: list[bytes] = []
    answer(bytearray(JOB_HEAD.pack(4, 7, 0)), analyse_job, written.append, lambda: None)
    [(job_id, analysis)] = take_results(bytearray(b"".join(written)))
    assert (job_id, analysis.error, analyse_job.calls) == (4, "unknown client API 7", [])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux scheduling calls")
def test_a_child_started_from_a_pinned_gateway_runs_idle_on_the_other_cpus() -> None:
    """What `main` does to itself first, in a real process started pinned to CPU 0 the way a bench or a
    `taskset` pins the gateway: the idle policy, and every other CPU of the machine."""
    code = (
        "import os\n"
        "from plano_trio.signals.worker import lower_priority, off_the_gateways_cpus\n"
        "os.sched_setaffinity(0, {0})\n"
        "print(lower_priority(), off_the_gateways_cpus(), os.sched_getscheduler(0) == os.SCHED_IDLE,"
        " sorted(os.sched_getaffinity(0)))\n"
    )
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
    others = sorted(set(range(os.cpu_count() or 1)) - {0})
    policy, moved, idle, cpus = done.stdout.split(" ", 3)
    assert (policy, idle) == ("idle", "True")
    assert (moved, cpus.strip()) == (("True", str(others)) if others else ("False", "[0]"))


# -- the parent, with real children -------------------------------------------------------------------


def script(code: str) -> tuple[list[str], dict[str, str]]:
    return [sys.executable, "-c", code], dict(os.environ)


class Results:
    def __init__(self) -> None:
        self.got: list[tuple[Analysis | None, str | None]] = []

    def __call__(self, analysis: Analysis | None, failure: str | None) -> None:
        self.got.append((analysis, failure))

    async def wait(self, count: int, timeout: float = 20) -> None:
        with trio.fail_after(timeout):
            while len(self.got) < count:
                await trio.sleep(0.02)


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signals_worker, "BACKOFF_S", (0.05, 0.2))
    monkeypatch.setattr(signals_worker, "STALL_S", 1.0)
    monkeypatch.setattr(signals_worker, "STALL_CPU_S", 0.5)
    monkeypatch.setattr(signals_worker, "STALL_HARD_S", 4.0)


async def test_our_child_answers_every_job_in_order_and_the_queue_is_bounded() -> None:
    worker = SignalsWorker(queue_size=3)
    results = Results()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.run)
        assert [worker.submit(Api.CHAT, BODY, results) for _ in range(4)] == [None, None, None, "queue_full"]
        await results.wait(3)
        assert worker.pending == 0 and worker.starts == 1 and worker.pid is not None
        assert [(a.quality if a else None, f) for a, f in results.got] == [("poor", None)] * 3
        assert worker.submit(Api.CHAT, b"[]", results) is None  # room again
        await results.wait(4)
        assert results.got[3][1] == "error" and results.got[3][0] is not None and results.got[3][0].error
        nursery.cancel_scope.cancel()


async def test_the_byte_bound_refuses_at_once() -> None:
    worker = SignalsWorker(queue_size=10, max_bytes=len(BODY) * 2)
    results = Results()
    assert worker.submit(Api.CHAT, BODY, results) is None
    assert worker.submit(Api.CHAT, BODY, results) is None
    assert worker.submit(Api.CHAT, b"x", results) == "queue_full"


async def test_a_child_that_dies_fails_its_jobs_and_is_restarted(quick: None) -> None:
    worker = SignalsWorker(command=script("import sys; sys.stdin.buffer.read(9); sys.exit(3)"))
    results = Results()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.run)
        worker.submit(Api.CHAT, BODY, results)
        await results.wait(1)
        worker.submit(Api.CHAT, BODY, results)
        await results.wait(2)
        nursery.cancel_scope.cancel()
    assert [f for _, f in results.got] == ["worker_failed", "worker_failed"]
    assert worker.starts == 2


async def test_a_child_that_cannot_start_fails_the_job(quick: None) -> None:
    worker = SignalsWorker(command=(["/nonexistent/python"], {}))
    results = Results()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.run)
        worker.submit(Api.CHAT, BODY, results)
        await results.wait(1)
        nursery.cancel_scope.cancel()
    assert results.got == [(None, "worker_failed")]


async def test_a_child_that_babbles_is_replaced(quick: None) -> None:
    babble = (
        "import sys; sys.stdin.buffer.read(9); sys.stdout.buffer.write(b'\\x01' * 64); sys.stdout.flush()"
    )
    worker = SignalsWorker(command=script(babble + "; import time; time.sleep(30)"))
    results = Results()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.run)
        worker.submit(Api.CHAT, BODY, results)
        await results.wait(1, timeout=5)  # not the 30 s sleep: the child is killed
        nursery.cancel_scope.cancel()
    assert results.got == [(None, "worker_failed")]


@pytest.mark.parametrize(
    ("code", "within"),
    [
        ("import sys; sys.stdin.buffer.read(9)\nwhile True: pass", (1.0, 4.0)),  # looping: its CPU says so
        ("import time; time.sleep(60)", (4.0, 8.0)),  # silent and idle (starved?): the hard bound
    ],
)
async def test_a_child_that_hangs_is_killed(quick: None, code: str, within: tuple[float, float]) -> None:
    worker = SignalsWorker(command=script(code))
    results = Results()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.run)
        worker.submit(Api.CHAT, BODY, results)
        started = trio.current_time()
        await results.wait(1, timeout=15)
        assert within[0] <= trio.current_time() - started <= within[1]
        nursery.cancel_scope.cancel()
    assert results.got == [(None, "worker_failed")]


async def test_a_failing_callback_is_counted_and_the_worker_goes_on() -> None:
    worker = SignalsWorker()
    results = Results()

    def broken(analysis: Analysis | None, failure: str | None) -> None:
        raise RuntimeError("bug")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.run)
        worker.submit(Api.CHAT, BODY, broken)
        worker.submit(Api.CHAT, BODY, results)
        await results.wait(1)
        nursery.cancel_scope.cancel()
    assert worker.callback_errors == 1 and results.got[0][0] is not None


async def test_shutdown_drains_then_abandons_and_refuses(quick: None) -> None:
    async with signals_worker.open_signals(True) as worker:
        assert worker is not None
        results = Results()
        for _ in range(3):
            worker.submit(Api.CHAT, BODY, results)
    assert [f for _, f in results.got] == [None, None, None]  # drained within DRAIN_S
    assert worker.submit(Api.CHAT, BODY, results) == "shutdown" and worker.pid is None

    stuck: Any = None
    hung = Results()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            stuck = SignalsWorker(command=script("import time; time.sleep(60)"))
            nursery.start_soon(stuck.run)
            stuck.submit(Api.CHAT, BODY, hung)
            await trio.sleep(0.3)
            await stuck.drain(0.2)
            nursery.cancel_scope.cancel()
        stuck.abandon()
    assert hung.got == [(None, "shutdown")]


async def test_disabled_is_none() -> None:
    async with signals_worker.open_signals(False) as worker:
        assert worker is None


def test_the_child_is_started_with_this_import_path() -> None:
    argv, env = worker_command()
    assert argv[1:] == ["-m", "plano_trio.signals.worker"] and argv[0] == sys.executable
    assert all(os.path.isabs(p) for p in env["PYTHONPATH"].split(os.pathsep))
