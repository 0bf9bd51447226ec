"""Conversation state for `/v1/responses`: lossless delta turns, write-behind postgres, bounded memory.

Lifecycle (structured: the store's tasks live in a nursery that
`open_state_store` owns, so they end with the block):

    settings = StateSettings.from_mapping(config["state_storage"])
    async with open_state_store(settings) as store:   # postgres: connect (retrying), migrate, start writer
        ...serve...                                    # exit: drain <= drain_timeout_s, then stop tasks

Per `/v1/responses` request (only `history()` awaits the database, at request start):

    history = await store.history(prev_id) if prev_id else []   # None -> unknown id (409)
    store.admit()                                  # StoreFullError -> 503 + Retry-After, before upstream
    try:
        ...send history + new input upstream, stream the reply...
    except BaseException:
        store.release()                            # nothing to store
        raise
    store.put(Turn(response_id, prev_id, new_input_items, response["output"], model, provider,
                   time.time(), response))         # sync, non-blocking

`store.get(id)` / `store.delete(id)` back `GET` / `DELETE /v1/responses/{id}`;
`store.stats` is a counter snapshot.  Errors: `StoreFullError` (and
`StoreClosedError` while shutting down), `StateUnavailableError` (a read could
not reach the database), `StateStartupError`, and `StateConfigError` (raised by the settings, which live in
`plano_trio.config.state_settings`).

Modules: model (types), writer (backend-agnostic write-behind queue),
memory, postgres, sql, migrations, pgconn (threads + timeouts), cache, store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plano_trio.config.state_settings import StateSettings

from .errors import (
    StateConfigError,
    StateError,
    StateStartupError,
    StateUnavailableError,
    StoreClosedError,
    StoreFullError,
)
from .memory import MemoryStore
from .model import DrainReport, StoreStats, Turn
from .store import StateStore, create_store, open_state_store

if TYPE_CHECKING:
    from .postgres import PostgresStore


def __getattr__(name: str) -> Any:
    """`PostgresStore` on demand, so importing the package does not import psycopg."""
    if name == "PostgresStore":
        from .postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DrainReport",
    "MemoryStore",
    "PostgresStore",
    "StateConfigError",
    "StateError",
    "StateSettings",
    "StateStartupError",
    "StateStore",
    "StateUnavailableError",
    "StoreClosedError",
    "StoreFullError",
    "StoreStats",
    "Turn",
    "create_store",
    "open_state_store",
]
