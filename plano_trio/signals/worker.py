"""The signals worker process: requests in on stdin, analyses out on stdout, one at a time.

The gateway (`gateway.signals_worker`) starts this module as a child
process (`python -m plano_trio.signals.worker`) and talks to it over two
pipes with length-prefixed frames:

- a job: `JOB_HEAD` (job id, client API, body length), then the client's
  request body exactly as it arrived;
- a result: `RESULT_HEAD` (job id, length), then an `Analysis` as JSON.

Why a process and why raw bytes: `analyze` is pure Python and holds the
GIL for 1-50 ms a conversation (see the package docstring), which in a
thread would delay every wake-up of the gateway's event loop by as much.
And the gateway sends the body it already holds rather than the decoded
JSON a translated request may have: writing bytes into a pipe costs the
loop a few microseconds, while serializing a decoded 100-message
conversation for the pipe costs 40-370 µs (pickle or JSON, measured on
`bench.signals_bench` conversations); decoding happens here instead.

Everything in this module but `main` is pure and runs in both processes
(the frame codec), so the protocol is tested without a child.  The
child's stdout is the result pipe only: the file descriptor is moved
aside and fd 1 pointed at stderr, so a stray `print` cannot corrupt a frame.
Both sides read and write the pipes' file descriptors directly, in large
pieces: no buffered file objects, so nothing is held back unseen.
The child runs at the idle scheduling priority (`lower_priority`): on a
busy core the gateway's process gets the CPU first, at once, and analyses
wait (the gateway's queue then fills and skips, which it counts).  A
gateway pinned to some CPUs sends its child to the others
(`off_the_gateways_cpus`).
"""

from __future__ import annotations

import contextlib
import os
import struct
import time

import msgspec

from plano_trio.apis.kind import Api

from . import analyze

JOB_HEAD = struct.Struct("<IBI")
"""Job id, index of the client API in `APIS` (plus `SPAN_FLAG`), body length."""
SPAN_FLAG = 0x80
"""Set in the API byte when the request is traced: only then does the result carry the span attributes
and events (a few KB to decode for a long conversation; the metrics and the log line need none)."""
RESULT_HEAD = struct.Struct("<II")
"""Job id, JSON length."""
APIS = (Api.CHAT, Api.MESSAGES, Api.RESPONSES)
MAX_RESULT_BYTES = 4 * 1024 * 1024
"""An analysis of at most 100 messages yields far less (each signal's snippet is short); a longer frame
means the stream is corrupt."""
READ_CHUNK = 1024 * 1024
BATCH_CPU_S = 0.005
"""Results are written as soon as this much analysis is waiting to go out (or no complete job is left)."""
NICE = 19
"""Where `SCHED_IDLE` is not available, the worker's niceness: the lowest priority."""

AttributeValue = str | int | float | bool


class Analysis(msgspec.Struct, frozen=True, kw_only=True):
    """What the worker reports for one conversation (`error` set: it could not be analysed)."""

    quality: str = ""
    score: float = 0.0
    concerning: bool = False
    turns: int = 0
    attributes: dict[str, AttributeValue] = {}
    """The `signals.*` span attributes, in Plano's order."""
    events: list[tuple[str, dict[str, AttributeValue]]] = []
    """The `signal.<type>` span events, in Plano's order."""
    types: dict[str, int] = {}
    """How many signals of each type."""
    cpu_s: float = 0.0
    """CPU seconds the worker spent on it (decoding included)."""
    error: str | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Analysis)


def encode_job(job_id: int, api: Api, body_length: int, span: bool = True) -> bytes:
    """The head of a job frame (the body follows as it is); `span`: the result carries the span's part."""
    return JOB_HEAD.pack(job_id, APIS.index(api) | (SPAN_FLAG if span else 0), body_length)


def encode_result(job_id: int, analysis: Analysis) -> bytes:
    payload = _encoder.encode(analysis)
    return RESULT_HEAD.pack(job_id, len(payload)) + payload


class FrameError(Exception):
    """The result stream is not made of frames this module writes."""


def take_results(buffer: bytearray) -> list[tuple[int, Analysis]]:
    """The complete result frames at the start of `buffer`, removed from it (a partial one stays)."""
    out = []
    start = 0
    size = RESULT_HEAD.size
    while len(buffer) - start >= size:
        job_id, length = RESULT_HEAD.unpack_from(buffer, start)
        if length > MAX_RESULT_BYTES:
            raise FrameError(f"result frame of {length} bytes")
        end = start + size + length
        if len(buffer) < end:
            break
        try:
            out.append((job_id, _decoder.decode(memoryview(buffer)[start + size : end])))
        except msgspec.DecodeError as error:
            raise FrameError(f"result frame is not an analysis: {error}") from error
        start = end
    del buffer[:start]
    return out


