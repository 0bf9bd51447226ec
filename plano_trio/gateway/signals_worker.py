"""The gateway's side of the signals worker: a bounded queue and one child process that analyses.

Why a child process of our own rather than a thread or a
`ProcessPoolExecutor`: the analysis holds the GIL for 1-50 ms a
conversation, so in a thread it delays the event loop's wake-ups by up to
the interpreter's 5 ms switch interval each time; a pool would add two
threads of its own in this process (its queue feeder pickles on one, its
manager unpickles on the other, both taking the GIL) and a thread per
waiting result (`trio.to_thread`) or a callback from a foreign thread.
A child process started with `trio.lowlevel.open_process` (fork and exec
run in a thread; the child is a fresh interpreter, so nothing of trio's
state is forked) talks over two pipes that trio watches like any socket:
the loop writes a frame, reads a frame, and never waits or runs anything
long.  The frame format and the child's loop are `signals.worker`.

Lifetime: `open_signals` owns it.  The child starts lazily, with the first
job, and is restarted (after a back-off that grows while it keeps dying)
when it exits, sends garbage or makes no progress for `STALL_S`; the jobs
it held fail (`worker_failed`), the queued ones go to the next child.  On
shutdown new jobs are refused, what is queued gets up to `DRAIN_S` to
finish, then the rest fails (`shutdown`) and the child's stdin is closed,
which ends it (killed if it has not exited a second later).

Bounds: at most `queue_size` jobs accepted and not answered, holding at
most `max_bytes` of request bodies; past either, `submit` refuses at once
(the caller counts it) and never waits.  A result frame is at most
`signals.worker.MAX_RESULT_BYTES`.

Each accepted job ends in exactly one call of its `done` callback, on the
trio thread: `(analysis, None)`, or `(None, reason)` with reason
`error` (the worker could not read the conversation), `worker_failed` or
`shutdown`.  `done` must not raise (a failure is logged and counted as a
bug, and the worker goes on).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Literal, NamedTuple

import trio

import plano_trio
from plano_trio.apis.kind import Api
from plano_trio.signals.worker import Analysis, FrameError, encode_job, take_results

log = logging.getLogger("plano_trio.signals")

QUEUE_SIZE = 64
"""Default bound on jobs accepted and not answered (`plano_trio.signals_queue_size`)."""
MAX_BYTES = 64 * 1024 * 1024
"""Request bodies held for jobs accepted and not answered."""
STALL_S = 10.0
"""A child holding jobs that answers nothing for this long is killed (an analysis takes under 0.1 s)."""
DRAIN_S = 2.0
"""On shutdown, how long queued analyses get to finish (their spans wait for them)."""
STOP_S = 1.0
"""How long a child gets to exit after its stdin is closed, before it is killed."""
BACKOFF_S = (0.5, 30.0)
"""Delay before restarting a child that died: the first, doubling up to the second while it keeps dying."""
HEALTHY_S = 10.0
"""A child that lived this long resets the back-off."""
READ_CHUNK = 64 * 1024

Failure = Literal["error", "worker_failed", "shutdown"]
Refusal = Literal["queue_full", "shutdown"]
Done = Callable[[Analysis | None, Failure | None], None]


class _Job(NamedTuple):
    job_id: int
    api: Api
    body: bytes
    done: Done


def worker_command() -> tuple[list[str], dict[str, str]]:
    """How to start the child: this interpreter, our module, and this process's import path.

    The import path is handed over whole (`PYTHONPATH`), so the child
    imports plano-trio and its dependencies from wherever this process did:
    a checkout, a virtualenv, or the zipapp's extracted packages.
    """
    paths = [os.path.abspath(p) for p in sys.path if p]
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(plano_trio.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys([package_root, *paths]))}
    return [sys.executable, "-m", "plano_trio.signals.worker"], env


class SignalsWorker:
    """The queue of conversations to analyse and the child that analyses them (see the module docstring)."""

    def __init__(
        self,
        queue_size: int = QUEUE_SIZE,
        max_bytes: int = MAX_BYTES,
        command: tuple[list[str], dict[str, str]] | None = None,
    ) -> None:
        self.queue_size = queue_size
        self.max_bytes = max_bytes
        self._command = command or worker_command()
        self._send, self._jobs = trio.open_memory_channel[_Job](queue_size)
        self._pending: dict[int, _Job] = {}
        """Accepted and not answered: queued, or written to the child."""
        self._in_flight: dict[int, None] = {}
        """Written to the current child, oldest first."""
        self._bytes = 0
        self._next_id = 0
        self._closing = False
        self._idle: trio.Event | None = None
        self._progress = 0.0
        self.pid: int | None = None
        """The current child's process id (None: none running)."""
        self.starts = 0
        self.callback_errors = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, api: Api, body: bytes, done: Done) -> Refusal | None:
        """Queue a conversation; None when accepted (`done` will be called), else why not (at once)."""
        if self._closing:
            return "shutdown"
        if len(self._pending) >= self.queue_size or self._bytes + len(body) > self.max_bytes:
            return "queue_full"
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        job = _Job(self._next_id, api, body, done)
        self._pending[job.job_id] = job
        self._bytes += len(body)
        self._send.send_nowait(job)  # never full: the channel holds a subset of `_pending`
        return None

    def _settle(self, job_id: int, analysis: Analysis | None, failure: Failure | None) -> None:
        job = self._pending.pop(job_id, None)
        self._in_flight.pop(job_id, None)
        if job is None:
            return
        self._bytes -= len(job.body)
        try:
            job.done(analysis, failure)
        except Exception:
            self.callback_errors += 1
            if self.callback_errors == 1 or self.callback_errors % 1000 == 0:
                log.exception("signals: handling an analysis failed (%d so far)", self.callback_errors)
        if self._idle is not None and not self._pending:
            self._idle.set()

    # -- the owner's loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Start a child for the first job, feed it, restart it when it fails; runs until cancelled."""
        failures = 0
        while True:
            job = await self._jobs.receive()
            if job.job_id not in self._pending:
                continue
            started = trio.current_time()
            try:
                process = await self._spawn()
            except OSError as error:
                log.warning("signals: cannot start the analysis worker: %s", error)
                self._settle(job.job_id, None, "worker_failed")
            else:
                await self._session(process, job)
            failures = 1 if trio.current_time() - started >= HEALTHY_S else failures + 1
            for job_id in list(self._in_flight):
                self._settle(job_id, None, "worker_failed")
            await trio.sleep(min(BACKOFF_S[0] * 2 ** (failures - 1), BACKOFF_S[1]))

    async def _spawn(self) -> trio.Process:
        argv, env = self._command
        process = await trio.lowlevel.open_process(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True
        )
        self.starts += 1
        self.pid = process.pid
        if self.starts > 1:
            log.warning("signals: analysis worker restarted (pid %d; %d starts)", process.pid, self.starts)
        return process

    async def _session(self, process: trio.Process, first: _Job) -> None:
        """Feed one child until it fails (or the owner is cancelled); then make sure it is gone."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read, process, nursery.cancel_scope)
                nursery.start_soon(self._watch, process, nursery.cancel_scope)
                await self._write(process, first)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self._stop(process)

    async def _write(self, process: trio.Process, job: _Job) -> None:
        stdin = process.stdin
        assert stdin is not None
        while True:
            if job.job_id in self._pending:
                if not self._in_flight:
                    self._progress = trio.current_time()
                self._in_flight[job.job_id] = None
                try:
                    await stdin.send_all(encode_job(job.job_id, job.api, len(job.body)))
                    await stdin.send_all(job.body)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
            job = await self._jobs.receive()

    async def _read(self, process: trio.Process, scope: trio.CancelScope) -> None:
        stdout = process.stdout
        assert stdout is not None
        buffer = bytearray()
        try:
            while True:
                data = await stdout.receive_some(READ_CHUNK)
                if not data:
                    log.warning("signals: the analysis worker exited (pid %d)", process.pid)
                    break
                buffer += data
                for job_id, analysis in take_results(buffer):
                    self._progress = trio.current_time()
                    if analysis.error is not None:
                        log.debug("signals: job %d not analysed: %s", job_id, analysis.error)
                        self._settle(job_id, analysis, "error")
                    else:
                        self._settle(job_id, analysis, None)
        except FrameError as error:
            log.error("signals: the analysis worker sent garbage (%s); restarting it", error)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()

    async def _watch(self, process: trio.Process, scope: trio.CancelScope) -> None:
        while True:
            await trio.sleep(1.0)
            if self._in_flight and trio.current_time() - self._progress > STALL_S:
                log.error(
                    "signals: the analysis worker (pid %d) answered nothing for %.0f s; restarting it",
                    process.pid,
                    STALL_S,
                )
                scope.cancel()
                return

    async def _stop(self, process: trio.Process) -> None:
        """Close the child's stdin (it exits at end of input); kill it if it has not exited by `STOP_S`."""
        self.pid = None
        if process.stdin is not None:
            await process.stdin.aclose()
        with trio.move_on_after(STOP_S):
            await process.wait()
            return
        process.kill()
        await process.wait()

    # -- shutdown ---------------------------------------------------------------------------------------

    async def drain(self, timeout_s: float) -> None:
        """Refuse new jobs; wait up to `timeout_s` for the accepted ones to be answered."""
        self._closing = True
        if not self._pending:
            return
        self._idle = trio.Event()
        with trio.move_on_after(timeout_s):
            await self._idle.wait()

    def abandon(self) -> None:
        """Fail every job still accepted (the worker is stopped)."""
        for job_id in list(self._pending):
            self._settle(job_id, None, "shutdown")


@asynccontextmanager
async def open_signals(enabled: bool, queue_size: int = QUEUE_SIZE) -> AsyncIterator[SignalsWorker | None]:
    """The signals worker while the block runs (None when `overrides.disable_signals` is set); on the
    way out, queued analyses get `DRAIN_S` to finish, then the child is stopped."""
    if not enabled:
        yield None
        return
    worker = SignalsWorker(queue_size)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.run)
        try:
            yield worker
        finally:
            with trio.CancelScope(shield=True):
                await worker.drain(DRAIN_S)
            nursery.cancel_scope.cancel()
    worker.abandon()
