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
The child lowers its own scheduling priority (`NICE`): when the machine is
busy, the gateway's process gets the CPU first and analyses wait (the
gateway's queue then fills and skips, which it counts).
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import time
from typing import BinaryIO

import msgspec

from plano_trio.apis.kind import Api

from . import analyze

JOB_HEAD = struct.Struct("<IBI")
"""Job id, index of the client API in `APIS`, body length."""
RESULT_HEAD = struct.Struct("<II")
"""Job id, JSON length."""
APIS = (Api.CHAT, Api.MESSAGES, Api.RESPONSES)
MAX_RESULT_BYTES = 4 * 1024 * 1024
"""An analysis of at most 100 messages yields far less (each signal's snippet is short); a longer frame
means the stream is corrupt."""
NICE = 10
"""Added to the worker's scheduling niceness (Linux/Unix): analyses yield the CPU to the gateway."""

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


def encode_job(job_id: int, api: Api, body_length: int) -> bytes:
    """The head of a job frame (the body follows as it is)."""
    return JOB_HEAD.pack(job_id, APIS.index(api), body_length)


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


def analyse(api_index: int, body: bytes) -> Analysis:
    """One job: the body decoded and analysed, as Plano reads the request's messages."""
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
        attributes=report.span_attributes(),
        events=report.span_events(),
        types=report.types(),
        cpu_s=time.process_time() - started,
    )


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    """`size` bytes, or None at end of input (the gateway closed the pipe or exited)."""
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def main() -> None:
    """Serve jobs until stdin ends."""
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # fd 1 is stderr from here on: only `results` writes frames
    with contextlib.suppress(AttributeError, OSError):  # not on every platform; a limit may forbid it
        os.nice(NICE)
    jobs = sys.stdin.buffer
    while True:
        head = _read_exact(jobs, JOB_HEAD.size)
        if head is None:
            return
        job_id, api_index, length = JOB_HEAD.unpack(head)
        body = _read_exact(jobs, length)
        if body is None:
            return
        if api_index >= len(APIS):
            analysis = Analysis(error=f"unknown client API {api_index}")
        else:
            analysis = analyse(api_index, body)
        results.write(encode_result(job_id, analysis))
        results.flush()


if __name__ == "__main__":
    main()
