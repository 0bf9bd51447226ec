"""The `StateStore` protocol and `open_state_store`, the one way to get a running store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

import trio

from plano_trio.config.state_settings import StateSettings

from .memory import MemoryStore
from .model import DrainReport, StoreStats, Turn

if TYPE_CHECKING:
    from .postgres import PostgresStore


class StateStore(Protocol):
    """What the `/v1/responses` handler uses.  See the package docstring for the call sequence."""

    backend: str

    def admit(self) -> None:
        """Reserve a write slot before going upstream; `StoreFullError` -> 503 + Retry-After."""

    def put(self, turn: Turn) -> None:
        """Store a completed turn; sync, never awaits the database; cannot fail after `admit()`."""

    def release(self) -> None:
        """Give back the slot from `admit()` when there is nothing to store (upstream failed)."""

    async def history(self, response_id: str) -> list[Any] | None:
        """All items of the conversation ending at `response_id`, root first; None if unknown/expired."""

    async def get(self, response_id: str) -> Turn | None:
        """The stored turn (with its full `response`), or None."""

    async def delete(self, response_id: str) -> bool:
        """Delete one turn; True if it existed."""

    async def aclose(self, deadline_s: float) -> DrainReport:
        """Stop intake, flush within `deadline_s`, report; idempotent."""

    @property
    def stats(self) -> StoreStats:
        """A snapshot of the counters."""


def create_store(settings: StateSettings) -> MemoryStore | PostgresStore:
    """An unstarted store; prefer `open_state_store`, which also runs and closes it.

    psycopg is imported only here, when a postgres store is wanted: it costs
    ~120 ms of start-up and ~12 MiB of memory that a memory-state gateway
    should not pay.
    """
    if settings.type == "memory":
        return MemoryStore(settings)
    from .postgres import PostgresStore

    return PostgresStore(settings)


@asynccontextmanager
async def open_state_store(settings: StateSettings) -> AsyncIterator[StateStore]:
    """Start a store, yield it, and drain + close it on exit.

    The store's background tasks (the batch writer, the TTL cleanup) run in a
    nursery opened here, so they cannot outlive the block.  On exit -- normal,
    error or cancellation -- the queue is drained for up to
    `settings.drain_timeout_s` (shielded), then the tasks are cancelled.  Call
    `aclose()` yourself inside the block to choose another deadline or to get
    the `DrainReport`; the exit then does nothing more.

    Raises `StateStartupError` (postgres unreachable within
    `startup_timeout_s`, or migrations failed) before yielding.  A single
    exception from the block or a background task propagates as itself, not
    wrapped in an exception group.
    """
    store = create_store(settings)
    try:
        async with trio.open_nursery() as nursery:
            await store.start(nursery)
            try:
                yield store
            finally:
                with trio.CancelScope(shield=True):
                    await store.aclose(settings.drain_timeout_s)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The nursery wraps everything, even the body's own exception; a lone one is
        # unwrapped so `StateStartupError` (or the caller's error) arrives as itself.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
