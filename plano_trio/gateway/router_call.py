"""Asking the router model which route a conversation belongs to: the one I/O step of routing.

The prompt and the reading of the reply are pure (`plano_trio.router`); this
module sends the prompt to the configured router provider through our own
upstream pool and bounds the whole exchange.  Plano answers 500 when its
router fails (its hosted router once returned 404 for weeks); here every
failure (timeout, refused connection, non-2xx, a reply that is not the
expected JSON) becomes a `RouterFailure` with a short reason, and the caller
falls back to the request's own model.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec
import trio

from plano_trio.apis.http import Header
from plano_trio.apis.kind import Api
from plano_trio.gateway.errors import ApiError
from plano_trio.gateway.headers import upstream_headers
from plano_trio.gateway.outbound import JSON_CONTENT, translate_request
from plano_trio.providers.resolve import Route
from plano_trio.router.choice import RouterReplyError, parse_router_reply, upstream_error_message
from plano_trio.translate.base import TranslationError
from plano_trio.translate.matrix import Context, Plan, plan_for
from plano_trio.upstream import UpstreamError, UpstreamPool

ROUTER_REPLY_LIMIT = 256 * 1024
"""Most bytes of a router answer read: a route list is tiny, anything near this is not one."""

_FORWARDED = (b"traceparent", b"tracestate")
"""Client headers the router call carries (trace context); nothing else of the client's goes to it."""


class RouterFailure(Exception):
    """The router gave no usable answer; `reason` is short and safe to show a client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RouterReply(NamedTuple):
    names: list[str]
    """Route names in the router's order (may be empty: no route fits)."""
    elapsed_s: float


async def ask_router(
    pool: UpstreamPool,
    route: Route,
    body: bytes,
    client_headers: list[Header],
    request_id: bytes,
    timeout_s: float,
) -> RouterReply:
    """POST the router request (`body`, a Chat request) to `route` and return the route names it chose.

    The router may be any configured provider: a Chat-speaking one gets the
    body as it is, others (Anthropic, Bedrock) get it translated and their
    answer translated back to Chat before it is read.
    """
    started = trio.current_time()
    upstream = route.upstream_api(Api.CHAT)
    plan = plan_for(Api.CHAT, upstream)
    try:
        request: dict[str, object] = msgspec.json.decode(body) if plan else {}
        if plan is not None:
            body = translate_request(plan, request, upstream, route.model, False)
        headers = upstream_headers(
            [JSON_CONTENT, *(h for h in client_headers if h[0] in _FORWARDED)], route, request_id
        )
    except ApiError as error:  # e.g. no access key for the router provider
        raise RouterFailure(f"router request could not be built: {error.message}") from None
    raw = b""
    status = 0
    with trio.move_on_after(timeout_s) as scope:
        try:
            response = await pool.request(
                route.origin, b"POST", route.target(upstream), headers, body, read_timeout=timeout_s
            )
            async with response:
                status = response.status
                raw = await response.read(limit=ROUTER_REPLY_LIMIT)
        except UpstreamError as error:
            raise RouterFailure(f"router unreachable: {error}") from None
    if scope.cancelled_caught:
        raise RouterFailure(f"router timed out after {timeout_s:g}s")
    if not 200 <= status < 300:
        raise RouterFailure(f"router answered {status}: {upstream_error_message(raw)}")
    if plan is not None:
        raw = _back_to_chat(plan, raw, route.model, request)
    try:
        names = parse_router_reply(raw)
    except RouterReplyError as error:
        raise RouterFailure(f"router reply unreadable: {error}") from None
    return RouterReply(names, trio.current_time() - started)


def _back_to_chat(plan: Plan, raw: bytes, model: str, request: dict[str, object]) -> bytes:
    """A non-Chat router's answer as a Chat completion, for the one reply parser."""
    try:
        decoded = msgspec.json.decode(raw)
        if not isinstance(decoded, dict):
            raise RouterFailure("router reply is not a JSON object")
        return msgspec.json.encode(plan.response(decoded, Context(model, request, False, None)))
    except (msgspec.DecodeError, TranslationError, KeyError, TypeError, ValueError, RecursionError) as error:
        raise RouterFailure(f"router reply unreadable: {error}") from None
