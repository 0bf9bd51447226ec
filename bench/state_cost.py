"""What storing a turn costs the gateway's process, in instructions: the real store driven without a gateway.

``python -m bench.state_cost N BACKEND [new|chain]`` opens the real store (`open_state_store` with real
`StateSettings`; BACKEND is ``memory``, ``postgres`` or ``none``) and does, for N Responses turns arriving
32 at a time, what the request path does per turn: `admit()`, the `Turn` a streamed Responses request
with a short user message and a ~500-character answer produces (`conversation.prepare`, the
translator's `build_response`, `PendingTurn.complete`), and, with ``chain``, `history()` of the
previous turn for conversations of four turns (``new``: every turn starts a conversation, the bench's
c=32 phase).  After each wave of 32 it waits until the wave is committed (postgres: one batch of 32, as
at c=32 where the writer's 20 ms linger gathers about that many), then drains.  ``none`` builds the
same turns and stores nothing: the driver's own cost.

Run it under callgrind at two sizes and divide the difference by the turns between them, so start-up,
imports and migrations cancel out and the machine's load does not matter (PostgreSQL's server is
another process, not counted)::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.state_cost 320 postgres
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.state_cost 1600 postgres

``python -m bench.state_cost measure [SMALL LARGE]`` does exactly that for every backend and mode and
prints instructions per turn.  Postgres: `PLANO_TRIO_BENCH_PG` (default the local cluster, user
postgres, database test), a fresh schema per run (``options=-csearch_path=…``), dropped after.
"""

from __future__ import annotations

import gc
import os
import sys
import uuid
from dataclasses import dataclass
from typing import Any

import trio

from bench import callgrind
from plano_trio.gateway import conversation
from plano_trio.state import StateSettings, StateStore, open_state_store
from plano_trio.translate.client_responses import build_response, item_id, message_item, output_text_part

__all__ = ["instructions", "measure", "run"]

PG = os.environ.get("PLANO_TRIO_BENCH_PG", "host=127.0.0.1 port=5432 user=postgres dbname=test")
WAVE = 32
CHAIN = 4
MODEL = "claude-sonnet-4-6"
PROVIDER = "anthropic/claude-sonnet-4-6"
ANSWER = ("The quick brown fox jumps over the lazy dog, again and again. " * 9)[:500]
USAGE = {
    "input_tokens": 24,
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": 120,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 144,
}


@dataclass(frozen=True, slots=True)
class _Request:
    response_id: str
    merged: dict[str, Any]
    pending: conversation.PendingTurn | None


def _request(turn: int, previous: str | None) -> dict[str, Any]:
    request: dict[str, Any] = {"model": PROVIDER, "input": f"Tell me a short story, part {turn}."}
    request["stream"] = True
    if previous is not None:
        request["previous_response_id"] = previous
    return request


async def _start(store: StateStore | None, number: int, previous: str | None) -> _Request:
    """A request's state work before it goes upstream, as the pipeline does it: history, admit."""
    request = _request(number, previous)
    response_id = "resp_" + uuid.uuid4().hex
    if store is None:
        return _Request(response_id, request, None)
    merged, pending = await conversation.prepare(
        store, request, response_id=response_id, model=PROVIDER, provider=PROVIDER
    )
    return _Request(response_id, merged, pending)


def _finish(started: _Request) -> None:
    """The answer (the translator's final response object) and the turn stored."""
    output = [message_item(item_id("msg"), [output_text_part(ANSWER)], "completed")]
    response = build_response(
        started.merged,
        response_id=started.response_id,
        created_at=1_767_000_000,
        model=MODEL,
        output=output,
        status="completed",
        usage=USAGE,
    )
    if started.pending is not None:
        started.pending.complete(response)


async def _flushed(store: StateStore | None, response_id: str) -> None:
    """Wait until `response_id` is committed (postgres); the other backends have no queue."""
    writer = getattr(store, "_writer", None)
    if writer is not None:
        await writer.wait_flushed(response_id)
    else:
        await trio.lowlevel.checkpoint()


async def _drive(store: StateStore | None, turns: int, chain: bool) -> None:
    """Waves of `WAVE` requests: all start (history reads yield to the loop), then all finish with no
    checkpoint between their puts, so the batch is the wave however slowly the process runs."""
    tips: list[str | None] = [None] * WAVE
    for wave in range((turns + WAVE - 1) // WAVE):
        size = min(WAVE, turns - wave * WAVE)
        started = [
            await _start(store, wave * WAVE + slot, tips[slot] if chain and wave % CHAIN else None)
            for slot in range(size)
        ]
        for slot, request in enumerate(started):
            _finish(request)
            tips[slot] = request.response_id
        await _flushed(store, started[-1].response_id)


def _tune_gc() -> None:
    """The gateway's collector settings (`plano_trio.server.serve.tune_garbage_collector`)."""
    from plano_trio.server.serve import tune_garbage_collector

    tune_garbage_collector()


async def _main(turns: int, backend: str, chain: bool) -> None:
    if backend == "none":
        _tune_gc()
        await _drive(None, turns, chain)
        return
    if backend == "memory":
        settings = StateSettings(type="memory")
        async with open_state_store(settings) as store:
            _tune_gc()
            await _drive(store, turns, chain)
        return
    from bench.state_bench import _asql, _with_schema

    schema = f"state_cost_{uuid.uuid4().hex[:10]}"
    await _asql(PG, f"CREATE SCHEMA {schema}")
    try:
        settings = StateSettings(type="postgres", connection_string=_with_schema(PG, schema))
        async with open_state_store(settings) as store:
            _tune_gc()
            await _drive(store, turns, chain)
            assert store.stats.flushed_total == turns, store.stats
    finally:
        await _asql(PG, f"DROP SCHEMA {schema} CASCADE")


def run(turns: int, backend: str, mode: str = "new") -> None:
    assert backend in ("memory", "postgres", "none") and mode in ("new", "chain"), (backend, mode)
    trio.run(_main, turns, backend, mode == "chain")
    gc.collect()


def instructions(turns: int, backend: str, mode: str) -> int:
    """Instructions callgrind counts for `python -m bench.state_cost turns backend mode` (every thread)."""
    return callgrind.instructions("bench.state_cost", str(turns), backend, mode)


def measure(small: int = 320, large: int = 1600) -> dict[str, float]:
    """Instructions per turn for every backend and mode (`none` is the driver alone)."""
    out = {}
    for mode in ("new", "chain"):
        for backend in ("none", "memory", "postgres"):
            small_count = instructions(small, backend, mode)
            out[f"{backend} {mode}"] = (instructions(large, backend, mode) - small_count) / (large - small)
    return out


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "measure":
        for name, value in measure(*(int(a) for a in sys.argv[2:4])).items():
            print(f"{name:>14}: {value:10.0f} instructions/turn")
    else:
        run(int(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "new")
