"""Micro-benchmark: CPU per analysed conversation (`plano_trio.signals.analyze`), and what it does to a loop.

    python -m bench.signals_bench [--repeat R] [--gil-seconds S]

Conversations of 10, 50 and 100 messages (100 is the analysis window: a
longer conversation costs the same, plus its conversion), as Chat request
JSON, in three shapes:

- ``chat``: a user and an assistant taking turns, messages of 60-400
  characters, a few of them corrections, thanks and complaints;
- ``agent``: a coding agent's loop: a user turn, then assistant tool calls
  and tool outputs of about 1,500 characters (log lines, one error in
  five), short assistant notes;
- ``worst``: every message at the 2,000-character cap, human and
  assistant alternating, each text built from pattern phrases so that
  every similarity layer runs on full-size sets.

Prints the CPU time (process time, single thread) per `analyze` call: the
median and best of R calls with nothing remembered (a conversation seen
for the first time), and the median of the next call of the same
conversation (one message more; what was computed for the others is
remembered).  Then the event-loop question: a thread runs
analyses of the ``worst`` 100-message conversation back to back for S
seconds while the main thread sleeps 1 ms at a time and records how late
it wakes up; compared with the same loop alone, this shows how long the
analysis keeps the GIL from a loop it shares a process with.  And the
alternative: the wall time of one call handed to a one-process pool
(pickling the request and the report both ways included).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import random
import statistics
import threading
import time
from typing import Any

from plano_trio.apis.kind import Api
from plano_trio.signals import analyze
from plano_trio.signals.analyzer import forget

SIZES = (10, 50, 100)

_WORDS = tuple(
    [
        "the",
        "order",
        "shipment",
        "invoice",
        "refund",
        "customer",
        "account",
        "payment",
        "address",
        "delivery",
        "status",
        "tracking",
        "number",
        "please",
        "check",
        "again",
        "update",
        "service",
        "request",
        "error",
        "build",
        "test",
        "deploy",
        "branch",
        "commit",
        "file",
        "function",
        "module",
        "import",
        "config",
        "value",
        "result",
        "query",
        "database",
        "table",
        "index",
        "cache",
        "token",
        "limit",
    ]
)
_USER_LINES = (
    "No, I meant the recent orders from last week",
    "That worked, thanks a lot!",
    "This is not helpful, still not working",
    "Can you show the invoices grouped by month?",
    "What do you mean by that?",
    "Perfect, exactly what I needed",
)
_ERRORS = (
    "Error: validation failed - expected integer got string for field age",
    "HTTP 429 Too Many Requests: rate limit exceeded, retry after 30s",
    "connection timed out after 30 seconds",
    "permission denied: /etc/secrets",
)


def _prose(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


def chat_conversation(count: int, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a helpful assistant."}]
    for index in range(count):
        if index % 2 == 0:
            text = rng.choice(_USER_LINES) if rng.random() < 0.3 else _prose(rng, rng.randint(60, 400))
            messages.append({"role": "user", "content": text})
        else:
            messages.append({"role": "assistant", "content": _prose(rng, rng.randint(100, 400))})
    return {"model": "gpt-4o", "messages": messages}


def agent_conversation(count: int, seed: int = 2) -> dict[str, Any]:
    rng = random.Random(seed)
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Fix the failing test in the billing module"}
    ]
    call = 0
    while len(messages) < count:
        call += 1
        name = rng.choice(("read_file", "run_tests", "grep", "edit_file"))
        arguments = json.dumps({"path": f"src/billing/{rng.choice(_WORDS)}.py", "line": rng.randint(1, 400)})
        messages.append(
            {
                "role": "assistant",
                "content": _prose(rng, 80) if rng.random() < 0.3 else None,
                "tool_calls": [
                    {"id": f"c{call}", "type": "function", "function": {"name": name, "arguments": arguments}}
                ],
            }
        )
        output = _prose(rng, 1500)
        if rng.random() < 0.2:
            output = f"{output[:700]}\n{rng.choice(_ERRORS)}\n{output[700:]}"
        messages.append({"role": "tool", "tool_call_id": f"c{call}", "content": output})
        if rng.random() < 0.2:
            messages.append({"role": "user", "content": rng.choice(_USER_LINES)})
    return {"model": "gpt-4o", "messages": messages[:count]}


def worst_conversation(count: int, seed: int = 3) -> dict[str, Any]:
    rng = random.Random(seed)
    phrases = [*_USER_LINES, "get me a human", "i give up", "let me rephrase", "you're awesome"]
    messages = []
    for index in range(count):
        parts: list[str] = []
        while sum(len(part) + 1 for part in parts) < 2000:
            parts.append(rng.choice(phrases) if rng.random() < 0.3 else _prose(rng, 40))
        messages.append(
            {"role": "user" if index % 2 == 0 else "assistant", "content": " ".join(parts)[:2000]}
        )
    return {"model": "gpt-4o", "messages": messages}


SHAPES = {"chat": chat_conversation, "agent": agent_conversation, "worst": worst_conversation}


def cpu_per_analysis(request: dict[str, Any], repeat: int) -> tuple[float, float, float]:
    """CPU milliseconds of one `analyze` of `request`: (median, best) with nothing remembered, and warm.

    Warm is the next call of the same conversation: the request less its
    last message was analysed just before, as a client resending its
    history would have made it.
    """
    analyze(Api.CHAT, request)  # first use builds the pattern tables
    earlier = {**request, "messages": request["messages"][:-1]}
    cold, warm = [], []
    for _ in range(repeat):
        forget()
        start = time.process_time()
        analyze(Api.CHAT, request)
        cold.append((time.process_time() - start) * 1000)
        forget()
        analyze(Api.CHAT, earlier)
        start = time.process_time()
        analyze(Api.CHAT, request)
        warm.append((time.process_time() - start) * 1000)
    return statistics.median(cold), min(cold), statistics.median(warm)


def wakeup_lateness(seconds: float, busy: bool) -> list[float]:
    """How late (ms) 1 ms sleeps of this thread wake up, with or without an analysing thread beside it."""
    request = worst_conversation(100)
    stop = threading.Event()

    def analyse_forever() -> None:
        while not stop.is_set():
            analyze(Api.CHAT, request)

    worker = threading.Thread(target=analyse_forever, daemon=True) if busy else None
    if worker is not None:
        worker.start()
    late = []
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            time.sleep(0.001)
            late.append((time.perf_counter() - start - 0.001) * 1000)
    finally:
        stop.set()
        if worker is not None:
            worker.join(timeout=10)
    return late


def process_round_trip(request: dict[str, Any], repeat: int) -> tuple[float, float]:
    """Wall milliseconds (median) of a first `analyze` in a one-process pool, and of the same call here."""
    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as pool:
        pool.submit(analyze, Api.CHAT, request).result()
        remote, local = [], []
        for _ in range(repeat):
            pool.submit(forget).result()
            start = time.perf_counter()
            pool.submit(analyze, Api.CHAT, request).result()
            remote.append((time.perf_counter() - start) * 1000)
            forget()
            start = time.perf_counter()
            analyze(Api.CHAT, request)
            local.append((time.perf_counter() - start) * 1000)
    return statistics.median(remote), statistics.median(local)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--gil-seconds", type=float, default=3.0)
    args = parser.parse_args()

    print(f"{'shape':<7}{'messages':>9}{'cold median ms':>16}{'cold best ms':>14}{'warm median ms':>16}")
    for shape, build in SHAPES.items():
        for size in SIZES:
            median, best, warm = cpu_per_analysis(build(size), args.repeat)
            print(f"{shape:<7}{size:>9}{median:>16.2f}{best:>14.2f}{warm:>16.2f}")

    remote, local = process_round_trip(agent_conversation(100), args.repeat)
    print(f"\nagent 100, first analysis, wall: {remote:.2f} ms in a one-process pool, {local:.2f} ms here")

    print(f"\n1 ms sleeps of the main thread, {args.gil_seconds:.0f} s each: lateness in ms")
    print(f"{'beside':<22}{'p50':>7}{'p99':>7}{'max':>7}")
    for label, busy in (("nothing", False), ("an analysing thread", True)):
        late = wakeup_lateness(args.gil_seconds, busy)
        print(f"{label:<22}{_percentile(late, 0.5):>7.2f}{_percentile(late, 0.99):>7.2f}{max(late):>7.2f}")


if __name__ == "__main__":
    main()
