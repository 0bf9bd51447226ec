"""State-store benchmark: sustained write rate into Postgres, and bytes per conversation vs Plano.

    python -m bench.state_bench [--dsn CONNINFO] [--turns N] [--json]

1. Write rate: N realistic turns (~1 KB of items plus the response object)
   pushed through `open_state_store` exactly as the gateway would
   (`admit()` + `put()`; on `StoreFullError` the producer backs off 1 ms),
   timed from the first `put()` until the last batch is committed.  Target:
   >= 10,000 turns/s.
2. Storage: one 100-turn conversation stored (a) by plano-trio (one delta row
   per turn) and (b) the way Plano does it -- its `conversation_states` table
   (response_id primary key, input_items JSONB, created_at, model, provider,
   updated_at), one row per response holding the *whole* history so far,
   written with Plano's `INSERT ... ON CONFLICT (response_id) DO UPDATE` --
   in scratch schemas of the same database.
   Reports bytes at 50 and 100 turns: linear (2x) vs quadratic (~4x).

Message text is drawn from a seeded word list so TOAST compression does not
flatter either side.  Everything runs in throwaway schemas, dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

import msgspec
import psycopg
import trio
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from plano_trio.state import StateSettings, StoreFullError, Turn, open_state_store

DEFAULT_DSN = os.environ.get("PLANO_TRIO_BENCH_PG", "host=127.0.0.1 port=5432 user=postgres dbname=test")

_VOCABULARY = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there been one all we their has would when if so no will can more about said "
    "model token stream request response gateway provider route weather paris flight booking price table "
    "python trio postgres latency throughput batch commit queue conversation turn history tool function "
    "argument output input message assistant user system context window cache memory disk network error"
)
_WORDS = _VOCABULARY.split()


@dataclass(frozen=True)
class WriteRate:
    turns: int
    seconds: float
    turns_per_s: float
    batches: int
    avg_batch: float
    avg_flush_ms: float
    json_bytes_per_turn: float
    producer_backoffs: int


@dataclass(frozen=True)
class Storage:
    scheme: str
    rows_50: int
    bytes_50: int
    rows_100: int
    bytes_100: int
    relation_bytes_100: int

    @property
    def per_turn_100(self) -> float:
        return self.bytes_100 / 100

    @property
    def growth(self) -> float:
        return self.bytes_100 / self.bytes_50


# --- data ----------------------------------------------------------------------------------------------


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def make_conversation(n: int, prefix: str, seed: int = 7) -> list[Turn]:
    """n linear turns; each ~40-word question and ~120-word answer, with a tool call every 5th turn."""
    rng = random.Random(seed)
    turns: list[Turn] = []
    previous: str | None = None
    for i in range(n):
        rid = f"resp_{prefix}_{i:05d}_{uuid.uuid4().hex[:12]}"
        inputs: list[Any] = [{"role": "user", "content": [{"type": "input_text", "text": _text(rng, 40)}]}]
        outputs: list[Any] = []
        if i % 5 == 4:
            call_id = f"call_{i}"
            inputs.append({"type": "function_call_output", "call_id": call_id, "output": _text(rng, 20)})
        outputs.append(
            {
                "type": "message",
                "id": f"msg_{uuid.uuid4().hex}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": _text(rng, 120), "annotations": []}],
            }
        )
        response = {
            "id": rid,
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": "claude-sonnet-4-6",
            "output": outputs,
            "usage": {"input_tokens": 300 + i, "output_tokens": 160, "total_tokens": 460 + i},
            "temperature": 1.0,
            "top_p": 1.0,
            "tool_choice": "auto",
            "tools": [],
            "parallel_tool_calls": True,
        }
        turns.append(
            Turn(
                rid,
                previous,
                inputs,
                outputs,
                "claude-sonnet-4-6",
                "anthropic/claude-sonnet-4-6",
                time.time(),
                response,
            )
        )
        previous = rid
    return turns


def plano_items(turns: list[Turn]) -> list[list[Any]]:
    """What Plano stores for each turn: all input so far + outputs converted to input messages.

    Plano saves, per response, the merged input (stored history + this turn's items) followed by the
    response's outputs rewritten as input items: each output message becomes an assistant message of its
    ``output_text`` parts.  (Plano also turns a function call into assistant text and drops other item
    types; the bench conversation has message outputs only.)
    """
    history: list[Any] = []
    rows: list[list[Any]] = []
    for turn in turns:
        history = history + list(turn.input_items)
        for item in turn.output_items:
            if item.get("type") == "message":
                texts = [c for c in item["content"] if c.get("type") == "output_text"]
                history.append(
                    {
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": t["text"]} for t in texts],
                    }
                )
        rows.append(list(history))
    return rows


# --- postgres helpers ----------------------------------------------------------------------------------


def _with_schema(conninfo: str, schema: str) -> str:
    params = dict(conninfo_to_dict(conninfo))
    params["options"] = f"-csearch_path={schema}"
    return make_conninfo("", **params)


def _sql(conninfo: str, query: str, params: tuple[Any, ...] | None = None) -> list[Any]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cur = conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []


async def _asql(conninfo: str, query: str, params: tuple[Any, ...] | None = None) -> list[Any]:
    return await trio.to_thread.run_sync(_sql, conninfo, query, params)


@asynccontextmanager
async def scratch_schema(conninfo: str) -> AsyncIterator[str]:
    schema = f"state_bench_{uuid.uuid4().hex[:10]}"
    await _asql(conninfo, f"CREATE SCHEMA {schema}")
    try:
        yield _with_schema(conninfo, schema)
    finally:
        with trio.CancelScope(shield=True):
            await _asql(conninfo, f"DROP SCHEMA {schema} CASCADE")


# --- measurements --------------------------------------------------------------------------------------


async def measure_write_rate(conninfo: str, turns: int = 50_000) -> WriteRate:
    """Sustained batched write rate through the store (see the module docstring)."""
    # One long conversation: the write path and the history cache (default settings) both see it.
    data = make_conversation(turns, "rate")
    json_bytes = sum(len(msgspec.json.encode([t.input_items, t.output_items, t.response])) for t in data)
    backoffs = 0
    async with scratch_schema(conninfo) as dsn:
        settings = StateSettings(type="postgres", connection_string=dsn)
        async with open_state_store(settings) as store:
            started = time.perf_counter()
            for i, turn in enumerate(data):
                while True:
                    try:
                        store.admit()
                        break
                    except StoreFullError:
                        backoffs += 1
                        await trio.sleep(0.001)
                store.put(turn)
                if i % 64 == 0:
                    await trio.sleep(0)  # let the writer task run, as concurrent requests would
            while store.stats.queue_depth:
                await trio.sleep(0.001)
            seconds = time.perf_counter() - started
            stats = store.stats
    return WriteRate(
        turns=turns,
        seconds=round(seconds, 3),
        turns_per_s=round(turns / seconds),
        batches=stats.batches,
        avg_batch=round(stats.flushed_total / max(1, stats.batches), 1),
        avg_flush_ms=round(stats.flush_latency_avg_s * 1000, 2),
        json_bytes_per_turn=round(json_bytes / turns),
        producer_backoffs=backoffs,
    )


_PLANO_SCHEMA = """
CREATE TABLE conversation_states (
    response_id TEXT PRIMARY KEY,
    input_items JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_conversation_states_created_at ON conversation_states (created_at);
CREATE INDEX idx_conversation_states_provider ON conversation_states (provider);
"""

_PLANO_PUT = """
INSERT INTO conversation_states (response_id, input_items, created_at, model, provider, updated_at)
VALUES (%s, %s::jsonb, %s, %s, %s, NOW())
ON CONFLICT (response_id) DO UPDATE SET input_items = EXCLUDED.input_items, model = EXCLUDED.model,
    provider = EXCLUDED.provider, updated_at = NOW()
"""


def _sizes(conninfo: str, table: str) -> tuple[int, int, int]:
    rows = _sql(conninfo, f"SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t")
    relation = _sql(conninfo, f"SELECT pg_total_relation_size('{table}')")
    return int(rows[0][0]), int(rows[0][1]), int(relation[0][0])


async def measure_storage(conninfo: str, turns: int = 100) -> tuple[Storage, Storage]:
    """Bytes for one `turns`-turn conversation: plano-trio's delta rows vs Plano's full-history rows."""
    data = make_conversation(turns, "conv", seed=11)
    half = turns // 2
    async with scratch_schema(conninfo) as dsn:
        settings = StateSettings(type="postgres", connection_string=dsn)
        async with open_state_store(settings) as store:
            for turn in data[:half]:
                store.put(turn)
            while store.stats.queue_depth:
                await trio.sleep(0.001)
            rows_50, bytes_50, _ = await trio.to_thread.run_sync(_sizes, dsn, "plano_trio_turns")
            for turn in data[half:]:
                store.put(turn)
        rows_100, bytes_100, rel_100 = await trio.to_thread.run_sync(_sizes, dsn, "plano_trio_turns")
        ours = Storage("plano-trio (delta rows)", rows_50, bytes_50, rows_100, bytes_100, rel_100)

    async with scratch_schema(conninfo) as dsn:

        def plano() -> Storage:
            encoder = msgspec.json.Encoder()
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(_PLANO_SCHEMA.encode())
                sizes: list[tuple[int, int, int]] = []
                for i, (turn, items) in enumerate(zip(data, plano_items(data), strict=True)):
                    conn.execute(
                        _PLANO_PUT,
                        (
                            turn.response_id,
                            encoder.encode(items).decode(),
                            int(turn.created_at),
                            turn.model,
                            turn.provider,
                        ),
                    )
                    if i + 1 in (half, turns):
                        sizes.append(_sizes(dsn, "conversation_states"))
            (r50, b50, _), (r100, b100, rel100) = sizes
            return Storage("Plano (conversation_states)", r50, b50, r100, b100, rel100)

        theirs = await trio.to_thread.run_sync(plano)
    return ours, theirs


# --- report --------------------------------------------------------------------------------------------


def _server_version(conninfo: str) -> str:
    return str(_sql(conninfo, "SHOW server_version")[0][0])


def format_report(rate: WriteRate, ours: Storage, theirs: Storage, version: str) -> str:
    lines = [
        f"state_bench  (PostgreSQL {version})",
        "",
        f"write path: {rate.turns:,} turns (~{rate.json_bytes_per_turn:,.0f} B JSON each, items + response)"
        " via admit() + put()",
        f"  sustained rate      {rate.turns_per_s:>10,} turns/s   (target >= 10,000)",
        f"  elapsed             {rate.seconds:>10.2f} s",
        f"  batches             {rate.batches:>10,}   avg {rate.avg_batch:.0f} turns,"
        f" avg flush {rate.avg_flush_ms} ms",
        f"  producer back-offs  {rate.producer_backoffs:>10,}   (queue full -> admit() refused, retried)",
        "",
        f"one {ours.rows_100}-turn conversation      {'plano-trio':>14} {'Plano':>14} {'ratio':>8}",
        f"  rows                        {ours.rows_100:>14,} {theirs.rows_100:>14,}",
        f"  bytes at 50 turns           {ours.bytes_50:>14,} {theirs.bytes_50:>14,}"
        f" {theirs.bytes_50 / ours.bytes_50:>7.1f}x",
        f"  bytes at 100 turns          {ours.bytes_100:>14,} {theirs.bytes_100:>14,}"
        f" {theirs.bytes_100 / ours.bytes_100:>7.1f}x",
        f"  bytes per turn (100)        {ours.per_turn_100:>14,.0f} {theirs.per_turn_100:>14,.0f}",
        f"  growth 50 -> 100 turns      {ours.growth:>13.2f}x {theirs.growth:>13.2f}x",
        f"  table+toast+indexes         {ours.relation_bytes_100:>14,} {theirs.relation_bytes_100:>14,}",
        "",
        "bytes = sum(pg_column_size(row)) (after TOAST compression); plano-trio rows also hold the full",
        "response object (for GET /v1/responses/{id}), which Plano does not store.",
    ]
    return "\n".join(lines)


async def run(conninfo: str = DEFAULT_DSN, *, turns: int = 50_000) -> dict[str, Any]:
    rate = await measure_write_rate(conninfo, turns)
    ours, theirs = await measure_storage(conninfo)
    version = await trio.to_thread.run_sync(_server_version, conninfo)
    return {
        "write_rate": asdict(rate),
        "storage": {
            s.scheme: {**asdict(s), "per_turn_100": s.per_turn_100, "growth": round(s.growth, 3)}
            for s in (ours, theirs)
        },
        "report": format_report(rate, ours, theirs, version),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.state_bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dsn", default=DEFAULT_DSN, help="libpq connection string (scratch schemas are made here)"
    )
    parser.add_argument("--turns", type=int, default=50_000, help="turns for the write-rate run")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    result = trio.run(lambda: run(args.dsn, turns=args.turns))
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "report"}, indent=2))
    else:
        print(result["report"])


if __name__ == "__main__":
    main()
