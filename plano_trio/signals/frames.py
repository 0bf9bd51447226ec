"""The signals worker's protocol: the frames on the two pipes between the gateway and its child.

The gateway (`gateway.signals_worker`) and the child (`signals.worker`)
talk with length-prefixed frames:

- a job: `JOB_HEAD` (job id, client API, body length), then the client's
  request body exactly as it arrived;
- a result: `RESULT_HEAD` (job id, length), then an `Analysis` as JSON.

Why raw bytes: the gateway sends the body it already holds rather than the
decoded JSON a translated request may have: writing bytes into a pipe costs
the loop a few microseconds, while serializing a decoded 100-message
conversation for the pipe costs 40-370 µs (pickle or JSON, measured on
`bench.signals_bench` conversations); decoding happens in the child instead.

Everything here is pure and runs in both processes, so the protocol is
tested without a child.  It imports nothing of the analysis (`job` does):
the gateway's process loads the codec only, and the analysis's modules and
data stay in the child's memory.
"""

from __future__ import annotations

import struct

import msgspec

from plano_trio.apis.kind import Api

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
