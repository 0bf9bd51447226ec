"""Which translators a (client API, upstream API) pair needs, assembled once.

OpenAI Chat is the pivot: a client API other than Chat is first turned into
Chat, then Chat into the provider's API, and responses come back the same
way.  Same-API pairs are absent here on purpose: they are byte passthrough
in the gateway and never decode the body.

The gateway imports translation from here and from `base` only: `plan_for`
and its `Plan`/`Context`, plus `converse_stream_event` (the edge's half of
the ConverseStream contract) and `response_id` (ids for stored Responses
turns).  What each `Plan` member may raise is `base`'s error contract:
`request` only `TranslationError`, `response` only `ProviderShapeError`,
a stream's `feed`/`finish` only `StreamError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from plano_trio.apis.kind import Api
from plano_trio.translate.base import Json, StreamTranslator, UpstreamEvent, compose
from plano_trio.translate.client_messages import (
    ChatStreamToMessages,
    chat_response_to_messages,
    messages_request_to_chat,
)
from plano_trio.translate.client_responses import (
    chat_response_to_responses,
    response_id,
    responses_request_to_chat,
)
from plano_trio.translate.client_responses_stream import ChatStreamToResponses
from plano_trio.translate.upstream_bedrock import (
    ConverseStreamToChat,
    chat_request_to_converse,
    converse_response_to_chat,
    converse_stream_event,
)
from plano_trio.translate.upstream_messages import (
    MessagesStreamToChat,
    chat_request_to_messages,
    messages_response_to_chat,
)

__all__ = ["Context", "Plan", "converse_stream_event", "pairs", "plan_for", "response_id"]


class Context(NamedTuple):
    """Per-request facts translators need beyond the body."""

    model: str
    """Bare upstream model id (Bedrock answers without one; others report their own)."""
    request: Json
    """The client's request as decoded (the Responses object echoes its fields)."""
    include_usage: bool
    """Chat clients get a usage chunk only when they asked (`stream_options.include_usage`)."""
    response_id: str | None = None


class Plan(NamedTuple):
    """Translators for one pair; `request` maps client → upstream, the others upstream → client."""

    request: Callable[[Json], Json]
    response: Callable[[Json, Context], Json]
    stream: Callable[[Context], StreamTranslator]


# --- client side: client API <-> Chat ----------------------------------------------------------------


class _ClientSide(NamedTuple):
    to_chat: Callable[[Json], Json]
    from_chat: Callable[[Json, Context], Json]
    stream_from_chat: Callable[[Context], StreamTranslator] | None


def _identity(body: Json) -> Json:
    return body


def _chat_identity(body: Json, ctx: Context) -> Json:
    return body


_CLIENTS: dict[Api, _ClientSide] = {
    Api.CHAT: _ClientSide(_identity, _chat_identity, None),
    Api.MESSAGES: _ClientSide(
        messages_request_to_chat,
        lambda body, ctx: chat_response_to_messages(body),
        lambda ctx: ChatStreamToMessages(),
    ),
    Api.RESPONSES: _ClientSide(
        responses_request_to_chat,
        lambda body, ctx: chat_response_to_responses(body, request=ctx.request, response_id=ctx.response_id),
        lambda ctx: ChatStreamToResponses(ctx.request, response_id=ctx.response_id),
    ),
}


# --- provider side: Chat <-> upstream API ------------------------------------------------------------


class _UpstreamSide(NamedTuple):
    from_chat: Callable[[Json], Json]
    to_chat: Callable[[Json, Context], Json]
    stream_to_chat: Callable[[Context, bool], StreamTranslator] | None


_UPSTREAMS: dict[Api, _UpstreamSide] = {
    Api.CHAT: _UpstreamSide(_identity, _chat_identity, None),
    Api.MESSAGES: _UpstreamSide(
        chat_request_to_messages,
        lambda body, ctx: messages_response_to_chat(body),
        lambda ctx, usage: MessagesStreamToChat(include_usage=usage),
    ),
    Api.BEDROCK: _UpstreamSide(
        chat_request_to_converse,
        lambda body, ctx: converse_response_to_chat(body, model=ctx.model),
        lambda ctx, usage: _ConverseForClient(ctx.model, usage),
    ),
}


class _ConverseForClient:
    """ConverseStreamToChat, minus the usage chunk when a Chat client did not ask for it."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self._inner = ConverseStreamToChat(model)
        self._include_usage = include_usage

    def _filter(self, chunks: list[Json]) -> list[Json]:
        if self._include_usage:
            return chunks
        return [chunk for chunk in chunks if chunk.get("choices") or "usage" not in chunk]

    def feed(self, event: UpstreamEvent) -> list[Json]:
        return self._filter(self._inner.feed(event))

    def finish(self) -> list[Json]:
        return self._filter(self._inner.finish())


def pairs() -> list[tuple[Api, Api]]:
    """Every (client, upstream) pair that is translated (a Responses upstream is passthrough only)."""
    return [(client, upstream) for client in _CLIENTS for upstream in _UPSTREAMS if client is not upstream]


def plan_for(client: Api, upstream: Api) -> Plan | None:
    """The translation plan, or None for a same-API pair (byte passthrough)."""
    if client is upstream:
        return None
    client_side = _CLIENTS[client]
    upstream_side = _UPSTREAMS[upstream]

    def request(body: Json) -> Json:
        return upstream_side.from_chat(client_side.to_chat(body))

    def response(body: Json, ctx: Context) -> Json:
        return client_side.from_chat(upstream_side.to_chat(body, ctx), ctx)

    def stream(ctx: Context) -> StreamTranslator:
        # Non-Chat clients always need usage from the pivot (message_delta, response.completed).
        usage = ctx.include_usage or client is not Api.CHAT
        to_chat = upstream_side.stream_to_chat(ctx, usage) if upstream_side.stream_to_chat else None
        from_chat = client_side.stream_from_chat(ctx) if client_side.stream_from_chat else None
        if to_chat is None:
            assert from_chat is not None  # both sides Chat would be a same-API pair
            return from_chat
        return to_chat if from_chat is None else compose(to_chat, from_chat)

    return Plan(request, response, stream)
