"""Retrieval API for locally stored Responses turns (OpenAI-shaped).

`GET /v1/responses/{id}`, `GET /v1/responses/{id}/input_items` and
`DELETE /v1/responses/{id}` answer from the conversation store, i.e. for
turns that plano-trio stored itself (providers without a native Responses
API).  Plano has no such endpoints.  `GET /debug/state` shows the store's
counters (queue depth, batches, flush latency, write failures, refusals):
the numbers `/metrics` exports as `plano_trio_state_*`, as JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from plano_trio.gateway.asgi import send_json
from plano_trio.gateway.context import RequestContext
from plano_trio.gateway.conversation import state_unavailable
from plano_trio.gateway.errors import ApiError
from plano_trio.gateway.observe import Outcome
from plano_trio.gateway.runtime import Runtime
from plano_trio.state import StateStore, StateUnavailableError, Turn

PREFIX = "/v1/responses/"


def _response_id(path: str) -> str:
    return path[len(PREFIX) :].rstrip("/").removesuffix("/input_items")


def _store(runtime: Runtime) -> StateStore:
    if runtime.store is None:
        raise ApiError(
            404, "No stored responses: this gateway has no state_storage configured", code="not_found"
        )
    return runtime.store


@contextmanager
def _state_errors() -> Iterator[None]:
    try:
        yield
    except StateUnavailableError as error:
        raise state_unavailable(error) from None


def _missing(response_id: str) -> ApiError:
    return ApiError(404, f"No response found with id '{response_id}'", param="response_id", code="not_found")


async def _turn(runtime: Runtime, ctx: RequestContext) -> Turn:
    response_id = _response_id(ctx.path)
    with _state_errors():
        turn = await _store(runtime).get(response_id)
    if turn is None:
        raise _missing(response_id)
    return turn


async def _reply(ctx: RequestContext, value: Any) -> Outcome:
    await send_json(ctx.send, 200, value, ((b"x-request-id", ctx.request_id),))
    return Outcome(200)


async def get_response(runtime: Runtime, ctx: RequestContext) -> Outcome:
    turn = await _turn(runtime, ctx)
    return await _reply(
        ctx, turn.response or {"id": turn.response_id, "object": "response", "output": turn.output_items}
    )


async def get_input_items(runtime: Runtime, ctx: RequestContext) -> Outcome:
    turn = await _turn(runtime, ctx)
    items = [
        dict(item, id=item.get("id") or f"{turn.response_id}_in{n}") if isinstance(item, dict) else item
        for n, item in enumerate(turn.input_items)
    ]
    return await _reply(
        ctx,
        {
            "object": "list",
            "data": items,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None,
            "has_more": False,
        },
    )


async def delete_response(runtime: Runtime, ctx: RequestContext) -> Outcome:
    response_id = _response_id(ctx.path)
    with _state_errors():
        deleted = await _store(runtime).delete(response_id)
    if not deleted:
        raise _missing(response_id)
    return await _reply(ctx, {"id": response_id, "object": "response", "deleted": True})


async def get_stats(runtime: Runtime, ctx: RequestContext) -> Outcome:
    """Write-queue depth, batch sizes, flush latency, failures, refusals: a JSON view of the numbers
    `/metrics` exports as `plano_trio_state_*`."""
    return await _reply(ctx, _store(runtime).stats)
