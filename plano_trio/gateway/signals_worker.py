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
state is forked) talks over two pipes; the frame format and the child's
loop are `signals.frames` and `signals.worker`.

What the event loop pays per conversation, and why the pipes are used raw:
`submit` appends the job to the child's outgoing buffers (the frame head
and the body the request already holds: no copy), and the writer task
sends everything that gathered `LINGER_S` after the first job in one
`os.writev`.  Every write wakes the child, and every batch of results it
writes wakes the event loop; a system call and two wake-ups per
conversation cost the gateway more than the rest of signals together
(see `LINGER_S`), a batch pays them once.  The reader task reads
everything there is when it wakes.  Trio's stream objects and a channel
cost three times as much per job as the raw pipes (measured: ~60 µs
against ~20 µs of loop CPU for a one-message conversation).  A
`ProcessPoolExecutor` (forkserver) cost the gateway process two to three
times as much CPU per conversation again, in its two threads.  Only a
traced request's result carries the span attributes and events.  The pipes
are enlarged to 1 MiB where the system allows (`F_SETPIPE_SZ`).

Lifetime: `open_signals` owns it.  The child starts lazily, with the first
job, and is restarted (after a back-off that grows while it keeps dying)
when it exits, sends garbage or hangs (`STALL_S`); the jobs
it held fail (`worker_failed`), the jobs not yet given to it go to the next
child.  On shutdown new jobs are refused, what is queued gets up to
`DRAIN_S` to finish, then the rest fails (`shutdown`) and the child's stdin
is closed, which ends it (killed if it has not exited `STOP_S` later).

Bounds: at most `queue_size` jobs accepted and not answered, holding at
most `max_bytes` of request bodies; past either, `submit` refuses at once
(the caller counts it) and never waits.  A result frame is at most
`signals.frames.MAX_RESULT_BYTES`.

Each accepted job ends in exactly one call of its `done` callback, on the
trio thread: `(analysis, None)`, or `(analysis or None, reason)` with
reason `error` (the worker could not read the conversation),
`worker_failed` or `shutdown`.  `done` must not raise (a failure is logged
and counted as a bug, and the worker goes on).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Literal, NamedTuple

import trio

import plano_trio
from plano_trio.apis.kind import Api
from plano_trio.signals.frames import Analysis, FrameError, encode_job, take_results

log = logging.getLogger("plano_trio.signals")

QUEUE_SIZE = 64
"""Default bound on jobs accepted and not answered (`plano_trio.signals_queue_size`)."""
MAX_BYTES = 64 * 1024 * 1024
"""Request bodies held for jobs accepted and not answered."""
STALL_S = 30.0
"""A child holding jobs that answers nothing for this long is checked: killed if it spent `STALL_CPU_S`
of CPU meanwhile (an analysis takes under 0.1 s of it, so it is looping), or once silent for
`STALL_HARD_S` whatever it spent.  A child that is only starved (it runs at the idle priority, so a
saturated core gives it almost nothing) is left alone until then: its queue fills and skips instead."""
STALL_CPU_S = 10.0
STALL_HARD_S = 600.0
DRAIN_S = 5.0
"""On shutdown, how long queued analyses get to finish (their spans wait for them)."""
STOP_S = 1.0
"""How long a child gets to exit after its stdin is closed, before it is killed."""
BACKOFF_S = (0.5, 30.0)
"""Delay before restarting a child that died: the first, doubling up to the second while it keeps dying."""
HEALTHY_S = 10.0
"""A child that lived this long resets the back-off."""
READ_CHUNK = 1024 * 1024
LINGER_S = 0.025
"""How long a job waits for others before the writer sends them to the child in one write.  Each write
wakes the child, and the child writes the results of what one read brought in one go, which wakes the
event loop: one job per write cost the gateway 150-250 µs of its own CPU per request (measured with
`bench.ab`, signals on against off, 17 % at c=1), mostly those wake-ups; a batch costs them once.
Analyses (and the spans that wait for them) end up to this much later, which nobody waits on."""
IOV_BATCH = 512
"""Buffers per `writev` (the system's limit is 1024)."""
PIPE_BYTES = 1024 * 1024
"""Asked of the kernel for each pipe (Linux's default `pipe-max-size`); 64 KiB if refused."""

