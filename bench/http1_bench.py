"""Micro-benchmark: our sans-I/O HTTP/1.1 client (`plano_trio.upstream.http1`) against h11.

    python -m bench.http1_bench [--cycles N] [--repeat R]

Both parsers get the same bytes and do the same work the upstream client
does on a reused keep-alive connection, with no sockets involved:

- ``small``: encode a chat-completions POST (8 headers, ~200-byte JSON body),
  parse a 10-header JSON response with Content-Length that arrived in one
  read, read the body to the end, start the next cycle;
- ``stream``: the same request, then a chunked SSE response whose head and
  20 chunks each arrive in their own read (body drained after every read, as
  `Connection.receive_body` does), then the last-chunk.

Prints µs per cycle (best of R interleaved runs of N cycles), the marginal
µs per chunk (the 20-chunk cycle minus the same cycle with no chunks, over
20), and the h11/http1 ratio.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import h11

from plano_trio.upstream import http1

METHOD = b"POST"
TARGET = b"/v1/chat/completions"
REQUEST_HEADERS = [
    (b"host", b"api.openai.com"),
    (b"content-type", b"application/json"),
    (b"authorization", b"Bearer sk-proj-0123456789abcdefghijklmnopqrstuvwxyz"),
    (b"accept", b"application/json"),
    (b"user-agent", b"OpenAI/Python 1.51.0"),
    (b"accept-encoding", b"identity"),
    (b"x-request-id", b"4f1c2a9e-7d3b-4c55-9a0e-2b7f8c1d6e90"),
]
REQUEST_BODY = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},'
    b'{"role":"user","content":"Say hello in five languages, one per line."}],'
    b'"temperature":0.2,"max_tokens":64}'
)
REQUEST_HEADERS.append((b"content-length", str(len(REQUEST_BODY)).encode()))

RESPONSE_BODY = (
    b'{"id":"chatcmpl-abc123","object":"chat.completion","created":1735000000,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"Hello\\nHola\\nBonjour\\nHallo\\nCiao"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":27,"completion_tokens":12,"total_tokens":39}}'
)
_COMMON_HEAD = (
    b"date: Tue, 01 Jul 2025 10:00:00 GMT\r\n"
    b"connection: keep-alive\r\n"
    b"openai-organization: user-abc\r\n"
    b"openai-processing-ms: 341\r\n"
    b"openai-version: 2020-10-01\r\n"
    b"x-ratelimit-remaining-requests: 9999\r\n"
    b"x-request-id: req_0123456789abcdef\r\n"
    b"server: cloudflare\r\n"
)
SMALL_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
    len(RESPONSE_BODY),
    _COMMON_HEAD,
    RESPONSE_BODY,
)
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
    + _COMMON_HEAD
    + b"\r\n"
)
STREAM_CHUNKS = 20
_EVENTS = [
    b'data: {"id":"chatcmpl-abc123","object":"chat.completion.chunk","created":1735000000,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"tok%02d"},"finish_reason":null}]}\n\n'
    % i
    for i in range(STREAM_CHUNKS)
]
STREAM_READS = [STREAM_HEAD, *(b"%x\r\n%s\r\n" % (len(e), e) for e in _EVENTS), b"0\r\n\r\n"]
STREAM_BODY = b"".join(_EVENTS)


# --- one cycle with each library ---------------------------------------------------------------------


def http1_cycle(conn: http1.ClientConnection, reads: list[bytes]) -> bytes:
    """Request out, `reads` in; returns the body (all the bytes the client would forward)."""
    conn.send(http1.encode_request(METHOD, TARGET, REQUEST_HEADERS, REQUEST_BODY))
    body: list[bytes] = []
    for data in reads:
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            if type(event) is bytes:
                body.append(event)
            elif event is http1.NEED_DATA or event is http1.END_OF_MESSAGE:
                break
    assert conn.next_event() is http1.END_OF_MESSAGE
    conn.start_next_cycle()
    return b"".join(body)


def h11_cycle(conn: h11.Connection, reads: list[bytes]) -> bytes:
    """The same cycle as the pool drove h11 before `http1` (encode as in `Connection.encode_request`)."""
    b"".join(
        (
            conn.send(h11.Request(method=METHOD, target=TARGET, headers=REQUEST_HEADERS)) or b"",
            conn.send(h11.Data(data=REQUEST_BODY)) or b"",
            conn.send(h11.EndOfMessage()) or b"",
        )
    )
    body: list[bytes] = []
    done = False
    for data in reads:
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            if type(event) is h11.Data:
                body.append(bytes(event.data))
            elif type(event) is h11.EndOfMessage:
                done = True
                break
            elif event is h11.NEED_DATA:
                break
    assert done
    conn.start_next_cycle()
    return b"".join(body)


# --- timing ------------------------------------------------------------------------------------------


def time_us(run: Callable[[], object], cycles: int) -> float:
    """Mean µs of `run()` over `cycles` calls."""
    start = time.perf_counter_ns()
    for _ in range(cycles):
        run()
    return (time.perf_counter_ns() - start) / cycles / 1000


def measure(reads: list[bytes], expected: bytes, cycles: int, repeat: int) -> tuple[float, float]:
    """Best-of-`repeat` µs per cycle for http1 and h11, runs interleaved so both see the same machine."""
    ours = http1.ClientConnection()
    theirs = h11.Connection(h11.CLIENT)
    assert http1_cycle(ours, reads) == expected == h11_cycle(theirs, reads)
    ours_best = h11_best = float("inf")
    for _ in range(repeat):
        ours_best = min(ours_best, time_us(lambda: http1_cycle(ours, reads), cycles))
        h11_best = min(h11_best, time_us(lambda: h11_cycle(theirs, reads), cycles))
    return ours_best, h11_best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=2000, help="cycles per timed run (default 2000)")
    parser.add_argument("--repeat", type=int, default=9, help="timed runs, best kept (default 9)")
    args = parser.parse_args()
    stream_cycles = max(1, args.cycles // 4)

    small = measure([SMALL_RESPONSE], RESPONSE_BODY, args.cycles, args.repeat)
    stream = measure(STREAM_READS, STREAM_BODY, stream_cycles, args.repeat)
    empty = measure([STREAM_HEAD, STREAM_READS[-1]], b"", stream_cycles, args.repeat)
    per_chunk = ((stream[0] - empty[0]) / STREAM_CHUNKS, (stream[1] - empty[1]) / STREAM_CHUNKS)

    title = f"scenario (µs, best of {args.repeat})"
    print(f"{title:<40}{'http1':>9}{'h11':>9}{'h11/http1':>11}")
    rows: list[tuple[str, float, float]] = [
        ("small request/response cycle", *small),
        (f"{STREAM_CHUNKS}-chunk streamed response cycle", *stream),
        ("  per chunk (marginal, one read each)", *per_chunk),
    ]
    for label, ours_us, h11_us in rows:
        print(f"{label:<40}{ours_us:>9.2f}{h11_us:>9.2f}{h11_us / ours_us:>10.1f}x")


if __name__ == "__main__":
    main()
