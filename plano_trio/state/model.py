"""Value types of the state store: a stored turn, its encoded form, stats and drain reports.

A `Turn` is one completed Responses API exchange stored as a *delta*: only
the input items that were new in this request plus the response's output
items, linked to its parent by `previous_response_id`.  The conversation for
a response id is the concatenation, root first, of `input_items +
output_items` of every turn on its parent chain, so storing a conversation
costs O(total bytes) instead of Plano's O(turns^2) (Plano rewrites the whole
history under each new response id).

Items are kept exactly as the Responses API gave them (`message`,
`function_call`, `function_call_output`, reasoning items, ...); nothing is
converted, so nothing is lost.  Stores keep references to the item objects
they are given and hand the same objects back: treat them as immutable after
`put()` and in what `history()` returns.
"""

from __future__ import annotations

from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()


class Turn(msgspec.Struct, frozen=True):
    """One completed response, as stored."""

    response_id: str
    previous_response_id: str | None
    input_items: list[Any]
    """Only this request's new input items (not the history that came from the parent)."""
    output_items: list[Any]
    """The response's `output` items, as-is."""
    model: str
    provider: str
    created_at: float
    """Epoch seconds; postgres keeps microsecond precision (timestamptz)."""
    response: dict[str, Any] | None = None
    """The full final response object, for `GET /v1/responses/{id}`; never part of the history."""


class _Row(msgspec.Struct, gc=False):
    """A turn as one element of `sql.INSERT_TURNS`'s parameter (the field names are its recordset's)."""

    r: str
    p: str | None
    i: list[Any]
    o: list[Any]
    m: str
    pr: str
    c: float
    re: msgspec.Raw | None
    e: bool


class EncodedTurn(msgspec.Struct, frozen=True, gc=False):
    """A turn plus its row: the JSON object the database stores it from, encoded once, in `put()`.

    Encoding up front validates the turn while the caller can still be told,
    measures it for the byte bounds, and leaves the batch writer nothing to
    do per turn but join rows (`sql.turns_json`).  The row is the stored form
    (the statement unpacks it with `jsonb_to_recordset`): when
    `response["output"]` equals `output_items` (the normal case) the response
    goes without it and is rebuilt on read, so the output is stored once
    (`e`, elided, records that).  Not tracked by the cycle collector: it
    refers to the turn, nothing refers back.
    """

    turn: Turn
    row: bytes
    history_nbytes: int
    """Bytes this turn adds to a rebuilt conversation: its row less the response."""

    @property
    def nbytes(self) -> int:
        """Size of the stored JSON: the unit of every byte bound."""
        return len(self.row)


def encode_turn(turn: Turn) -> EncodedTurn:
    """Encode `turn` for storage; raises `TypeError` if it is not JSON-serializable.

    One C-level encode walks the items; the response (most of the rest) is
    encoded first, on its own, only so that its length can be left out of
    `history_nbytes`.
    """
    response_json: bytes | None = None
    elided = False
    response = turn.response
    if response is not None:
        if "output" in response:
            output = response["output"]
            if output is turn.output_items or output == turn.output_items:
                response = response.copy()  # C speed; a comprehension costs ~10k instructions a turn
                del response["output"]
                elided = True
        response_json = _encoder.encode(response)
    row = _encoder.encode(
        _Row(
            turn.response_id,
            turn.previous_response_id,
            turn.input_items,
            turn.output_items,
            turn.model,
            turn.provider,
            turn.created_at,
            None if response_json is None else msgspec.Raw(response_json),
            elided,
        )
    )
    return EncodedTurn(turn, row, len(row) - (len(response_json) if response_json is not None else 0))


def restore_response(
    response: dict[str, Any] | None, output_items: list[Any], elided: bool
) -> dict[str, Any] | None:
    """Undo the `output` elision done by `encode_turn`."""
    if response is None or not elided:
        return response
    return {**response, "output": output_items}


class StoreStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of the store's counters (for logs now, metrics later)."""

    backend: str
    queue_depth: int = 0
    """Turns accepted by `put()` and not yet committed (queued or in the batch being written)."""
    reserved: int = 0
    """Slots taken by `admit()` whose `put()`/`release()` has not happened yet."""
    batches: int = 0
    last_batch_size: int = 0
    flush_latency_last_s: float = 0.0
    flush_latency_avg_s: float = 0.0
    write_failures: int = 0
    """Failed batch write attempts (each is retried; nothing is dropped)."""
    refused: int = 0
    """`admit()` calls refused with `StoreFullError`."""
    flushed_total: int = 0
    rejected_total: int = 0
    """Turns refused as data (NUL, which jsonb cannot hold; an id no backend can store): logged, skipped."""
    reads: int = 0
    """Database read round trips (`history`, `get`, `delete`)."""
    cache_hits: int = 0
    cache_misses: int = 0
    entries: int = 0
    """Memory: turns held.  Postgres: conversations in the history cache."""
    bytes: int = 0
    """Memory: JSON bytes of the turns held.  Postgres: JSON bytes in the history cache."""
    evicted: int = 0
    """Memory backend: turns evicted by the LRU bounds."""
    expired: int = 0
    """Turns removed by TTL cleanup."""


class DrainReport(msgspec.Struct, frozen=True, kw_only=True):
    """What `aclose()` achieved before its deadline."""

    flushed: int
    """Turns committed during the drain."""
    lost: int
    """Accepted turns not known to be committed when the drain ended (0 unless the deadline hit)."""
    rejected: int = 0
    timed_out: bool = False
    elapsed_s: float = 0.0
