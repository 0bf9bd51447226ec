"""The last agent's answer, delivered to the client in the form and API it asked for.

Plano streams the last agent's bytes back verbatim, whatever the client's
API and whatever form it asked for.  Here:

* a Chat client that asked to stream gets the agent's SSE passed through in
  whole events (bytes untouched, cut only at event boundaries so an error
  event, if the agent breaks off, starts on a fresh line); a Chat client
  that did not ask to stream gets a whole completion, its bytes as the agent
  sent them;
* Messages and Responses clients get the agent's Chat answer translated to
  their API (`translate.matrix`, the same translators the model listener
  uses), streamed or whole as they asked;
* when the agent answers in the other form (a whole completion to a stream
  request, or, like Plano's demo agents, always a stream) the answer is
  converted, so every client gets what its SDK expects.

`AnswerRelay.run` never raises (other than trio's Cancelled): a failure
before the response began is an `AgentError` to answer, one after it ends
the stream with the client's in-stream error event (as the model listener's
relay does).  The caller's cancel scope carries the listener deadline and
the client watcher; `interrupted` says what the client still gets then.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

import msgspec

from plano_trio.apis.http import Header
from plano_trio.apis.kind import Api
from plano_trio.gateway.agent_call import is_event_stream
from plano_trio.gateway.agent_chat import AgentAnswerError, ChatCollector, completion_chunks
from plano_trio.gateway.agent_errors import AgentError, agent_broke, agent_deadline, agent_unreachable
from plano_trio.gateway.asgi import Send, send_bytes
from plano_trio.gateway.clients import ClientApi
from plano_trio.gateway.errors import ApiError, unavailable
from plano_trio.gateway.events import SseData, SseEvents
from plano_trio.gateway.headers import downstream_headers
from plano_trio.gateway.observe import Result
from plano_trio.gateway.outbound import include_usage
from plano_trio.gateway.relay import Delivery, Finish, Interruption
from plano_trio.translate.base import Json, StreamError, StreamTranslator
from plano_trio.translate.matrix import Context, plan_for, response_id
from plano_trio.translate.sse import DONE, SseEventFramer, encode_event
from plano_trio.upstream import UpstreamError, UpstreamResponse

log = logging.getLogger("plano_trio.agents")

_SSE: tuple[Header, ...] = ((b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"))
_JSON: tuple[Header, ...] = ((b"content-type", b"application/json"),)
_DROPPED = frozenset({b"content-type", b"content-encoding", b"cache-control", b"etag", b"last-modified"})
_decode_json = msgspec.json.Decoder().decode


class AnswerRelay:
    """The last agent's answer on its way to the client, and how far it got."""

    def __init__(
        self,
        send: Send,
        send_chunk: Callable[[bytes], Awaitable[None]],
        client: ClientApi,
        request: Json,
        model: str,
        *,
        stream: bool,
        request_id: bytes,
        extra_headers: tuple[Header, ...],
        limit: int,
        timeout_s: float,
    ) -> None:
        self.send = send
        self.send_chunk = send_chunk
        """How a streamed answer's chunks go out (`RequestContext.body_chunk_sender`)."""
        self.client = client
        self.request = request
        self.model = model
        self.stream = stream
        self.request_id = request_id
        self.extra_headers = extra_headers
        self.limit = limit
        self.timeout_s = timeout_s
        self.agent_id = ""
        self.status = 0
        """The status sent to the client; 0 until the response has started."""
        self.event_stream = False
        self.first_byte: float | None = None
        plan = plan_for(client.api, Api.CHAT)
        self.plan = plan
        self.context = Context(
            model,
            request,
            include_usage(request),
            response_id() if client.api is Api.RESPONSES else None,
        )

    # -- the answer ---------------------------------------------------------------------------------

    async def run(self, response: UpstreamResponse, agent_id: str) -> Delivery:
        """Deliver `response` (a 2xx from agent `agent_id`) to the client."""
        self.agent_id = agent_id
        try:
            async with response:
                sse = is_event_stream(response)
                headers = self._headers(response.headers)
                if self.stream and sse:
                    if self.plan is None:
                        return await self._pass_stream(response, headers)
                    return await self._translate_stream(response, headers)
                if sse:
                    return await self._stream_to_whole(response, headers)
                data = await self._read(response)
                if self.stream:
                    return await self._whole_to_stream(data, headers)
                return self._whole(data, headers)
        except AgentError as error:
            return self.refused(error)
        except UpstreamError as error:
            if self.status:
                return self._broken(f"agent '{agent_id}' stream broke off: {error}", "upstream_error")
            timeout = error.kind == "timeout"
            return self.refused(agent_unreachable(agent_id, f"answer cut off: {error}", timeout))
        except (AgentAnswerError, StreamError) as error:
            reason = error.reason if isinstance(error, AgentAnswerError) else f"sent a broken stream: {error}"
            if self.status:
                return self._broken(f"agent '{agent_id}' {reason}", "upstream_error")
            return self.refused(agent_broke(agent_id, reason))
        except Exception as error:  # a bug, or an answer nobody foresaw: never a bare 500
            log.exception("request %s: relaying agent '%s' failed", self.request_id.decode(), agent_id)
            if self.status:
                return self._broken(f"gateway failed to relay agent '{agent_id}'", "upstream_error")
            return self.refused(
                agent_broke(agent_id, f"sent an answer the gateway could not relay ({error!r})")
            )

    def interrupted(self, why: Interruption) -> Delivery:
        """What the client still gets when the request's scope ended before the answer did."""
        if why == "client_gone":
            return Delivery(self.status, "client_disconnected", message="client went away")
        if why == "cut":
            what = "the gateway is shutting down and its grace period ended"
            if self.status:
                return self._broken(what, "cut")
            return self.refused(unavailable(f"Request cut: {what}", "shutdown"))
        error = agent_deadline(self.agent_id or "?", self.timeout_s)
        if self.status:
            return self._broken(error.message, "timeout")
        return self.refused(error)

    # -- forms --------------------------------------------------------------------------------------

    async def _pass_stream(self, response: UpstreamResponse, headers: list[Header]) -> Delivery:
        """A Chat client and a streaming agent: whole events through, bytes untouched."""
        framer = SseEventFramer(max_event_bytes=self.limit)
        await self._start([*headers, *_SSE])
        send = self.send_chunk
        async for chunk in response:
            self._progress()
            events = framer.feed(chunk)
            if events:
                await send(events)
        return Delivery(self.status, "ok", finish=self._end(framer.pending))

    async def _translate_stream(self, response: UpstreamResponse, headers: list[Header]) -> Delivery:
        """A Messages or Responses client and a streaming agent: each chunk translated as it comes."""
        translator = self._translator()
        source = SseData(self.limit)  # each event's JSON, decoded by the translator into its wire model
        frame = self.client.frame
        await self._start([*headers, *_SSE])
        send = self.send_chunk
        async for chunk in response:
            self._progress()
            out = [frame(event) for item in source.feed(chunk) for event in translator.feed(item)]
            if out:
                await send(b"".join(out))
        tail = b"".join(frame(event) for event in translator.finish()) + self.client.clean_end
        return Delivery(self.status, "ok", finish=self._end(tail))

    async def _stream_to_whole(self, response: UpstreamResponse, headers: list[Header]) -> Delivery:
        """The agent streamed, the client asked for one answer: the stream folded into a completion."""
        source = SseEvents(self.limit)
        collector = ChatCollector()
        size = 0
        async for chunk in response:
            self._progress()
            size += len(chunk)
            if size > self.limit:
                raise AgentAnswerError(f"answered with more than {self.limit} bytes")
            for event in source.feed(chunk):
                collector.feed(event)
        return self._answer_json(collector.completion(self.model), headers)

    async def _whole_to_stream(self, data: bytes, headers: list[Header]) -> Delivery:
        """The agent answered whole, the client asked to stream: the answer as one short stream."""
        body = _object(data)
        chunks = completion_chunks(body, self.model, self.context.include_usage or self.plan is not None)
        if self.plan is None:
            out = b"".join(encode_event(msgspec.json.encode(chunk)) for chunk in chunks) + encode_event(DONE)
        else:
            translator = self._translator()
            events = [event for chunk in chunks for event in translator.feed(chunk)] + translator.finish()
            out = b"".join(self.client.frame(event) for event in events) + self.client.clean_end
        await self._start([*headers, *_SSE])
        return Delivery(self.status, "ok", finish=self._end(out))

    def _whole(self, data: bytes, headers: list[Header]) -> Delivery:
        body = _object(data)
        if self.plan is None:  # a Chat client: the agent's own bytes, once they read as a completion
            completion_chunks(body, self.model, False)  # validates the shape (AgentAnswerError)
            return self._deliver(data, headers)
        return self._answer_json(body, headers)

    def _answer_json(self, completion: Json, headers: list[Header]) -> Delivery:
        if self.plan is None:
            return self._deliver(msgspec.json.encode(completion), headers)
        try:
            translated = self.plan.response(completion, self.context)
        except (StreamError, TypeError, KeyError, ValueError, AttributeError) as error:
            raise AgentAnswerError(f"sent an answer that could not be translated: {error}") from None
        return self._deliver(msgspec.json.encode(translated), headers)

    def _deliver(self, data: bytes, headers: list[Header]) -> Delivery:
        self.first_byte = self.first_byte or time.perf_counter()
        return Delivery(200, "ok", finish=partial(send_bytes, self.send, 200, [*headers, *_JSON], data))

    # -- plumbing -----------------------------------------------------------------------------------

    def _translator(self) -> StreamTranslator:
        assert self.plan is not None
        return self.plan.stream(self.context)

    def _headers(self, agent: list[Header]) -> list[Header]:
        headers = [h for h in downstream_headers(agent, self.request_id) if h[0] not in _DROPPED]
        headers.extend(self.extra_headers)
        return headers

    async def _read(self, response: UpstreamResponse) -> bytes:
        try:
            data = await response.read(limit=self.limit)
        except UpstreamError as error:
            if error.kind == "too_large":
                raise AgentAnswerError(f"answered with more than {self.limit} bytes") from None
            raise
        self._progress()
        return data

    def _progress(self) -> None:
        if self.first_byte is None:
            self.first_byte = time.perf_counter()

    async def _start(self, headers: list[Header]) -> None:
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})
        self.status = 200
        self.event_stream = True

    def _end(self, tail: bytes) -> Finish:
        return partial(self.send, {"type": "http.response.body", "body": tail, "more_body": False})

    def refused(self, error: ApiError) -> Delivery:
        """Answer `error` instead of an agent's answer (with the chain's headers: which agents ran)."""
        if self.status:  # cannot happen by construction; never send a second status line
            return self._broken(error.message, "upstream_error")
        if self.extra_headers:
            error = error.with_headers(self.extra_headers)
        result: Result = (
            "upstream_error" if isinstance(error, AgentError) and error.status >= 500 else "error"
        )
        return Delivery(error.status, result, error=error, message=error.message)

    def _broken(self, message: str, result: Result) -> Delivery:
        """End a started stream with the client's in-stream error event (never a clean end)."""
        tail = self.client.stream_error(message)
        return Delivery(self.status, result, finish=self._end(tail), message=message)


def _object(data: bytes) -> Json:
    if not data.strip():
        raise AgentAnswerError("answered with an empty body")
    try:
        value = _decode_json(data)
    except msgspec.DecodeError:
        raise AgentAnswerError("answered with a body that is not JSON") from None
    if not isinstance(value, dict):
        raise AgentAnswerError("answered with JSON that is not an object")
    return value
