"""Plano's routing decision API: `POST /routing/v1/{chat/completions,messages,responses}`.

The same decision a proxied request gets (router, ranking, sessions), answered
as JSON instead of being acted on, for clients that call providers
themselves.  The answer is Plano's shape — `models` (ranked, the decided
model first; `["none"]` when no route fits), `route`, `trace_id`,
`session_id` (only with a session), `pinned`, `switched` — plus
`fallback_reason` when the router failed and the client should use its own
model (Plano answers 500 then).  Errors are Plano's bodies:
`{"error": {"code": "InvalidRequest", "message": "Invalid request",
"details": {"reason": …}}}` with 400.
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from plano_trio.gateway import trace_spans
from plano_trio.gateway.asgi import JSON_HEADERS, read_body, send_bytes
from plano_trio.gateway.clients import ClientApi
from plano_trio.gateway.context import RequestContext
from plano_trio.gateway.errors import ApiError
from plano_trio.gateway.observe import Outcome
from plano_trio.gateway.routing import NO_ROUTE
from plano_trio.gateway.runtime import Runtime

PREFIX = "/routing"


class DecisionResponse(msgspec.Struct, omit_defaults=True):
    models: list[str]
    route: str | None
    trace_id: str
    pinned: bool
    switched: bool
    session_id: str | None = None
    fallback_reason: str | None = None


class _Error(msgspec.Struct):
    code: str
    message: str
    details: dict[str, Any]


class _ErrorBody(msgspec.Struct):
    error: _Error


_encode = msgspec.json.Encoder().encode


async def decide(client: ClientApi, runtime: Runtime, ctx: RequestContext) -> Outcome:
    """Answer one decision request (the access log shows it as a normal request to this path)."""
    with runtime.admission:
        body = await read_body(ctx.receive, ctx.headers, runtime.body_limits)
        try:
            request = client.parse(body)
            decoded = client.decode_request(body)
            trace = ctx.trace
            headers = ctx.headers if trace is None else trace.propagate(ctx.headers)
            started = time.perf_counter()
            decision = await runtime.routing.decide(
                client.api, decoded, request.model or "", headers, ctx.request_id, decision_api=True
            )
            if trace is not None:
                trace_spans.decided(trace, decision, time.perf_counter() - started)
        except ApiError as error:
            if error.status >= 500:
                return await _error(ctx, error.status, "InternalServerError", "Internal server error", error)
            return await _error(ctx, 400, "InvalidRequest", "Invalid request", error)
        models = list(decision.models) or [NO_ROUTE]
        answer = DecisionResponse(
            models=models,
            route=decision.route_name,
            trace_id=ctx.trace.trace_id_hex if ctx.trace is not None else _trace_id(ctx.headers),
            session_id=decision.session.session_id if decision.session is not None else None,
            pinned=decision.pinned,
            switched=decision.switched,
            fallback_reason=decision.fallback,
        )
        await send_bytes(ctx.send, 200, [*JSON_HEADERS, (b"x-request-id", ctx.request_id)], _encode(answer))
        return Outcome(200, "ok", request.model, models[0], False, error=decision.fallback)


async def _error(ctx: RequestContext, status: int, code: str, message: str, error: ApiError) -> Outcome:
    body = _ErrorBody(_Error(code, message, {"reason": error.message}))
    await send_bytes(ctx.send, status, [*JSON_HEADERS, (b"x-request-id", ctx.request_id)], _encode(body))
    return Outcome(status, "error", error=error.message)


def _trace_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The trace id of the client's W3C `traceparent`, else a new one (32 lowercase hex)."""
    for name, value in headers:
        if name == b"traceparent":
            parts = value.split(b"-")
            if len(parts) == 4 and len(parts[1]) == 32:
                try:
                    int(parts[1], 16)
                except ValueError:
                    break
                return parts[1].decode("ascii").lower()
            break
    return os.urandom(16).hex()
