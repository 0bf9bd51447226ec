"""The translate stage: the provider request one attempt sends, built from the client's request.

Passthrough (the provider speaks the client's API) keeps the client's bytes
and only rewrites `model` when it differs; a translated pair decodes the
body once and runs the pure translators of `plano_trio.translate`.  Either
way the result is plain data (`Outbound`) that the exchange stage sends.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from plano_trio.apis.http import Header
from plano_trio.apis.kind import Api
from plano_trio.apis.openai_chat import decode_top_level, encode
from plano_trio.gateway.context import RequestContext
from plano_trio.gateway.errors import ApiError
from plano_trio.gateway.headers import upstream_headers
from plano_trio.providers.resolve import Route
from plano_trio.translate.base import Json, TranslationError
from plano_trio.translate.cache_markers import CacheMarkerStrategy, inject_cache_markers, strategy_for
from plano_trio.translate.matrix import Context, Plan

_STRIPPED_KEYS = (b'"routing_preferences"',)
"""Plano-only request keys that never go upstream."""

JSON_CONTENT: Header = (b"content-type", b"application/json")


class Outbound(NamedTuple):
    """What one attempt sends to the provider, and what reading its answer needs."""

    upstream: Api
    target: bytes
    headers: list[Header]
    body: bytes
    plan: Plan | None
    """None: passthrough, the answer is relayed as it comes."""
    context: Context | None
    """Facts the response translators need (present exactly when `plan` is)."""


def passthrough(
    ctx: RequestContext, route: Route, upstream: Api, body: bytes, model: str, stream: bool
) -> Outbound:
    """The client's own bytes, `model` rewritten only when the provider calls it differently."""
    headers = upstream_headers(ctx.headers, route, ctx.request_id)
    target = route.target(upstream, stream=stream)
    return Outbound(upstream, target, headers, rewrite_body(body, model, route.model), None, None)


def translated(
    ctx: RequestContext,
    route: Route,
    upstream: Api,
    plan: Plan,
    request: Json,
    to_translate: Json,
    response_id: str | None,
    stream: bool,
) -> Outbound:
    """The provider's request, translated from `to_translate` (the client's `request` with any stored
    conversation merged in); the response translators get the client's original `request`."""
    headers = with_content_type(upstream_headers(ctx.headers, route, ctx.request_id), JSON_CONTENT)
    target = route.target(upstream, stream=stream)
    body = translate_request(plan, to_translate, upstream, route.model, stream)
    context = Context(route.model, request, include_usage(request), response_id)
    return Outbound(upstream, target, headers, body, plan, context)


def rewrite_body(body: bytes, requested: str, upstream_model: str) -> bytes:
    """Body with `model` set to the upstream id and Plano-only keys removed.

    Returns `body` itself when nothing changes, so the common case costs no
    re-encode; otherwise only the top level is decoded and untouched values
    are spliced back as raw bytes (vendor fields survive exactly).
    """
    needs_strip = any(key in body for key in _STRIPPED_KEYS)
    if requested == upstream_model and not needs_strip:
        return body
    top = decode_top_level(body)
    top["model"] = msgspec.Raw(encode(upstream_model))
    top.pop("routing_preferences", None)
    return encode(top)


def include_usage(request: Json) -> bool:
    """A Chat client gets a usage chunk only when it asked (`stream_options.include_usage`)."""
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def translate_request(plan: Plan, request: Json, upstream: Api, model: str, stream: bool) -> bytes:
    """The provider's request body for a translated pair (TranslationError → 400 naming the field)."""
    try:
        body: dict[str, Any] = plan.request(request)
    except TranslationError as error:
        raise ApiError(400, error.message, param=error.param, code="untranslatable_field") from None
    if upstream is Api.BEDROCK:  # model and streaming live in the URL
        body.pop("model", None)
        body.pop("stream", None)
    else:
        body["model"] = model
        if stream:
            body["stream"] = True
    return encode(body)


def with_content_type(headers: list[Header], *replacement: Header) -> list[Header]:
    """`headers` with content-type (and any header named in `replacement`) replaced."""
    names = {name for name, _ in replacement}
    names.add(b"content-type")
    return [h for h in headers if h[0] not in names] + list(replacement)


def with_cache_markers(outbound: Outbound, route: Route, min_prefix_tokens: int) -> Outbound:
    """The provider request with prompt-cache breakpoints (`prompt_caching.inject_cache_control`).

    Anthropic Messages upstreams get ephemeral `cache_control` breakpoints;
    Claude models behind DigitalOcean, OpenRouter or EdenAI a marked system
    text part; everyone else caches on their own and gets nothing.  Plano
    marks only requests that reach the provider untranslated; plano-trio
    also marks a translated body (a Chat or Responses client on an Anthropic
    model), which is where the savings are.  Costs a decode and an encode,
    and only when caching is on and the provider takes markers.
    """
    strategy = strategy_for(
        route.provider.provider_interface, route.model, outbound.upstream, client_api=outbound.upstream
    )
    if strategy is CacheMarkerStrategy.NONE:
        return outbound
    try:
        body = msgspec.json.decode(outbound.body)
    except msgspec.DecodeError:
        return outbound
    if not isinstance(body, dict) or not inject_cache_markers(body, strategy, min_prefix_tokens):
        return outbound
    return outbound._replace(body=encode(body))
