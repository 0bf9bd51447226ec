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

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class EncodedTurn:
    """A turn plus its JSON text, encoded once in `put()`.

    Encoding up front validates the turn while the caller can still be told,
    measures its size for byte-bounded caches, and hands the writer thread
    ready-made text.  When `response["output"]` equals `output_items` (the
    normal case) the response is stored without it and rebuilt on read, so the
    output is not stored twice; `response_output_elided` records that.
    """

    turn: Turn
    input_json: str
    output_json: str
    response_json: str | None
    response_output_elided: bool
    nbytes: int
    """Size of the stored JSON text: the unit of every byte bound."""

    @property
    def history_nbytes(self) -> int:
        """Bytes this turn contributes to a rebuilt conversation (input + output items)."""
        return len(self.input_json) + len(self.output_json)


def encode_turn(turn: Turn) -> EncodedTurn:
    """Encode `turn` for storage; raises `TypeError` if it is not JSON-serializable."""
    input_json = _encoder.encode(turn.input_items).decode()
    output_json = _encoder.encode(turn.output_items).decode()
    response_json: str | None = None
    elided = False
    if turn.response is not None:
        response = turn.response
        output = response.get("output")
        if "output" in response and (output is turn.output_items or output == turn.output_items):
            response = {key: value for key, value in response.items() if key != "output"}
            elided = True
        response_json = _encoder.encode(response).decode()
    nbytes = len(input_json) + len(output_json) + (len(response_json) if response_json else 0)
    return EncodedTurn(turn, input_json, output_json, response_json, elided, nbytes)


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
