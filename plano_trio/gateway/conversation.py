"""`previous_response_id` for providers without a native Responses API.

Before the request goes upstream: the stored conversation is prepended to
this turn's input (an unknown id is 409 and nothing is sent), and a slot in
the store's write queue is reserved (a full queue is 503 + Retry-After: a
turn is refused up front, never accepted and then dropped).  When the
response is complete, the turn is stored as a delta (this turn's new input
items and its output items, exactly as they are, tool calls included);
if the upstream fails or the client goes away, the slot is released.

Only `history()` awaits the database, once, at request start; storing is a
non-blocking enqueue, so the token stream never waits on Postgres.
"""

from __future__ import annotations

import time
from typing import Any

from plano_trio.gateway.errors import ApiError, unavailable
from plano_trio.state import StateStore, StateUnavailableError, StoreFullError, Turn
from plano_trio.translate.base import Json


def input_items(value: Any) -> list[Any]:
    """A Responses `input` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    if isinstance(value, list):
        return value
    raise ApiError(400, "Invalid 'input': expected a string or a list of input items", param="input")


def state_unavailable(error: StateUnavailableError) -> ApiError:
    """503 + Retry-After: the conversation store cannot answer right now.

    The message is the store's client-safe text; where the database is and
    why it failed go to the gateway's log, never to the client.
    """
    return unavailable(f"Conversation state is unavailable ({error}); retry shortly", "state_unavailable")


class PendingTurn:
    """A turn whose slot in the write queue is reserved until it is stored or released."""

    def __init__(
        self,
        store: StateStore,
        *,
        response_id: str,
        previous: str | None,
        new_items: list[Any],
        model: str,
        provider: str,
    ) -> None:
        self.store = store
        self.response_id = response_id
        self.previous = previous
        self.new_items = new_items
        self.model = model
        self.provider = provider
        self.settled = False

    def complete(self, response: Json) -> None:
        """Store the finished turn (non-blocking)."""
        if self.settled:
            return
        self.settled = True
        output = response.get("output")
        self.store.put(
            Turn(
                response_id=self.response_id,
                previous_response_id=self.previous,
                input_items=self.new_items,
                output_items=output if isinstance(output, list) else [],
                model=self.model,
                provider=self.provider,
                created_at=time.time(),
                response=response,
            )
        )

    def abandon(self) -> None:
        """Nothing will be stored (upstream failed, client left): free the reserved slot."""
        if not self.settled:
            self.settled = True
            self.store.release()


async def prepare(
    store: StateStore, request: Json, *, response_id: str, model: str, provider: str
) -> tuple[Json, PendingTurn | None]:
    """The request to translate (history merged, id removed) and the turn to store, if any.

    Each turn's own `instructions` apply to that turn only: they are never stored.
    `store: false` turns are not stored (Plano stores them anyway).
    """
    previous = request.get("previous_response_id")
    new_items = input_items(request.get("input", []))
    merged = dict(request)
    merged.pop("previous_response_id", None)
    if previous is not None:
        if not isinstance(previous, str):
            raise ApiError(400, "'previous_response_id' must be a string", param="previous_response_id")
        try:
            history = await store.history(previous)
        except StateUnavailableError as error:
            raise state_unavailable(error) from None
        if history is None:
            raise ApiError(
                409,
                f"Conversation state not found for previous_response_id: {previous}",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        merged["input"] = [*history, *new_items]
    if request.get("store") is False:
        return merged, None
    try:
        store.admit()
    except StoreFullError as error:
        retry = max(1, round(error.retry_after_s))
        raise unavailable(
            "Conversation state store is saturated; retry shortly", "state_store_full", retry
        ) from None
    pending = PendingTurn(
        store, response_id=response_id, previous=previous, new_items=new_items, model=model, provider=provider
    )
    return merged, pending
