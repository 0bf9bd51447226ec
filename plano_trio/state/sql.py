"""The SQL of the postgres backend, as plain sync functions run in worker threads.

Batch writes: COPY first, idempotent INSERT when that cannot be used.
COPY measured 1.3-1.5x faster than a one-statement `INSERT … SELECT FROM
unnest(…) ON CONFLICT DO NOTHING` for 500-turn batches of ~1 KB turns
(≈35k vs ≈25-29k turns/s here), but COPY cannot skip duplicates.  Duplicates
only appear when a batch is retried after a failure that may have happened
after the commit (the connection died before the acknowledgement), or when an
id is reused.  So: the first attempt uses COPY; a retry, or a COPY that hit
a unique violation, uses the INSERT … ON CONFLICT DO NOTHING statement (same
arrays, one round trip, first write wins).  If that fails on bad data (jsonb
cannot hold `\\u0000`, for instance), the batch is written row by row under
savepoints and only the offending turns are rejected -- one bad turn must not
block the queue forever.  Every path is a single transaction with one commit
(the first COPY needs no BEGIN/COMMIT: on an autocommit connection one
statement is its own transaction).  Row formatting releases the GIL every few
rows, so a large batch cannot stall the event loop that streams tokens.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from psycopg import errors

from .migrations import TURNS_TABLE
from .model import EncodedTurn, Turn, restore_response
from .pgconn import Conn
from .writer import Rejection

MAX_CHAIN_DEPTH = 100_000
"""Guard against a (corrupt) cyclic parent chain; far beyond any real conversation."""

CLEANUP_CHUNK = 1000

_COLUMNS = (
    "response_id, previous_response_id, input_items, output_items, model, provider, "
    "created_at, response, response_output_elided"
)

_COPY = f"COPY {TURNS_TABLE} ({_COLUMNS}) FROM STDIN"

_INSERT = f"""
    INSERT INTO {TURNS_TABLE} ({_COLUMNS})
    SELECT r, p, i::jsonb, o::jsonb, m, pr, to_timestamp(c), re::jsonb, e
    FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
                %b::float8[], %b::text[], %b::bool[]) AS u(r, p, i, o, m, pr, c, re, e)
    ON CONFLICT (response_id) DO NOTHING
"""

# The recursion carries only ids and depth; the (possibly large, TOASTed) JSON
# is read once per turn by the final join.
_CHAIN = f"""
    WITH RECURSIVE chain(response_id, previous_response_id, depth) AS (
        SELECT response_id, previous_response_id, 0 FROM {TURNS_TABLE} WHERE response_id = %s
      UNION ALL
        SELECT t.response_id, t.previous_response_id, c.depth + 1
        FROM {TURNS_TABLE} t JOIN chain c ON t.response_id = c.previous_response_id
        WHERE c.depth < %s
    )
    SELECT t.previous_response_id, t.input_items::text, t.output_items::text,
           extract(epoch FROM t.created_at)::float8
    FROM chain c JOIN {TURNS_TABLE} t USING (response_id)
    ORDER BY c.depth DESC
"""

_GET = f"""
    SELECT response_id, previous_response_id, input_items::text, output_items::text, model, provider,
           extract(epoch FROM created_at)::float8, response::text, response_output_elided
    FROM {TURNS_TABLE} WHERE response_id = %s
"""

_DELETE = f"DELETE FROM {TURNS_TABLE} WHERE response_id = %s"

_CLEANUP = f"""
    DELETE FROM {TURNS_TABLE} WHERE ctid IN (
        SELECT ctid FROM {TURNS_TABLE} WHERE created_at < now() - %s * interval '1 second' LIMIT %s
    )
