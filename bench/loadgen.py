"""A cheap timing HTTP/1.1 client: every request timed, every stream checked for completeness.

Why not httpx/aiohttp: the load generator shares CPU1 with the mock provider, so it has to cost a few µs
per read, not hundreds; a client library would make the *client* the thing we measure.  This is
``asyncio.Protocol`` on uvloop with a hand-written HTTP/1.1 response parser (Content-Length and chunked
framing, keep-alive), which comfortably holds 1,000 concurrent streams on one core.

Hot path discipline: ``data_received`` only stamps ``perf_counter()``, de-chunks and appends
``(time, bytes)``.  SSE parsing, JSON decoding and completeness checks happen in ``analyse()`` *after* the
run, so a stream being checked never delays the timing of another stream still in flight.

What a stream sample gives: time to headers, time to first SSE event (TTFE), the arrival time of every
content delta (OpenAI ``choices[0].delta.content``/``tool_calls``, Anthropic ``content_block_delta`` or
Responses ``event: response.output_text.delta``), hence time to first token (TTFT) and inter-chunk gaps,
and total time; it is ``ok`` only with status 200, a terminating ``[DONE]`` (or Anthropic
``message_stop``, or Responses ``response.completed``) and, when given, exactly the expected number of
content deltas.  Responses streams also yield the response id (``Sample.response_id``).

Responses mode (``run(..., body_for=...)``): a conversation is a chain of requests, each naming the
previous response's id, so its body cannot be rendered once.  ``body_for`` builds each request's body
from the same connection's previous sample, which is analysed right before the next request is built
(between two requests, outside any timed interval); everything else stays as above.

Every run is bounded by a request count *and* a wall-clock cap, and the bench only points it at 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

__all__ = ["BodyFor", "Request", "RunResult", "Sample", "analyse", "run", "run_many"]

_HEAD, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)
_MAX_HEAD = 64 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """One request, pre-rendered to wire bytes once; a run repeats it ``n`` times."""

    host: str
    port: int
    path: str
    body: bytes
    stream: bool
    expected_chunks: int | None = None  # content deltas a complete stream carries (None: don't check)
    headers: tuple[tuple[str, str], ...] = ()
    method: str = "POST"
    marker: bytes | None = None  # non-streaming: a complete answer contains this (None: a completion)
    # A client that gives up mid-response: close the connection once this many body bytes arrived (0:
    # never).  The sample is then ``abandoned`` (not ok, not an error of the server): the soak scenario's
    # disconnects, which the gateway must clean up after without leaking memory or descriptors.
    abandon_after: int = 0

    def wire(self, body: bytes | None = None) -> bytes:
        """The request on the wire; ``body`` replaces ``self.body`` (a chained conversation's next turn)."""
        payload = self.body if body is None else body
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if payload or self.method == "POST":
            lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


@dataclasses.dataclass(slots=True)
class Sample:
    """One request's timings (``perf_counter`` seconds) and, after ``analyse``, its verdict."""

    t_send: float = 0.0
    t_headers: float = 0.0
    t_end: float = 0.0
    status: int = 0
    error: str | None = None
    body_bytes: int = 0
    pieces: list[tuple[float, bytes]] = dataclasses.field(default_factory=list)
    label: str = ""  # what ``body_for`` said this request was (e.g. "new", "continued")
    abandoned: bool = False  # the client closed the connection on purpose (``Request.abandon_after``)
    # filled by analyse()
    analysed: bool = False
    ok: bool = False
    events: int = 0
    content_events: int = 0
    done: bool = False
    t_first_event: float = 0.0
    content_times: list[float] = dataclasses.field(default_factory=list)
    response_id: str | None = None  # Responses streams: ``response.id`` of the first event that has one

    @property
    def latency(self) -> float:
        return self.t_end - self.t_send

    @property
    def ttfe(self) -> float:
        return self.t_first_event - self.t_send if self.t_first_event else self.latency

    @property
    def ttft(self) -> float:
        """Time to the first content delta (first token); the whole latency if there was none."""
        return self.content_times[0] - self.t_send if self.content_times else self.latency

    @property
    def gaps(self) -> list[float]:
        t = self.content_times
        return [b - a for a, b in itertools.pairwise(t)]


BodyFor = Callable[[int, Sample | None], tuple[bytes, str]]
"""``(connection index, that connection's previous sample or None) -> (body, label)`` (Responses mode)."""


class _Dechunker:
    """Incremental ``Transfer-Encoding: chunked`` decoder (no allocation beyond the payload slices)."""

    __slots__ = ("buf", "need", "state")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.need = 0
        self.state = 0  # 0 size line, 1 data, 2 CRLF after data, 3 trailer

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(payload decoded from ``data``, whether the terminating chunk and trailer were seen)."""
        buf = self.buf
        buf += data
        out: list[bytes] = []
        pos = 0
        while True:
            state = self.state
            if state == 1:
                avail = len(buf) - pos
                if avail <= 0:
                    break
                take = avail if avail < self.need else self.need
                out.append(bytes(buf[pos : pos + take]))
                pos += take
                self.need -= take
                if self.need == 0:
                    self.state = 2
            elif state == 0:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
                pos = eol + 2
                if size == 0:
                    self.state = 3
                else:
                    self.need, self.state = size, 1
            elif state == 2:
                if len(buf) - pos < 2:
                    break
                pos += 2
                self.state = 0
            else:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                if eol == pos:
                    del buf[: eol + 2]
                    return b"".join(out), True
                pos = eol + 2
        del buf[:pos]
        return b"".join(out), False


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = True
        self._sample: Sample | None = None
        self._future: asyncio.Future[Sample] | None = None
        self._mode = _HEAD
        self._head = bytearray()
        self._remaining = 0
        self._dechunker = _Dechunker()
        self._abandon_after = 0

    # -- asyncio callbacks ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._sample is not None:
            if self._mode == _UNTIL_CLOSE:
                self._finish(time.perf_counter())
            else:
                self._fail(f"connection closed mid-response ({exc or 'EOF'})")

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        sample = self._sample
        if sample is None:
            return  # nothing outstanding: stray bytes after a completed response; ignore
        if self._mode == _HEAD:
            head = self._head
            head += data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                if len(head) > _MAX_HEAD:
                    self._fail("response head too large")
                return
            try:
                self._parse_head(bytes(head[:end]), sample)
            except ValueError as error:
                self._fail(f"bad response head: {error}")
                return
            data = bytes(head[end + 4 :])
            head.clear()
            sample.t_headers = now
            if self._mode == _LENGTH and self._remaining == 0:
                self._finish(now)
                return
            if not data:
                return
        if self._mode == _LENGTH:
            self._remaining -= len(data)
            sample.body_bytes += len(data)
            sample.pieces.append((now, data))
            if self._remaining <= 0:
                self._finish(now)
        elif self._mode == _CHUNKED:
            try:
                payload, complete = self._dechunker.feed(data)
            except ValueError:
                self._fail("bad chunked framing")
                return
            if payload:
                sample.body_bytes += len(payload)
                sample.pieces.append((now, payload))
            if complete:
                self._finish(now)
        else:
            sample.body_bytes += len(data)
            sample.pieces.append((now, data))
        if self._abandon_after and self._sample is sample and sample.body_bytes >= self._abandon_after:
            self._abandon(now)

    # -- request cycle -------------------------------------------------------------------------------------

    def _parse_head(self, head: bytes, sample: Sample) -> None:
        lines = head.split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise ValueError(repr(lines[0][:80]))
        sample.status = int(status_line[1])
        length: int | None = None
        chunked = False
        keep = status_line[0] != b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                length = int(value)
            elif key == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif key == b"connection":
                token = value.strip().lower()
                keep = token != b"close" and (keep or token == b"keep-alive")
        self.keep_alive = keep
        if chunked:
            self._mode = _CHUNKED
            self._dechunker = _Dechunker()
        elif length is not None:
            self._mode, self._remaining = _LENGTH, length
        elif sample.status in (204, 304) or 100 <= sample.status < 200:
            self._mode, self._remaining = _LENGTH, 0
        else:
            self._mode = _UNTIL_CLOSE
            self.keep_alive = False

    def request(self, wire: bytes, abandon_after: int = 0) -> asyncio.Future[Sample]:
        assert self.transport is not None and self._sample is None
        loop = asyncio.get_running_loop()
        self._future = loop.create_future()
        self._sample = Sample()
        self._mode = _HEAD
        self._abandon_after = abandon_after
        self._sample.t_send = time.perf_counter()
        self.transport.write(wire)
        return self._future

    def _finish(self, now: float) -> None:
        sample, future = self._sample, self._future
        self._sample = self._future = None
        self._mode = _HEAD
        if sample is None or future is None:
            return
        sample.t_end = now
        if not future.done():
            future.set_result(sample)
        if not self.keep_alive and self.transport is not None:
            self.transport.close()

    def _fail(self, reason: str) -> None:
        sample, future = self._sample, self._future
        self._sample = self._future = None
        if sample is not None:
            sample.error = reason
            sample.t_end = time.perf_counter()
        if future is not None and not future.done() and sample is not None:
            future.set_result(sample)
        self.abort()

    def progress(self) -> str:
        """How far the outstanding response got (for a timeout: stuck before the head, or mid-body?)."""
        sample = self._sample
        if sample is None:
            return "nothing outstanding"
        if not sample.status:
            return f"no response head after {time.perf_counter() - sample.t_send:.1f} s"
        return f"HTTP {sample.status}, {sample.body_bytes} body bytes"

    def _abandon(self, now: float) -> None:
        """Hang up mid-response on purpose (RST, as a killed client would): the sample is kept, marked."""
        sample, future = self._sample, self._future
        self._sample = self._future = None
        if sample is not None:
            sample.abandoned = True
            sample.error = f"abandoned by the client after {sample.body_bytes} bytes"
            sample.t_end = now
        if future is not None and not future.done() and sample is not None:
            future.set_result(sample)
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


@dataclasses.dataclass(slots=True)
class RunResult:
    """Everything one bounded run produced. ``wall`` spans the first send to the last completion."""

    samples: list[Sample]
    wall: float
    client_cpu: float  # this process's CPU during the run (is the load generator near saturation?)
    timed_out: int = 0  # requests still outstanding when the wall-clock cap hit

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    @property
    def errors(self) -> int:
        return sum(1 for s in self.samples if not s.ok and not s.abandoned) + self.timed_out

    def error_kinds(self, limit: int = 3) -> list[str]:
        """A few distinct error reasons, for the report's notes."""
        kinds: list[str] = []
        for s in self.samples:
            if not s.ok and not s.abandoned and s.error and s.error not in kinds:
                kinds.append(s.error)
                if len(kinds) >= limit:
                    break
        if self.timed_out:
            kinds.append(f"{self.timed_out} request(s) unfinished at the time cap")
        return kinds


async def _connect(host: str, port: int) -> _Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_Connection, host, port)
    return protocol