def analyse(api_index: int, body: bytes, span: bool = True) -> Analysis:
    """One job: the body decoded and analysed, as Plano reads the request's messages; without `span`,
    the result leaves out the span attributes and events."""
    started = time.process_time()
    try:
        request = msgspec.json.decode(body)
        report = analyze(APIS[api_index], request)
    except Exception as error:  # a body the edge accepted but the analysis cannot read, or a bug
        return Analysis(error=f"{type(error).__name__}: {error}"[:500], cpu_s=time.process_time() - started)
    return Analysis(
        quality=report.quality.value,
        score=report.quality_score,
        concerning=report.concerning,
        turns=report.turns.total_turns,
        attributes=report.span_attributes() if span else {},
        events=report.span_events() if span else [],
        types=report.types(),
        cpu_s=time.process_time() - started,
    )


def take_jobs(buffer: bytearray) -> list[tuple[int, int, bytes]]:
    """The complete job frames at the start of `buffer` as (job id, API index, body), removed from it."""
    out = []
    start = 0
    size = JOB_HEAD.size
    while len(buffer) - start >= size:
        job_id, api_index, length = JOB_HEAD.unpack_from(buffer, start)
        end = start + size + length
        if len(buffer) < end:
            break
        out.append((job_id, api_index, bytes(buffer[start + size : end])))
        start = end
    del buffer[:start]
    return out


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def lower_priority() -> str:
    """Run only when the CPU has nothing else to do: `SCHED_IDLE` (Linux), else the lowest niceness.

    Measured on one core shared with the gateway (`bench/signals_scenario.py`): at niceness 19 a
    request arriving while an analysis runs waited for it (Linux's EEVDF scheduler lets the running
    task finish its time slice, about 3 ms), which added 2-3 ms to the time to first token at c=1; a
    `SCHED_IDLE` task is preempted at once by any normal one.  It still gets a sliver of a saturated
    core, so it is never starved outright.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # type: ignore[attr-defined,unused-ignore]
        return "idle"
    except (AttributeError, OSError):
        pass
    with contextlib.suppress(AttributeError, OSError):  # a resource limit may forbid it too
        os.nice(NICE)
        return "nice"
    return "normal"


def off_the_gateways_cpus() -> bool:
    """Move off the CPUs the gateway is pinned to, when it is pinned and others exist.

    The child inherits the gateway's CPU affinity.  A gateway pinned to a
    core (`taskset`, a bench, one worker per core) would then share that
    core with every analysis; even at the idle priority that costs the
    gateway its warm caches each time it takes the core back (measured on a
    pinned core: +13 % of gateway CPU per streamed request and a quarter of
    its throughput at c=32).  The analyses go to the machine's other CPUs
    (their idle time only, at this priority); a container's cpuset still
    applies (the kernel keeps the intersection, and refuses an empty one,
    which leaves the inherited set).  An unpinned gateway's child keeps
    every CPU.  True when it moved.
    """
    try:
        inherited = os.sched_getaffinity(0)
        others = set(range(os.cpu_count() or 1)) - inherited
        if not others:
            return False
        os.sched_setaffinity(0, others)
    except (AttributeError, OSError):
        return False
    return True


def main() -> None:
    """Serve jobs until stdin ends.

    Jobs are read in large pieces, and the results of all the complete jobs
    one read brought are written together (at most `BATCH_CPU_S` of
    analysis is held back): under load the gateway then wakes once for
    several results rather than once each.
    """
    results = os.dup(1)
    os.dup2(2, 1)  # fd 1 is stderr from here on: only `results` carries frames
    lower_priority()
    off_the_gateways_cpus()
    buffer = bytearray()
    while True:
        chunk = os.read(0, READ_CHUNK)
        if not chunk:
            return
        buffer += chunk
        out: list[bytes] = []
        held = 0.0
        for job_id, flags, body in take_jobs(buffer):
            api_index = flags & ~SPAN_FLAG
            if api_index >= len(APIS):
                analysis = Analysis(error=f"unknown client API {api_index}")
            else:
                analysis = analyse(api_index, body, bool(flags & SPAN_FLAG))
            out.append(encode_result(job_id, analysis))
            held += analysis.cpu_s
            if held >= BATCH_CPU_S:
                _write_all(results, b"".join(out))
                out, held = [], 0.0
        if out:
            _write_all(results, b"".join(out))


if __name__ == "__main__":
    main()
