"""Retrieval API for stored Responses turns (OpenAI-shaped), wherever they are stored.

`GET /v1/responses/{id}`, `GET /v1/responses/{id}/input_items` and
`DELETE /v1/responses/{id}` answer for two kinds of turn:

* turns plano-trio stored itself (providers without a native Responses
  API): answered from the conversation store;
* turns a native Responses provider (OpenAI, xAI, ...) stored: the request
  is proxied to that provider (its own key, or the client's under
  `passthrough_auth`), status, headers and body (a stream too, for
  `?stream=true`) relayed as they come.  Which provider that is, the relay
  recorded when the answer went by (`NativeTurnWatcher`, into
  `Runtime.native_responses`; bounded, per process, see
  `providers.native_ids`).  An id this process never saw and the store does
  not hold goes to the config's only native upstream, if it has exactly one
  and the id looks like a provider's (letters, digits, `_.:-`).

Plano has none of these endpoints.  `GET /debug/state` shows the store's
counters (queue depth, batches, flush latency, write failures, refusals):
the numbers `/metrics` exports as `plano_trio_state_*`, as JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import msgspec

from plano_trio.apis.kind import Api
from plano_trio.gateway.asgi import send_json
from plano_trio.gateway.context import RequestContext
from plano_trio.gateway.conversation import state_unavailable
from plano_trio.gateway.errors import ApiError
from plano_trio.gateway.exchange import open_response
from plano_trio.gateway.headers import downstream_headers, upstream_headers
from plano_trio.gateway.observe import Outcome
from plano_trio.gateway.outbound import Outbound
from plano_trio.gateway.runtime import Runtime
from plano_trio.gateway.usage import UsageWatcher, usage_of_answer
from plano_trio.providers.native_ids import NativeResponseIds
from plano_trio.providers.resolve import Route
from plano_trio.state import StateUnavailableError, Turn
from plano_trio.upstream import UpstreamError

PREFIX = "/v1/responses/"
INPUT_ITEMS = "/input_items"
_PROVIDER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,256}")


def _response_id(path: str) -> str:
    return path[len(PREFIX) :].rstrip("/").removesuffix(INPUT_ITEMS)


@contextmanager
def _state_errors() -> Iterator[None]:
    try:
        yield
    except StateUnavailableError as error:
        raise state_unavailable(error) from None


def _missing(response_id: str) -> ApiError:
    return ApiError(404, f"No response found with id '{response_id}'", param="response_id", code="not_found")


_NO_STORE = ApiError(
    404, "No stored responses: this gateway has no state_storage configured", code="not_found"
)


async def _find(runtime: Runtime, response_id: str) -> Turn | Route:
    """Where the turn is: our store's `Turn`, else the native provider's route; 404 if neither."""
    recorded = runtime.native_responses.route(response_id)
    if recorded is not None:
        return recorded
    if runtime.store is not None:
        with _state_errors():
            turn = await runtime.store.get(response_id)
        if turn is not None:
            return turn
    native = _sole_native(runtime, response_id)
    if native is not None:
        return native
    raise _missing(response_id) if runtime.store is not None else _NO_STORE


def _sole_native(runtime: Runtime, response_id: str) -> Route | None:
    """Where an id nobody recorded may be: the config's only native upstream, for an id shaped like
    a provider's (OpenAI's `resp_` + hex, xAI's UUIDs); anything else is nobody's, answered here."""
    if not _PROVIDER_ID.fullmatch(response_id):
        return None
    return runtime.resolver.sole_native_responses(runtime.config)


async def _reply(ctx: RequestContext, value: Any) -> Outcome:
    await send_json(ctx.send, 200, value, ((b"x-request-id", ctx.request_id),))
    return Outcome(200)


async def get_response(runtime: Runtime, ctx: RequestContext) -> Outcome:
    response_id = _response_id(ctx.path)
    found = await _find(runtime, response_id)
    if isinstance(found, Route):
        return await _proxy(runtime, ctx, found, response_id)
    return await _reply(
        ctx, found.response or {"id": found.response_id, "object": "response", "output": found.output_items}
    )


async def get_input_items(runtime: Runtime, ctx: RequestContext) -> Outcome:
    response_id = _response_id(ctx.path)
    found = await _find(runtime, response_id)
    if isinstance(found, Route):
        return await _proxy(runtime, ctx, found, response_id)
    items = [
        dict(item, id=item.get("id") or f"{found.response_id}_in{n}") if isinstance(item, dict) else item
        for n, item in enumerate(found.input_items)
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
    recorded = runtime.native_responses.route(response_id)
    if recorded is not None:
        return await _proxy(runtime, ctx, recorded, response_id)
    if runtime.store is not None:
        with _state_errors():
            if await runtime.store.delete(response_id):
                return await _reply(ctx, {"id": response_id, "object": "response", "deleted": True})
    native = _sole_native(runtime, response_id)
    if native is not None:
        return await _proxy(runtime, ctx, native, response_id)
    raise _missing(response_id) if runtime.store is not None else _NO_STORE


async def get_stats(runtime: Runtime, ctx: RequestContext) -> Outcome:
    """Write-queue depth, batch sizes, flush latency, failures, refusals: a JSON view of the numbers
    `/metrics` exports as `plano_trio_state_*`."""
    if runtime.store is None:
        raise _NO_STORE
    return await _reply(ctx, runtime.store.stats)


# -- turns a native provider stored -----------------------------------------------------------------


def native_target(route: Route, response_id: str, suffix: str, query: bytes) -> bytes:
    """The provider's URL for one stored response: its Responses path, the id (percent-encoded, so an id
    can never add a path segment or a query), `suffix`, and the base URL's and the client's queries."""
    path, _, base_query = route.target(Api.RESPONSES).partition(b"?")
    target = path + b"/" + quote(response_id, safe="").encode() + suffix.encode()
    queries = [q for q in (base_query, query) if q]
    return target + b"?" + b"&".join(queries) if queries else target


async def _proxy(runtime: Runtime, ctx: RequestContext, route: Route, response_id: str) -> Outcome:
    """The client's GET/DELETE, sent to `route`'s provider; its answer relayed as it arrives (bounded
    by the upstream body limit and the pool's per-read timeout)."""
    suffix = INPUT_ITEMS if ctx.path.rstrip("/").endswith(INPUT_ITEMS) else ""
    target = native_target(route, response_id, suffix, ctx.query)
    outbound = Outbound(
        Api.RESPONSES, target, upstream_headers(ctx.headers, route, ctx.request_id), b"", None, None
    )
    settings = runtime.config.server
    response = await open_response(
        runtime.pool, route, outbound, settings.upstream_read_timeout_s, method=ctx.method.encode()
    )
    status = response.status
    outcome = Outcome(
        status, "ok" if status < 400 else "upstream_error", upstream=route.label, upstream_status=status
    )
    size = 0
    async with response:
        headers = downstream_headers(response.headers, ctx.request_id)
        await ctx.send({"type": "http.response.start", "status": status, "headers": headers})
        try:
            async for chunk in response:
                size += len(chunk)
                if size > settings.max_upstream_body_bytes:  # left unfinished: visibly cut off
                    return outcome._replace(result="upstream_error", error="provider body exceeded the limit")
                await ctx.send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamError as error:
            return outcome._replace(result="upstream_error", error=f"provider body was cut off: {error}")
    await ctx.send({"type": "http.response.body", "body": b"", "more_body": False})
    if ctx.method == "DELETE" and status < 300:
        runtime.native_responses.forget(response_id)
    return outcome._replace(response_bytes=size)


class _ResponseView(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None


class _EventView(msgspec.Struct):
    response: _ResponseView | None = None


_decode_response = msgspec.json.Decoder(_ResponseView).decode
_decode_event = msgspec.json.Decoder(_EventView).decode


class NativeTurnWatcher(UsageWatcher):
    """Watches a Responses answer relayed untouched from a native provider, for two things.

    Its id, recorded with the route that answered (the retrieval API then
    knows where to ask), as soon as the first event names it; and its usage
    (Responses counts `input_tokens`/`output_tokens`), for logs and metrics.
    Only events that carry a whole response object (`"response":` appears
    only as a key: inside a JSON string the quote is escaped) are decoded,
    and only for those fields, so text deltas cost one substring search.
    """

    __slots__ = ("_ids", "_recorded", "_route")

    def __init__(self, ids: NativeResponseIds, route: Route) -> None:
        super().__init__()
        self._ids = ids
        self._route = route
        self._recorded = False

    def feed(self, chunk: bytes) -> None:
        for event in self.parser.feed(chunk):
            if b'"response":' in event.data:
                try:
                    view = _decode_event(event.data).response
                except msgspec.DecodeError:
                    continue
                if view is not None:
                    self._see(view)

    def observe_body(self, data: bytes) -> None:
        try:
            self._see(_decode_response(data))
        except msgspec.DecodeError:
            return

    def _see(self, view: _ResponseView) -> None:
        if view.id and not self._recorded:
            self._ids.record(view.id, self._route)
            self._recorded = True
        usage = usage_of_answer({"usage": view.usage}) if view.usage is not None else None
        if usage is not None:
            self.usage = usage
            self.model = view.model


def native_turn_watcher(runtime: Runtime, client: Api, route: Route) -> NativeTurnWatcher | None:
    """A watcher for a Responses client's answer passed through from a native Responses provider."""
    if client is not Api.RESPONSES or route.upstream_api(client) is not Api.RESPONSES:
        return None
    return NativeTurnWatcher(runtime.native_responses, route)