"""

_PERMANENT = (errors.DataError, errors.IntegrityError)
"""Errors about the data itself: retrying the same rows cannot succeed."""


# --- writes --------------------------------------------------------------------------------------------


def write_batch(conn: Conn, batch: Sequence[EncodedTurn], *, retry: bool) -> list[Rejection]:
    """Store `batch` (see the module docstring for the strategy); returns the rejected turns."""
    if not retry:
        try:
            # One COPY on an autocommit connection is its own atomic transaction: no BEGIN/COMMIT
            # round trips (a lone turn at low load is then one statement).
            _copy(conn, batch)
            return []
        except _PERMANENT:  # a duplicate id (UniqueViolation) or bad data; rolled back
            pass  # fall through to the idempotent statement
    try:
        with conn.transaction():
            _insert(conn, batch)
        return []
    except _PERMANENT:
        pass
    rejections: list[Rejection] = []
    with conn.transaction():
        for record in batch:
            try:
                with conn.transaction():  # a savepoint
                    _insert(conn, [record])
            except _PERMANENT as exc:
                rejections.append(Rejection(record.turn.response_id, f"{type(exc).__name__}: {exc}"))
    return rejections


_GIL_YIELD_EVERY = 16
"""Rows formatted between GIL releases: the event loop shares this process's interpreter lock."""


def _copy(conn: Conn, batch: Sequence[EncodedTurn]) -> None:
    with conn.cursor() as cur, cur.copy(_COPY) as copy:
        for index, record in enumerate(batch, 1):
            if index % _GIL_YIELD_EVERY == 0:
                time.sleep(0)  # let the trio loop run: a large batch must not stall token streams
            turn = record.turn
            copy.write_row(
                (
                    turn.response_id,
                    turn.previous_response_id,
                    record.input_json,
                    record.output_json,
                    turn.model,
                    turn.provider,
                    datetime.fromtimestamp(turn.created_at, UTC),
                    record.response_json,
                    record.response_output_elided,
                )
            )


def _insert(conn: Conn, batch: Sequence[EncodedTurn]) -> None:
    conn.execute(
        _INSERT,
        (
            [r.turn.response_id for r in batch],
            [r.turn.previous_response_id for r in batch],
            [r.input_json for r in batch],
            [r.output_json for r in batch],
            [r.turn.model for r in batch],
            [r.turn.provider for r in batch],
            [r.turn.created_at for r in batch],
            [r.response_json for r in batch],
            [r.response_output_elided for r in batch],
        ),
    )


# --- reads ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainTurn:
    """One turn of a fetched chain: what `history()` needs, nothing more."""

    previous_response_id: str | None
    items: list[Any]
    nbytes: int
    created_at: float


def fetch_chain(conn: Conn, response_id: str) -> list[ChainTurn]:
    """The parent chain of `response_id`, root first, in ONE query; [] if the id is unknown.

    The first element's `previous_response_id` is not None when the chain is
    broken (an ancestor was deleted or expired); the caller decides.
    """
    rows = conn.execute(_CHAIN, (response_id, MAX_CHAIN_DEPTH)).fetchall()
    chain: list[ChainTurn] = []
    for previous, input_text, output_text, created_at in rows:
        items: list[Any] = msgspec.json.decode(input_text)
        items.extend(msgspec.json.decode(output_text))
        chain.append(ChainTurn(previous, items, len(input_text) + len(output_text), created_at))
    return chain


def fetch_turn(conn: Conn, response_id: str) -> Turn | None:
    row = conn.execute(_GET, (response_id,)).fetchone()
    if row is None:
        return None
    rid, previous, input_text, output_text, model, provider, created_at, response_text, elided = row
    output_items: list[Any] = msgspec.json.decode(output_text)
    response = msgspec.json.decode(response_text) if response_text is not None else None
    return Turn(
        response_id=rid,
        previous_response_id=previous,
        input_items=msgspec.json.decode(input_text),
        output_items=output_items,
        model=model,
        provider=provider,
        created_at=created_at,
        response=restore_response(response, output_items, elided),
    )


def delete_turn(conn: Conn, response_id: str) -> bool:
    return conn.execute(_DELETE, (response_id,)).rowcount > 0


def delete_expired_chunk(conn: Conn, ttl_s: float) -> int:
    """Delete at most `CLEANUP_CHUNK` turns older than `ttl_s` (own transaction); return how many."""
    return conn.execute(_CLEANUP, (ttl_s, CLEANUP_CHUNK)).rowcount
