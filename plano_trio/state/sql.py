"""The SQL of the postgres backend: the batch write, and the reads as sync functions for worker threads.

Batch writes are one statement, `INSERT_TURNS`, with one parameter: the
whole batch as a JSON array of the rows `put()` encoded (`model.encode_turn`,
one msgspec call a turn), joined as bytes, unpacked by `jsonb_to_recordset`
on the server.  The batch writer sends it from the
event loop itself (pgloop.py; postgres.py has the measurements that chose
it).  Why this statement:

- one round trip: libpq sends Parse, Bind, Execute and Sync at once and the
  server answers once.  COPY needs two (libpq waits for the server's go-ahead
  before it sends a row), and every receive is one more wake-up of the loop;
- no per-row work in Python: a batch is its rows joined; COPY's text rows
  cost 8-13 µs a turn to escape here, and psycopg's `write_row` more again;
- idempotent: `ON CONFLICT DO NOTHING` makes a retried batch (it may have
  committed before the connection died) or a reused id harmless, first write
  wins, so there is no second statement for retries;
- on an autocommit connection one statement is one transaction: no BEGIN or
  COMMIT round trips.

PostgreSQL takes it at ~13k turns/s for 500-turn batches of ~1 KB turns on
this machine under load, against ~16k for COPY: the server is a bit slower,
the gateway, which is the bottleneck, much cheaper.  A batch holding bad
data (jsonb cannot hold `\\u0000`, text cannot hold NUL) fails as a whole and
is then written turn by turn, so only the offending turns are rejected: one
bad turn must not block the queue forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from psycopg import errors

from .migrations import TURNS_TABLE
from .model import EncodedTurn, Turn, restore_response
from .pgconn import Conn

MAX_CHAIN_DEPTH = 100_000
"""Guard against a (corrupt) cyclic parent chain; far beyond any real conversation."""

CLEANUP_CHUNK = 1000

_COLUMNS = (
    "response_id, previous_response_id, input_items, output_items, model, provider, "
    "created_at, response, response_output_elided"
)

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

PERMANENT = (errors.DataError, errors.IntegrityError)
"""Errors about the data itself: retrying the same rows cannot succeed."""


# --- writes --------------------------------------------------------------------------------------------

INSERT_TURNS = f"""
    INSERT INTO {TURNS_TABLE} ({_COLUMNS})
    SELECT r, p, i, o, m, pr, to_timestamp(c), re, e
    FROM jsonb_to_recordset($1::jsonb)
        AS t(r text, p text, i jsonb, o jsonb, m text, pr text, c float8, re jsonb, e bool)
    ON CONFLICT (response_id) DO NOTHING
""".encode()


def turns_json(batch: Sequence[EncodedTurn]) -> bytes:
    """`batch` as the one parameter of `INSERT_TURNS`: a JSON array of the turns' rows, joined as they are."""
    rows = [record.row for record in batch]
    if not rows:
        return b"[]"
    rows[0] = b"[" + rows[0]  # brackets on the end rows: concatenating the array would copy it twice
    rows[-1] += b"]"
    return b",".join(rows)


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
