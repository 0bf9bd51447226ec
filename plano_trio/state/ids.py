"""Which response ids can name a stored turn: a pure check, applied before any lookup or write.

Ids reach the store from clients (`GET /v1/responses/{id}`,
`previous_response_id`) and from providers (a native Responses API names its
own responses).  Ours are `resp_` + hex.  An id that no backend could hold is
simply unknown -- a 404 or 409 like any other unknown id -- instead of a
database error: PostgreSQL rejects a NUL byte in text (which used to surface
as "state database unavailable"), a btree index entry is limited to about
2.7 kB, and a lone surrogate cannot be encoded as UTF-8 at all.
"""

from __future__ import annotations

import logging
import re

from .model import Turn

log = logging.getLogger("plano_trio.state")

MAX_ID_BYTES = 512
"""Far above any real id (OpenAI's are ~55 bytes), far below PostgreSQL's index entry limit."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""C0 controls, DEL and C1 controls: never part of an id, and NUL cannot be stored as text."""


def is_storable_id(response_id: str) -> bool:
    """True if `response_id` could name a stored turn (non-empty, bounded, printable, valid UTF-8)."""
    if not response_id or len(response_id) > MAX_ID_BYTES or _CONTROL.search(response_id):
        return False
    try:
        return len(response_id.encode("utf-8")) <= MAX_ID_BYTES
    except UnicodeEncodeError:  # a lone surrogate, e.g. from the JSON escape "\ud800"
        return False


def is_storable_turn(turn: Turn) -> bool:
    """Both ids of `turn` can be stored (a parent id that cannot be stored cannot be looked up either)."""
    previous = turn.previous_response_id
    return is_storable_id(turn.response_id) and (previous is None or is_storable_id(previous))


def log_unstorable(turn: Turn, backend: str) -> None:
    """Say (once per turn) that a completed turn was not stored; the ids are shown escaped and cut short."""
    log.error(
        "state turn not stored: its id cannot be stored",
        extra={
            "fields": {
                "backend": backend,
                "response_id": ascii(turn.response_id[:80]),
                "previous_response_id": ascii((turn.previous_response_id or "")[:80]),
            }
        },
    )
