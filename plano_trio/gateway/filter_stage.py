"""The model listener's filter chains: `input_filters` after parse, `output_filters` on what the relay sends.

Input side.  The chain gets the client's request as it arrived (that API's
JSON, at that API's path: `/v1/chat/completions`, `/v1/messages` or
`/v1/responses`), each filter the previous one's output, as Plano's raw
filter chain; what comes back is the request from then on, and must parse
as the same API.  Errors reach the client in its own API's error shape with
Plano's fields inside:

* a filter that says no (HTTP 4xx, MCP `isError`) → that status, Plano's
  `FilterChainError` with `agent`, `status` and `agent_response`;
* a chain whose result is not a request of the client's API → 400, Plano's
  `InvalidRequest` ("Input filter returned invalid request: …");
* a filter that is down, slow, answers 5xx or garbage → 500, Plano's
  "Filter chain processing failed: …".

Output side.  `OutputFilter` is the relay's hook (None when the listener
has no output filters, so the hot path only tests one attribute).  What it
filters is what the client would have received, in the client's API: a
whole JSON answer once (provider errors included, as Plano filters every
byte of the answer), a stream one SSE event at a time (`sse_events`), never
an event cut by TCP as Plano's per-chunk calls allow.  A filter that fails
or says no leaves that piece as it was and is counted (`FilterClient.counts`),
as Plano: the response has already started.  MCP filters take JSON only, so
on a stream an MCP output filter always fails over to the original event.

Every call carries the client's headers with our `x-request-id`, and runs in
the caller's cancel scope.  The client's `traceparent` goes on unchanged,
unless the request is traced: then each filter call is a span of its own
(`execute_raw_filter (<id>)`, as Plano), and the filter's parent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from plano_trio.apis.http import Header
from plano_trio.filters.errors import FilterFailed, FilterRejected, model_listener_failure
from plano_trio.filters.sse_events import carries_content, split_events, terminated
from plano_trio.gateway.agent_errors import AgentError, client_error
from plano_trio.gateway.clients import ClientApi, RequestView
from plano_trio.gateway.context import RequestContext
from plano_trio.gateway.errors import ApiError
from plano_trio.telemetry import RequestTrace

if TYPE_CHECKING:  # the client exists only when filters are configured (`Runtime` imports it then)
    from plano_trio.filters.client import FilterClient

FILTER_CHAIN_ERROR = "FilterChainError"
"""Plano's name for a model-listener filter rejection (its body's `error` field)."""


def filter_headers(ctx: RequestContext) -> list[Header]:
    """The client's headers with our `x-request-id` (the client's, when it was safe, else a fresh one)."""
    return [
        *((name, value) for name, value in ctx.headers if name != b"x-request-id"),
        (b"x-request-id", ctx.request_id),
    ]


async def filter_request(
    filters: FilterClient | None,
    ids: Sequence[str],
    client: ClientApi,
    body: bytes,
    headers: list[Header],
    trace: RequestTrace | None = None,
) -> tuple[bytes, RequestView]:
    """The request after the input chain, and its view; `ApiError` in the client's shape otherwise."""
    if filters is None:  # the config loader makes this impossible; a clear error all the same
        raise ApiError(
            500, "This listener has input_filters but no filters are configured", type="server_error"
        )
    try:
        out = await filters.run_chain(ids, client.path, body, headers, trace=trace)
    except FilterRejected as error:
        raise rejected(error) from None
    except FilterFailed as error:
        raise failed(error) from None
    try:
        return out, client.parse(out)
    except ApiError as error:
        raise invalid(error) from None


def rejected(error: FilterRejected) -> AgentError:
    """A filter refused the request: its status, Plano's `FilterChainError` fields."""
    plano = client_error(error.filter_id, error.status, error.body, what="Filter").plano
    return AgentError(
        error.status,
        f"Input filter '{error.filter_id}' rejected the request (HTTP {error.status})",
        type=FILTER_CHAIN_ERROR,
        code="filter_rejected",
        plano=plano,
    )


def failed(error: FilterFailed) -> ApiError:
    """A filter could not be used: Plano's status and message, in the client's shape."""
    status, body = model_listener_failure(error)
    return ApiError(status, body.decode("utf-8", "replace"), type="server_error", code="filter_failed")


def invalid(error: ApiError) -> AgentError:
    """The chain's result is not a request of the client's API (Plano's `InvalidRequest`)."""
    reason = f"Input filter returned invalid request: {error.message}"
    return AgentError(
        400,
        reason,
        type="invalid_request_error",
        code="InvalidRequest",
        plano={"details": {"reason": reason}},
    )


class OutputFilter:
    """The listener's `output_filters` over one request's answer (shared by its attempts)."""

    __slots__ = ("_filters", "_headers", "_ids", "_path", "_trace")

    def __init__(
        self,
        filters: FilterClient,
        ids: Sequence[str],
        path: str,
        headers: list[Header],
        trace: RequestTrace | None = None,
    ) -> None:
        self._filters = filters
        self._ids = tuple(ids)
        self._path = path
        self._headers = headers
        self._trace = trace

    async def whole(self, body: bytes) -> bytes:
        """A whole (JSON) answer, once."""
        return await self._filters.filter_chunk(self._ids, self._path, body, self._headers, trace=self._trace)

    async def event(self, event: bytes) -> bytes:
        """One SSE event; the filter's reply ends on an event boundary, a failure gives `event` back."""
        if not carries_content(event):
            return event
        out = await self._filters.filter_chunk(self._ids, self._path, event, self._headers, trace=self._trace)
        return out if out is event else terminated(out)

    async def events(self, block: bytes) -> bytes:
        """A block of whole events (as the passthrough relay forwards them), each filtered by itself."""
        return await self.each(split_events(block))

    async def each(self, events: Iterable[bytes]) -> bytes:
        """Single events (as the translating relay frames them), in order."""
        return b"".join([await self.event(event) for event in events])