Failure = Literal["error", "worker_failed", "shutdown"]
Refusal = Literal["queue_full", "shutdown"]
Done = Callable[[Analysis | None, Failure | None], None]


class _Job(NamedTuple):
    job_id: int
    api: Api
    body: bytes
    done: Done
    span: bool


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


class _Child:
    """One running child: the process, our (non-blocking) ends of its pipes, and what it holds."""

    def __init__(self, process: trio.Process, jobs_fd: int, results_fd: int) -> None:
        self.process = process
        self.jobs_fd = jobs_fd
        self.results_fd = results_fd
        self.out: deque[memoryview] = deque()
        """Bytes of jobs the pipe has not taken yet, in order (a job partly written, and any after it)."""
        self.in_flight: dict[int, None] = {}
        """Jobs given to this child (written, or waiting in `out`), oldest first."""
        self.writable = trio.Event()
        """Set when `out` has something for the writer task."""
        self.broken = False
        """A write failed (the child is gone): nothing more is written; the reader sees it end."""


def _pipe() -> tuple[int, int]:
    read, write = os.pipe()
    for fd in (read, write):
        with contextlib.suppress(AttributeError, OSError):  # Linux only; a user's pipe budget may refuse
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return read, write


def cpu_seconds(pid: int) -> float | None:
    """CPU time `pid` has used (Linux's `/proc`; None where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


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
        self._pending: dict[int, _Job] = {}
        """Accepted and not answered."""
        self._unsent: deque[_Job] = deque()
        """Accepted while no child was running: for the next one."""
        self._work = trio.Event()
        """Set when `_unsent` has a job and no child runs (wakes `run`)."""
        self._child: _Child | None = None
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

    def submit(self, api: Api, body: bytes, done: Done, span: bool = True) -> Refusal | None:
        """Queue a conversation; None when accepted (`done` will be called), else why not (at once).
        `span`: the analysis must carry the span attributes and events (the request is traced)."""
        if self._closing:
            return "shutdown"
        if len(self._pending) >= self.queue_size or self._bytes + len(body) > self.max_bytes:
            return "queue_full"
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        job = _Job(self._next_id, api, body, done, span)
        self._pending[job.job_id] = job
        self._bytes += len(body)
        child = self._child
        if child is not None and not child.broken:
            self._give(child, job)
        else:
            self._unsent.append(job)
            self._work.set()
        return None

    def _give(self, child: _Child, job: _Job) -> None:
        """Queue `job` for the child; the writer task sends what gathered after `LINGER_S`, in one write."""
        if not child.in_flight:
            self._progress = trio.current_time()
        child.in_flight[job.job_id] = None
        child.out.extend(
            (memoryview(encode_job(job.job_id, job.api, len(job.body), job.span)), memoryview(job.body))
        )
        child.writable.set()

    def _settle(self, job_id: int, analysis: Analysis | None, failure: Failure | None) -> None:
        job = self._pending.pop(job_id, None)
        if self._child is not None:
            self._child.in_flight.pop(job_id, None)
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
        """Start a child when there is work, feed it, restart it when it fails; runs until cancelled."""
        failures = 0
        while True:
            await self._work.wait()
            self._work = trio.Event()
            if not self._unsent:
                continue
            started = trio.current_time()
            try:
                child = await self._spawn()
            except OSError as error:
                log.warning("signals: cannot start the analysis worker: %s", error)
                job = self._unsent.popleft()
                self._settle(job.job_id, None, "worker_failed")
            else:
                await self._session(child)
            failures = 1 if trio.current_time() - started >= HEALTHY_S else failures + 1
            await trio.sleep(min(BACKOFF_S[0] * 2 ** (failures - 1), BACKOFF_S[1]))
            if self._unsent:
                self._work.set()

    async def _spawn(self) -> _Child:
        argv, env = self._command
        child_in, jobs_fd = _pipe()
        results_fd, child_out = _pipe()
        try:
            process = await trio.lowlevel.open_process(
                argv, stdin=child_in, stdout=child_out, env=env, start_new_session=True
            )
        except BaseException:
            os.close(jobs_fd)
            os.close(results_fd)
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
        os.set_blocking(jobs_fd, False)
        os.set_blocking(results_fd, False)
        self.starts += 1
        self.pid = process.pid
        if self.starts > 1:
            log.warning("signals: analysis worker restarted (pid %d; %d starts)", process.pid, self.starts)
        return _Child(process, jobs_fd, results_fd)

    async def _session(self, child: _Child) -> None:
        """Feed one child until it fails (or the owner is cancelled); then fail what it held and make sure
        it is gone."""
        self._child = child
        try:
            while self._unsent:
                self._give(child, self._unsent.popleft())
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, child)
                nursery.start_soon(self._watch, child, nursery.cancel_scope)
                await self._read(child)
                nursery.cancel_scope.cancel()
        finally:
            self._child = None
            self.pid = None
            with trio.CancelScope(shield=True):
                await self._stop(child)
            failure: Failure = "shutdown" if self._closing else "worker_failed"
            for job_id in list(child.in_flight):
                self._settle(job_id, None, failure)

    async def _write(self, child: _Child) -> None:
        """Send the jobs that gathered, `LINGER_S` after the first of them, as the pipe takes them."""
        out = child.out
        while True:
            await child.writable.wait()
            await trio.sleep(LINGER_S)
            child.writable = trio.Event()
            while out:
                await trio.lowlevel.wait_writable(child.jobs_fd)
                try:
                    written = os.writev(child.jobs_fd, list(itertools.islice(out, IOV_BATCH)))
                except BlockingIOError:
                    continue
                except OSError:
                    child.broken = True
                    out.clear()
                    return
                while written and out:
                    head = out[0]
                    if written >= len(head):
                        written -= len(head)
                        out.popleft()
                    else:
                        out[0] = head[written:]
                        written = 0

    async def _read(self, child: _Child) -> None:
        """Results as they come, until the child's output ends (it exited) or is not ours (garbage)."""
        buffer = bytearray()
        fd = child.results_fd
        while True:
            await trio.lowlevel.wait_readable(fd)
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                continue
            except OSError as error:
                log.warning("signals: reading from the analysis worker failed: %s", error)
                return
            if not data:
                log.warning("signals: the analysis worker exited (pid %d)", child.process.pid)
                return
            buffer += data
            try:
                results = take_results(buffer)
            except FrameError as error:
                log.error("signals: the analysis worker sent garbage (%s); restarting it", error)
                return
            if results:
                self._progress = trio.current_time()
            for job_id, analysis in results:
                if analysis.error is not None:
                    log.debug("signals: job %d not analysed: %s", job_id, analysis.error)
                    self._settle(job_id, analysis, "error")
                else:
                    self._settle(job_id, analysis, None)

    async def _watch(self, child: _Child, scope: trio.CancelScope) -> None:
        pid = child.process.pid
        seen = self._progress
        baseline = cpu_seconds(pid)
        while True:
            await trio.sleep(1.0)
            if self._progress != seen or not child.in_flight:
                seen, baseline = self._progress, cpu_seconds(pid)
                continue
            silent = trio.current_time() - self._progress
            if silent <= STALL_S:
                continue
            spent = cpu_seconds(pid)
            looping = spent is None or baseline is None or spent - baseline >= STALL_CPU_S
            if looping or silent > STALL_HARD_S:
                log.error(
                    "signals: the analysis worker (pid %d) answered nothing for %.0f s; restarting it",
                    pid,
                    silent,
                )
                scope.cancel()
                return

    async def _stop(self, child: _Child) -> None:
        """Close the child's stdin (it exits at end of input); kill it if it has not exited by `STOP_S`."""
        for fd in (child.jobs_fd, child.results_fd):
            trio.lowlevel.notify_closing(fd)
        os.close(child.jobs_fd)
        try:
            with trio.move_on_after(STOP_S):
                await child.process.wait()
                return
            child.process.kill()
            await child.process.wait()
        finally:
            os.close(child.results_fd)

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
        self._unsent.clear()
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