async def _drive(
    request: Request,
    total: int,
    concurrency: int,
    cap_s: float,
    timeout_s: float,
    synchronized: bool,
    on_tick: Callable[[], None] | None,
    tick_s: float,
    body_for: BodyFor | None = None,
    ramp_s: float = 0.0,
    one_each: bool = False,
    settle_s: float = 0.0,
) -> RunResult:
    if request.host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the bench only targets the loopback interface")
    wire = request.wire()
    samples: list[Sample] = []
    remaining = total
    loop = asyncio.get_running_loop()
    cpu0 = sum(os.times()[:2])
    start_gate = asyncio.Event()
    deadline = loop.time() + cap_s
    connections: list[_Connection | None] = [None] * concurrency
    timed_out = 0

    async def open_all() -> None:
        limit = asyncio.Semaphore(128)  # don't SYN-flood a 1024 backlog

        async def one(i: int) -> None:
            async with limit:
                with contextlib.suppress(OSError):
                    connections[i] = await _connect(request.host, request.port)

        await asyncio.gather(*(one(i) for i in range(concurrency)))

    async def worker(i: int) -> None:
        nonlocal remaining, timed_out
        if synchronized:
            await start_gate.wait()
        conn = connections[i]
        previous: Sample | None = None
        sent_one = False
        label = ""

        def record(sample: Sample) -> None:
            nonlocal previous
            samples.append(sample)
            if body_for is not None:
                sample.label = label
                previous = sample

        if ramp_s > 0:
            await asyncio.sleep(ramp_s * i / concurrency)
        while remaining > 0 and loop.time() < deadline and not (one_each and sent_one):
            remaining -= 1
            sent_one = True
            this_wire = wire
            if body_for is not None:
                if previous is not None:
                    # between two requests of this connection, outside every timed interval; only when
                    # there is a next request (a connection's last sample waits for the run's end, so
                    # analysing a long stream never delays the reads of streams still in flight)
                    analyse(previous, request)
                body, label = body_for(i, previous)
                this_wire = request.wire(body)
            if conn is None or conn.closed:
                try:
                    conn = await _connect(request.host, request.port)
                except OSError as error:
                    record(Sample(error=f"connect: {error}", t_send=time.perf_counter()))
                    await asyncio.sleep(0.01)
                    continue
            future = conn.request(this_wire, request.abandon_after)
            try:
                left = min(timeout_s, max(0.001, deadline - loop.time()))
                sample = await asyncio.wait_for(future, left)
            except TimeoutError:
                where = conn.progress()
                conn.abort()
                conn = None
                if loop.time() >= deadline:
                    timed_out += 1
                    return
                record(Sample(error=f"timeout after {timeout_s:g}s ({where})", t_send=time.perf_counter()))
                continue
            record(sample)
        if conn is not None:
            conn.abort()

    async def ticker() -> None:
        assert on_tick is not None
        while True:
            on_tick()
            await asyncio.sleep(tick_s)

    tick_task = asyncio.ensure_future(ticker()) if on_tick is not None else None
    try:
        if synchronized:
            await open_all()
            await asyncio.sleep(settle_s)
        t0 = time.perf_counter()
        workers = [asyncio.ensure_future(worker(i)) for i in range(concurrency)]
        start_gate.set()
        await asyncio.gather(*workers)
    finally:
        if tick_task is not None:
            tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick_task
        for c in connections:
            if c is not None:
                c.abort()
    ends = [s.t_end for s in samples if s.t_end]
    sends = [s.t_send for s in samples if s.t_send]
    wall = (max(ends) - min(sends)) if ends and sends else time.perf_counter() - t0
    cpu = sum(os.times()[:2]) - cpu0
    return RunResult(samples, wall, cpu, timed_out=timed_out)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # the stdlib loop is nearly as fast for this (docs/measurements.md)
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(
    request: Request,
    n: int,
    concurrency: int = 1,
    *,
    cap_s: float = 30.0,
    timeout_s: float = 30.0,
    synchronized: bool = False,
    on_tick: Callable[[], None] | None = None,
    tick_s: float = 0.1,
    body_for: BodyFor | None = None,
    ramp_s: float = 0.0,
    one_each: bool = False,
    settle_s: float = 0.0,
) -> RunResult:
    """Send ``request`` ``n`` times over ``concurrency`` keep-alive connections, then ``analyse`` all.

    ``synchronized`` opens every connection first and releases all requests together (the worst case for
    N concurrent streams).  ``ramp_s`` spreads the connections' first requests evenly over that many
    seconds instead (connection ``i`` starts ``ramp_s * i / concurrency`` late): streams that began at
    different moments, as real traffic's do, so their deltas do not all fall due at the same instant.
    ``on_tick`` runs every ``tick_s`` on the client's loop during the run (memory sampling).  Stops at
    ``cap_s`` wall-clock seconds whatever ``n`` says.

    ``body_for`` (Responses mode) gives every request its own body, built from the same connection's
    previous sample (analysed before the next request is built, so its ``response_id`` and ``ok`` are
    known), and labels it.  Meant for chained conversations at low concurrency: that analysis runs on the
    client's loop between requests, so with many streams in flight it would delay their reads (a
    connection's last sample is analysed after the run, like every sample without ``body_for``).

    ``one_each``: every connection sends one request at most, so a request the server refuses at once is
    not replaced by the next one (a load-shedding run counts refusals instead of retrying them).
    ``settle_s`` (with ``synchronized``): a pause between opening the connections and the first request.
    A connection is open for the client once the kernel completed it, before the server accepted it;
    trio accepts one connection per pass of its run loop, so without the pause a server that falls
    behind under load is still accepting the last connections when their requests are due, and the
    run measures that queue rather than the requests.
    """
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        result = runner.run(
            _drive(
                request,
                n,
                concurrency,
                cap_s,
                timeout_s,
                synchronized,
                on_tick,
                tick_s,
                body_for,
                ramp_s,
                one_each,
                settle_s,
            )
        )
    for sample in result.samples:
        analyse(sample, request)
    return result


