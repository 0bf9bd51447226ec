"""Calling one agent: its Chat request, the exchange, and an intermediate agent's whole answer.

An agent is an OpenAI Chat endpoint the user runs.  It gets the client's
request as Chat (the conversation so far in `messages`), the client's
headers (as Plano forwards them: the agent may need the caller's
credentials) minus hop-by-hop ones, our `x-request-id`, and
`x-arch-upstream: <agent id>` as Plano sends it.  Every call goes through
the shared upstream pool under the request's cancel scope, so a client that
leaves or the listener deadline ends it at once.

The exchange is classified once, here: unreachable → 502, no answer in
time → 504, a 4xx → that status with Plano's `ClientError` body, a 5xx →
502 naming the agent; see `agent_errors` for the shapes.
"""

from __future__ import annotations

from typing import Any

import msgspec

from plano_trio.apis.http import HOP_BY_HOP, Header
from plano_trio.gateway.agent_chat import AgentAnswerError, AgentTarget, ChatCollector, completion_text
from plano_trio.gateway.agent_errors import (
    agent_broke,
    agent_server_error,
    agent_unreachable,
    client_error,
)
from plano_trio.gateway.events import SseEvents
from plano_trio.translate.base import Json, StreamError
from plano_trio.upstream import UpstreamError, UpstreamPool, UpstreamResponse

_NOT_FORWARDED = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"content-type",
    b"accept-encoding",
    b"x-request-id",
    b"x-arch-upstream",
}
ERROR_BODY_LIMIT = 256 * 1024
"""Most bytes of an agent's error body read (it is echoed to the client, clipped)."""

_decode_json = msgspec.json.Decoder().decode


def forwarded_headers(client: list[Header], request_id: bytes) -> list[Header]:
    """The client's headers as every agent and filter call carries them (before per-call ones)."""
    extra: set[bytes] = set()
    for name, value in client:
        if name == b"connection":
            extra.update(token.strip().lower() for token in value.split(b","))
    out = [(n, v) for n, v in client if n not in _NOT_FORWARDED and n not in extra]
    out.append((b"x-request-id", request_id))
    return out


def agent_headers(forwarded: list[Header], agent_id: str) -> list[Header]:
    return [
        *forwarded,
        (b"content-type", b"application/json"),
        (b"accept-encoding", b"identity"),
        (b"x-arch-upstream", agent_id.encode("utf-8", "replace")),
    ]


def agent_body(chat_request: Json, messages: list[Any], model: str) -> bytes:
    """The client's request as Chat, with this agent's view of the conversation."""
    return msgspec.json.encode({**chat_request, "model": model, "messages": messages})


async def open_agent(
    pool: UpstreamPool, agent_id: str, target: AgentTarget, headers: list[Header], body: bytes
) -> UpstreamResponse:
    """The agent's 2xx response, head received and body unread; AgentError for anything else."""
    try:
        response = await pool.request(target.origin, b"POST", target.target, headers, body)
    except UpstreamError as error:
        raise agent_unreachable(agent_id, str(error), timeout=error.kind == "timeout") from None
    if 200 <= response.status < 300:
        return response
    async with response:
        try:
            data = await response.read(limit=ERROR_BODY_LIMIT)
        except UpstreamError:
            data = b""
    if 400 <= response.status < 500:
        raise client_error(agent_id, response.status, data)
    if 500 <= response.status < 600:
        raise agent_server_error(agent_id, response.status, data)
    raise agent_broke(agent_id, f"answered with an unexpected HTTP status {response.status}")


def is_event_stream(response: UpstreamResponse) -> bool:
    for name, value in response.headers:
        if name == b"content-type":
            return value.lower().startswith(b"text/event-stream")
    return False


async def collect_text(response: UpstreamResponse, agent_id: str, limit: int) -> str:
    """An intermediate agent's whole answer as text: a Chat stream's content deltas joined, or a
    whole completion's message (Plano keeps a non-stream answer's raw body, JSON and all)."""
    async with response:
        try:
            if is_event_stream(response):
                return await _collect_stream(response, limit)
            return completion_text(_decode(await response.read(limit=limit)))
        except UpstreamError as error:
            if error.kind == "too_large":
                raise agent_broke(agent_id, f"answered with more than {limit} bytes") from None
            raise agent_unreachable(agent_id, f"answer cut off: {error}", error.kind == "timeout") from None
        except AgentAnswerError as error:
            raise agent_broke(agent_id, error.reason) from None
        except StreamError as error:
            raise agent_broke(agent_id, f"sent a broken stream: {error}") from None


async def _collect_stream(response: UpstreamResponse, limit: int) -> str:
    events = SseEvents(limit)
    collector = ChatCollector()
    size = 0
    async for chunk in response:
        size += len(chunk)
        if size > limit:
            raise AgentAnswerError(f"answered with more than {limit} bytes")
        for event in events.feed(chunk):
            collector.feed(event)
    return collector.text


def _decode(data: bytes) -> object:
    if not data.strip():
        raise AgentAnswerError("answered with an empty body")
    try:
        return _decode_json(data)
    except msgspec.DecodeError:
        raise AgentAnswerError("answered with a body that is not JSON") from None
