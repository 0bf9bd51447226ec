"""Retrieval API for locally stored Responses turns (OpenAI-shaped).

`GET /v1/responses/{id}`, `GET /v1/responses/{id}/input_items` and
`DELETE /v1/responses/{id}` answer from the conversation store, i.e. for
turns that plano-trio stored itself (providers without a native Responses
API).  Plano has no such endpoints.  `GET /debug/state` shows the store's
counters (queue depth, batches, flush latency, write failures, refusals).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from plano_trio.gateway.asgi import send_json
from plano_trio.gateway.errors import ApiError
from plano_trio.gateway.exchange import Exchange
from plano_trio.state import StateStore, StateUnavailableError, Turn

if TYPE_CHECKING:
    from plano_trio.gateway.app import ModelListenerApp

PREFIX = "/v1/responses/"


def _response_id(path: str) -> str:
    rest = path[len(PREFIX) :].rstrip("/")
    return rest.removesuffix("/input_items")


def _store(app: ModelListenerApp) -> StateStore:
    if app.runtime.store is None:
        raise ApiError(
            404, "No stored responses: this gateway has no state_storage configured", code="not_found"
        )
    return app.runtime.store


@contextmanager
def _state_errors() -> Iterator[None]:
    try:
        yield
    except StateUnavailableError as error:
        raise ApiError(503, f"Conversation state is unavailable: {error}", type="server_error") from None


def _missing(response_id: str) -> ApiError:
    return ApiError(404, f"No response found with id '{response_id}'", param="response_id", code="not_found")


async def _turn(app: ModelListenerApp, exchange: Exchange) -> Turn:
    response_id = _response_id(exchange.path)
    with _state_errors():
        turn = await _store(app).get(response_id)
    if turn is None:
        raise _missing(response_id)
    return turn


async def _reply(exchange: Exchange, value: Any) -> None:
    exchange.status = 200
    await send_json(exchange.send, 200, value, ((b"x-request-id", exchange.request_id),))


async def get_response(app: ModelListenerApp, exchange: Exchange) -> None:
    turn = await _turn(app, exchange)
    await _reply(
        exchange, turn.response or {"id": turn.response_id, "object": "response", "output": turn.output_items}
    )


async def get_input_items(app: ModelListenerApp, exchange: Exchange) -> None:
    turn = await _turn(app, exchange)
    items = [
        dict(item, id=item.get("id") or f"{turn.response_id}_in{n}") if isinstance(item, dict) else item
        for n, item in enumerate(turn.input_items)
    ]
    await _reply(
        exchange,
        {
            "object": "list",
            "data": items,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None,
            "has_more": False,
        },
    )


async def delete_response(app: ModelListenerApp, exchange: Exchange) -> None:
    response_id = _response_id(exchange.path)
    try:
        deleted = await _store(app).delete(response_id)
    except StateUnavailableError as error:
        raise ApiError(503, f"Conversation state is unavailable: {error}", type="server_error") from None
    if not deleted:
        raise ApiError(
            404, f"No response found with id '{response_id}'", param="response_id", code="not_found"
        )
    await _reply(exchange, {"id": response_id, "object": "response", "deleted": True})


async def get_stats(app: ModelListenerApp, exchange: Exchange) -> None:
    """Write-queue depth, batch sizes, flush latency, failures, refusals (until metrics land)."""
    await _reply(exchange, _store(app).stats)


Handler = Callable[["ModelListenerApp", Exchange], Awaitable[None]]
ROUTES_RESPONSE: dict[str, Handler] = {"GET": get_response, "DELETE": delete_response}
ROUTES_INPUT_ITEMS: dict[str, Handler] = {"GET": get_input_items}