def run_many(requests: Sequence[Request], **kwargs: Any) -> list[RunResult]:
    """Convenience for warm-ups: one small run per request."""
    return [run(r, **kwargs) for r in requests]


# ---------------------------------------------------------------------------------------------------------
# Post-run analysis


_RESPONSES_FAILED = frozenset({"response.failed", "response.incomplete", "error"})


def _is_content(event: dict[str, Any], kind: str | None = None) -> bool:
    """A content delta: OpenAI chunk with non-empty content/tool_calls, Anthropic content_block_delta, or
    a Responses ``response.output_text.delta`` (``kind``: the SSE ``event:`` name, else the JSON type)."""
    kind = kind or event.get("type")
    if kind in ("content_block_delta", "response.output_text.delta"):
        return True
    choices = event.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return False
    delta = choices[0].get("delta")
    if not isinstance(delta, dict):
        return False
    return bool(delta.get("content") or delta.get("tool_calls"))


def analyse(sample: Sample, request: Request) -> None:
    """Turn raw ``(time, bytes)`` pieces into events, timings and a verdict; frees the pieces.

    Idempotent (Responses mode analyses a sample on completion, ``run`` analyses every sample after)."""
    if sample.analysed:
        return
    sample.analysed = True
    if sample.error is not None:
        sample.ok = False
        sample.pieces = []
        return
    if sample.status != 200:
        body = b"".join(p for _, p in sample.pieces)[:200]
        sample.error = f"HTTP {sample.status}: {body.decode('utf-8', 'replace')}"
        sample.pieces = []
        return
    if not request.stream:
        body = b"".join(p for _, p in sample.pieces)
        if request.marker is not None:  # not a completion (e.g. a routing decision)
            sample.ok = body.rstrip().endswith(b"}") and request.marker in body
        else:
            sample.ok = body.rstrip().endswith(b"}") and (b'"choices"' in body or b'"content"' in body)
        if not sample.ok:
            sample.error = "response body is not the expected answer"
        sample.pieces = []
        return
    carry = b""
    for t, piece in sample.pieces:
        data = carry + piece.replace(b"\r\n", b"\n")
        start = 0
        while True:
            end = data.find(b"\n\n", start)
            if end < 0:
                break
            _event(sample, data[start:end], t)
            start = end + 2
        carry = data[start:]
    sample.pieces = []
    expected = request.expected_chunks
    sample.ok = (
        sample.done and sample.error is None and (expected is None or sample.content_events == expected)
    )
    if not sample.ok and sample.error is None:
        if not sample.done:
            sample.error = f"stream ended without [DONE] after {sample.content_events} deltas"
        else:
            sample.error = f"stream carried {sample.content_events} deltas, expected {expected}"


def _event(sample: Sample, block: bytes, t: float) -> None:
    data_lines: list[bytes] = []
    name: str | None = None  # the SSE ``event:`` field (Anthropic and Responses streams name every event)
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            data_lines.append(line[5:].lstrip())
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    if not data_lines:
        return  # a comment / keep-alive ping
    data = b"\n".join(data_lines)
    sample.events += 1
    if not sample.t_first_event:
        sample.t_first_event = t
    if data == b"[DONE]":
        sample.done = True
        return
    try:
        event = json.loads(data)
    except ValueError:
        return
    if not isinstance(event, dict):
        return
    kind = name or event.get("type")
    if _is_content(event, kind):
        sample.content_events += 1
        sample.content_times.append(t)
    elif kind in ("message_stop", "response.completed"):
        sample.done = True
    elif kind in _RESPONSES_FAILED and sample.error is None:
        detail = event.get("error") or (event.get("response") or {}).get("error") or event
        sample.error = f"{kind} event: {str(detail)[:160]}"
    elif "error" in event and sample.error is None:
        sample.error = f"error event: {str(event['error'])[:160]}"
    if sample.response_id is None and isinstance(event.get("response"), dict):
        rid = event["response"].get("id")
        sample.response_id = rid if isinstance(rid, str) else None
