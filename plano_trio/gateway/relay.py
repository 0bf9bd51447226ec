"""The relay stage: one attempt's provider answer, delivered to the client.

Three shapes of answer:

* **passthrough stream** (same API both sides): each upstream read goes out
  as one downstream write, cut at the last complete SSE event so that an
  error event, if the provider breaks off, always starts on a fresh line;
  watched (for usage) but never re-encoded.  This is the hot path.
* **translated stream**: the provider's events (SSE or AWS event-stream) are
  decoded, translated one by one and framed for the client's API.
* **whole body** (JSON or an error): read with a size cap and answered in one
  piece, translated when the APIs differ; a passthrough body larger than
  `PASS_BUFFER_BYTES` is streamed on rather than held.

The listener's output filters hook in at one place per shape (`output_filter`,
None without them, so the loops above pay one attribute test): a whole body
once before it is sent, a stream's events as they go out, including the
last ones, which are filtered before the pipeline's final send because that
send runs outside the request's cancel scope.

`Relay.run` never raises (other than trio's Cancelled): everything that can
go wrong becomes a `Delivery`, either an `ApiError` to answer (nothing was
sent yet) or a tail that ends the stream with the client's in-stream error
event.  The request's cancel scope carries the listener deadline; silence
between two reads of the provider's body is bounded by the upstream pool
(`upstream_read_timeout_s`), and a client that stops reading by the server
(`client_send_timeout_s`).  When the scope ends early (deadline, client gone,
shutdown cut) the pipeline asks `interrupted()` what the client still gets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Literal, NamedTuple

import msgspec
import trio

from plano_trio.apis.http import Header
from plano_trio.apis.kind import Api
from plano_trio.gateway.asgi import send_bytes
from plano_trio.gateway.clients import ClientApi
from plano_trio.gateway.context import RequestContext
from plano_trio.gateway.errors import ApiError, unavailable
from plano_trio.gateway.events import BedrockEvents, EventSource, SseData
from plano_trio.gateway.exchange import open_response, provider_broke
from plano_trio.gateway.filter_stage import OutputFilter
from plano_trio.gateway.headers import downstream_headers
from plano_trio.gateway.observe import Result
from plano_trio.gateway.outbound import JSON_CONTENT, Outbound, with_content_type
from plano_trio.gateway.runtime import Runtime
from plano_trio.gateway.stored import native_turn_watcher
from plano_trio.gateway.upstream_errors import translate_error_body, upstream_error
from plano_trio.gateway.usage import EventUsage, UsageWatcher
from plano_trio.providers.resolve import Route
from plano_trio.retry import Failure, RetryPlan
from plano_trio.telemetry import RequestTrace, spans
from plano_trio.translate.base import Json, StreamError
from plano_trio.translate.matrix import Plan
from plano_trio.translate.sse import SseEventFramer
from plano_trio.upstream import UpstreamError, UpstreamResponse

log = logging.getLogger("plano_trio.gateway")

Finish = Callable[[], Awaitable[None]]
"""The response's last ASGI send, made by the pipeline after the request's nursery has closed."""

PASS_BUFFER_BYTES = 1024 * 1024
"""A passthrough JSON body up to this size is answered in one piece (with Content-Length); a
larger one is streamed on as it arrives, so a huge body never sits in memory."""

_SCOPE_GRACE_S = 1.0
"""Under failover, the request's scope runs this much past the latest moment the pool's own bound
on an attempt can fire (its timer fires within 1.25 times the bound), so that the pool's bound,
which the next attempt can follow, always fires first."""

_SSE_HEADERS = ((b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"))
_decode_json = msgspec.json.Decoder().decode
_TERMINAL = frozenset({"response.completed", "response.incomplete"})

Interruption = Literal["client_gone", "cut", "deadline"]


class Delivery(NamedTuple):
    """How one attempt ended, and what (if anything) the client still has to receive."""

    status: int
    result: Result
    finish: Finish | None = None
    """The last send (None: nothing more goes to the client)."""
    error: ApiError | None = None
    """Answer with this instead: the response has not started."""
    message: str | None = None
    """What went wrong, for the access log."""
    response: Json | None = None
    """The finished Responses object, for the store stage."""
    failure: Failure | None = None
    """Set when the attempt failed before anything reached the client, in a way its retry plan
    retries (only with a plan): the failover stage may then try elsewhere."""


class Relay:
    """One attempt: its request, the provider's answer, and how far the answer got."""

    def __init__(
        self,
        runtime: Runtime,
        ctx: RequestContext,
        client: ClientApi,
        route: Route,
        outbound: Outbound,
        *,
        stream: bool,
        timeout: float,
        retry: RetryPlan | None = None,
    ) -> None:
        self.runtime = runtime
        self.retry = retry
        self.extra_headers: tuple[Header, ...] = ()
        """Added to the response (the failover stage's `x-plano-model` / `x-plano-attempts`)."""
        self.ttfb_s: float | None = None
        """The TTFB threshold this attempt's head wait was cut to (failover only)."""
        self.ctx = ctx
        self.client = client
        self.route = route
        self.outbound = outbound
        self.stream = stream
        self.timeout = timeout
        self.status = 0
        """The status sent to the client; 0 until the response has started."""
        self.event_stream = False
        """The response started is an event stream (errors can still be told in band)."""
        self.first_byte: float | None = None
        self.sent_at: float | None = None
        """`perf_counter()` when the request went to the provider (None: it never did)."""
        self.upstream_status = 0
        """The provider's status (0 until its response head arrived)."""
        self.usage: UsageWatcher | None = (
            UsageWatcher()
            if client.api is Api.CHAT
            else native_turn_watcher(runtime, client.api, route) or EventUsage(client.api)
        )
        self.output_filter: OutputFilter | None = None
        """The listener's output filters, rewriting what the client receives (None: none configured)."""
        self.bytes_in = 0
        """Bytes of the provider's response body read so far."""
        self.span_id: int | None = None
        """This attempt's span when the request is traced (the provider got it as its parent)."""

    # -- the attempt --------------------------------------------------------------------------------

    async def run(self, scope: trio.CancelScope) -> Delivery:
        """Send the request and relay the answer under `scope` (the request's cancel scope)."""
        trace = self.ctx.trace
        if trace is None or self.span_id is None:
            return await self._run(scope)
        delivery: Delivery | None = None
        try:
            delivery = await self._run(scope)
            return delivery
        finally:  # this attempt's span, however it ended (a cancelled one says so)
            self._record_span(trace, self.span_id, delivery)

    def _record_span(self, trace: RequestTrace, span_id: int, delivery: Delivery | None) -> None:
        if delivery is None:
            error: str | None = "attempt cancelled"
        else:
            error = None if delivery.result == "ok" else delivery.message or delivery.result
        origin = self.route.origin
        default_port = 443 if origin.scheme == "https" else 80
        authority = origin.host if origin.port == default_port else f"{origin.host}:{origin.port}"
        spans.upstream_attempt(
            trace,
            span_id,
            self.sent_at if self.sent_at is not None else time.perf_counter(),
            scheme=origin.scheme,
            authority=authority,
            target=self.outbound.target,
            provider=self.route.provider.name,
            status=self.upstream_status,
            request_size=len(self.outbound.body),
            response_size=self.bytes_in,
            request_id=self.ctx.request_id.decode("ascii"),
            error=error,
        )

    async def _run(self, scope: trio.CancelScope) -> Delivery:
        now = trio.current_time()
        retry = self.retry
        head_timeout: float | None = None
        if retry is None:
            scope.deadline = now + self.timeout
        else:
            # Failover: the head wait is bounded by the pool (a 504 the next attempt can follow)
            # rather than by the request's scope, which must outlive this attempt; the scope stays
            # as the safety net for the rest of it.
            head_timeout = self.timeout
            if retry.ttfb_threshold_s is not None and retry.could_fail_over_slow(self.route.provider, now):
                # Proactive failover: stop waiting for a slow provider's head at the TTFB threshold,
                # but only when another attempt could take over (else a slow answer beats none).
                head_timeout = self.ttfb_s = min(self.timeout, retry.ttfb_threshold_s)
            scope.deadline = now + self.timeout * 1.25 + _SCOPE_GRACE_S
        try:
            self.sent_at = time.perf_counter()
            try:
                response = await open_response(self.runtime.pool, self.route, self.outbound, head_timeout)
            except ApiError as error:
                return self._refused(error, self._failure_of(error))
            self.upstream_status = response.status
            async with response:
                if retry is not None and response.status >= 400 and retry.retries_status(response.status):
                    return await self._retryable(response)
                if response.status == 200 and self.stream and _is_stream(response):
                    if self.outbound.plan is None:
                        return await self._pass_stream(response)
                    return await self._translate_stream(response, self.outbound.plan)
                if self.outbound.plan is None:
                    return await self._pass_whole(response)
                return await self._translate_whole(response, self.outbound.plan)
        except ApiError as error:
            return self._refused(error)
        except Exception as error:  # a bug, or a provider answer nobody foresaw: never a bare 500
            log.exception("request %s: relaying the provider's answer failed", self.ctx.request_id.decode())
            detail = f"gateway failed to relay the provider's answer ({type(error).__name__})"
            if self.status:
                return self._broken(detail, "upstream_error")
            return self._refused(provider_broke(self.route, "sent an answer the gateway could not relay"))

    async def _retryable(self, response: UpstreamResponse) -> Delivery:
        """An error status the retry plan retries: read (bounded), keep, send nothing yet."""
        status = response.status
        try:
            body = await self._read_capped(response)
        except ApiError:
            body = b""
        failure = Failure("status", status, retry_after_s=_retry_after(response.headers))
        return self._refused(upstream_error(status, body, self.route.label), failure, "upstream_error")

    def _failure_of(self, error: ApiError) -> Failure | None:
        """How the failover stage sees an exchange that got no answer: unreachable → 502 (as a
        proxy in front of the provider would answer), no head in time → timeout, or high latency
        when the bound was the TTFB threshold."""
        if self.retry is None:
            return None
        if error.status != 504:
            return Failure("status", error.status)
        if self.ttfb_s is not None:
            return Failure("high_latency", measured_ms=round(self.ttfb_s * 1000))
        return Failure("timeout")

    def interrupted(self, why: Interruption) -> Delivery:
        """What the client still gets when the request's scope ended before the relay did."""
        if why == "client_gone":
            return Delivery(self.status, "client_disconnected", message="client went away")
        if why == "cut":
            what = "the gateway is shutting down and its grace period ended"
            if self.status:
                return self._broken(what, "cut")
            return self._refused(unavailable(f"Request cut: {what}", "shutdown"))
        limit = self.timeout
        what = f"provider '{self.route.label}' did not finish within the listener timeout of {limit:g}s"
        if self.status:
            return self._broken(what, "timeout")
        return self._refused(
            ApiError(504, what[0].upper() + what[1:], type="upstream_error", code="upstream_timeout")
        )

    # -- outcomes -----------------------------------------------------------------------------------

    def _refused(
        self, error: ApiError, failure: Failure | None = None, result: Result | None = None
    ) -> Delivery:
        if self.status:  # cannot happen by construction; never send a second status line
            return self._broken(error.message, "upstream_error")
        if result is None:
            result = "upstream_error" if error.type == "upstream_error" else "error"
        if self.extra_headers:
            error = error.with_headers(self.extra_headers)
        return Delivery(error.status, result, error=error, message=error.message, failure=failure)

    def _broken(self, message: str, result: Result, error_type: str = "api_error") -> Delivery:
        """End a started stream with the client's in-stream error event (never a clean end).

        A started response that is not an event stream (a large JSON body
        relayed as it arrives) has no way to say so in band: it is left
        unfinished, and the connection closes with the body visibly incomplete.
        """
        if not self.event_stream:
            return Delivery(self.status, result, message=message)
        tail = self.client.stream_error(message, error_type)
        return Delivery(self.status, result, finish=self._end(tail), message=message)

    def _stream_broke(self, error: UpstreamError) -> Delivery:
        """The provider's stream failed mid-way: silence past the idle bound, a reset, bad framing."""
        result: Result = "timeout" if error.kind == "timeout" else "upstream_error"
        return self._broken(f"provider '{self.route.label}' stream broke off: {error}", result)

    def _end(self, tail: bytes) -> Finish:
        return partial(self.ctx.send, {"type": "http.response.body", "body": tail, "more_body": False})

    # -- progress -----------------------------------------------------------------------------------

    def _progress(self) -> None:
        """A piece of the answer arrived (the first one is the time to first byte)."""
        if self.first_byte is None:
            self.first_byte = time.perf_counter()

    async def _start(self, status: int, headers: list[Header]) -> None:
        await self.ctx.send({"type": "http.response.start", "status": status, "headers": headers})
        self.status = status

    def _headers(self, response: UpstreamResponse) -> list[Header]:
        headers = downstream_headers(response.headers, self.ctx.request_id)
        if self.extra_headers:
            headers.extend(self.extra_headers)
        return headers

    # -- whole bodies -------------------------------------------------------------------------------

    async def _read_capped(self, response: UpstreamResponse) -> bytes:
        """The whole body, or ApiError 502 past `max_upstream_body_bytes` (the socket is then closed)."""
        limit = self.runtime.config.server.max_upstream_body_bytes
        try:
            data = await response.read(limit=limit)
            self.bytes_in += len(data)
        except UpstreamError as error:
            if error.kind == "too_large":
                what = f"sent a body larger than the gateway's limit of {limit} bytes"
            else:
                what = f"response was cut off: {error}"
            raise provider_broke(self.route, what) from None
        self._progress()
        return data

    async def _translate_whole(self, response: UpstreamResponse, plan: Plan) -> Delivery:
        """A JSON (or error) body from a provider of another API: buffered, translated in one go."""
        data = await self._read_capped(response)
        status = response.status
        headers = with_content_type(self._headers(response), JSON_CONTENT)
        if status >= 400:
            data = translate_error_body(status, data, self.route.label, self.client.style)
            return await self._whole(status, headers, data, "upstream_error")
        translated = self._translate_body(data, plan)
        return await self._whole(status, headers, msgspec.json.encode(translated), "ok", translated)

    def _translate_body(self, data: bytes, plan: Plan) -> Json:
        if not data:
            raise provider_broke(self.route, "answered with an empty body")
        assert self.outbound.context is not None
        try:
            decoded = _decode_json(data)
        except msgspec.DecodeError:
            raise provider_broke(self.route, "sent a body that is not valid JSON") from None
        if not isinstance(decoded, dict):
            raise provider_broke(self.route, "sent a body that is not a JSON object")
        try:
            return plan.response(decoded, self.outbound.context)
        except (StreamError, TypeError, KeyError, ValueError, AttributeError) as error:
            raise provider_broke(
                self.route, f"sent a response that could not be translated: {error}"
            ) from None

    async def _pass_whole(self, response: UpstreamResponse) -> Delivery:
        """Same API both sides: answered in one piece when small, streamed on when large.

        With output filters the body is always held whole (up to the upstream
        body cap), so that the filters see the answer once, as one JSON.
        """
        if self.output_filter is not None:
            data = await self._read_capped(response)
        else:
            parts: list[bytes] = []
            size = 0
            try:
                async for chunk in response:
                    self._progress()
                    parts.append(chunk)
                    size += len(chunk)
                    if size > PASS_BUFFER_BYTES:
                        return await self._pass_large(response, parts, size)
            except UpstreamError as error:
                raise provider_broke(self.route, f"response was cut off: {error}") from None
            finally:
                self.bytes_in = max(self.bytes_in, size)
            data = b"".join(parts)
        status = response.status
        if status == 200 and not data:
            raise provider_broke(self.route, "answered with an empty body")
        if status == 200 and self.usage is not None:
            self.usage.observe_body(data)
        result: Result = "ok" if status < 400 else "upstream_error"
        return await self._whole(status, self._headers(response), data, result)

    async def _pass_large(self, response: UpstreamResponse, parts: list[bytes], size: int) -> Delivery:
        """Stream a large passthrough body on; past the cap, cut the connection (the body is then
        visibly incomplete to the client: chunked framing without its last chunk)."""
        limit = self.runtime.config.server.max_upstream_body_bytes
        result: Result = "ok" if response.status < 400 else "upstream_error"
        await self._start(response.status, self._headers(response))
        send = self.ctx.body_chunk_sender()
        await send(b"".join(parts))
        try:
            async for chunk in response:
                self._progress()
                size += len(chunk)
                self.bytes_in = size
                if size > limit:
                    return Delivery(
                        self.status, "upstream_error", message=f"provider body exceeded {limit} bytes"
                    )
                await send(chunk)
        except UpstreamError as error:
            return Delivery(self.status, "upstream_error", message=f"provider body was cut off: {error}")
        return Delivery(self.status, result, finish=self._end(b""))

    async def _whole(
        self, status: int, headers: list[Header], data: bytes, result: Result, response: Json | None = None
    ) -> Delivery:
        """The answer in one piece, sent by the pipeline; `response` (for the store stage) stays the
        provider's answer even when output filters rewrite what the client receives."""
        self.first_byte = self.first_byte or time.perf_counter()
        if self.output_filter is not None:
            data = await self.output_filter.whole(data)
        finish = partial(send_bytes, self.ctx.send, status, headers, data)
        return Delivery(status, result, finish=finish, response=response)

    # -- streams ------------------------------------------------------------------------------------

    async def _pass_stream(self, response: UpstreamResponse) -> Delivery:
        """Same API both sides: forward whole events as they arrive, bytes untouched."""
        limit = self.runtime.config.server.max_upstream_body_bytes
        framer = SseEventFramer(max_event_bytes=limit)
        usage = self.usage
        output = self.output_filter
        self.event_stream = True
        await self._start(response.status, self._headers(response))
        send = self.ctx.body_chunk_sender()
        received = 0
        try:
            async for chunk in response:  # the hot path: keep this loop lean
                if self.first_byte is None:
                    self.first_byte = time.perf_counter()
                received += len(chunk)
                events = framer.feed(chunk)
                if events:
                    if usage is not None:
                        usage.feed(events)
                    if output is not None:
                        events = await output.events(events)
                    await send(events)
        except UpstreamError as error:
            return self._stream_broke(error)
        except StreamError as error:
            return self._broken(error.message, "upstream_error", error.error_type)
        finally:
            self.bytes_in = received
        tail = framer.pending
        if output is not None and tail:  # filtered here: the last send runs outside the request's scope
            tail = await output.event(tail)
        return Delivery(self.status, "ok", finish=self._end(tail))

    async def _translate_stream(self, response: UpstreamResponse, plan: Plan) -> Delivery:
        context = self.outbound.context
        assert context is not None
        translator = plan.stream(context)
        frame = self.client.frame
        limit = self.runtime.config.server.max_upstream_body_bytes
        source: EventSource = (
            BedrockEvents(limit) if self.outbound.upstream is Api.BEDROCK else SseData(limit)
        )
        headers = with_content_type(self._headers(response), *_SSE_HEADERS)
        output = self.output_filter
        usage = self.usage = EventUsage(self.client.api)  # read off the events the client is sent
        observe = usage.observe
        self.event_stream = True
        await self._start(200, headers)
        send = self.ctx.body_chunk_sender()
        received = 0
        try:
            async for chunk in response:
                if self.first_byte is None:
                    self.first_byte = time.perf_counter()
                received += len(chunk)
                out = []  # one loop, no comprehensions: this runs once per token
                for item in source.feed(chunk):
                    for event in translator.feed(item):
                        observe(event)
                        out.append(frame(event))
                if out:
                    body = b"".join(out) if output is None else await output.each(out)
                    await send(body)
            source.close()
            last = translator.finish()
        except UpstreamError as error:
            return self._stream_broke(error)
        except StreamError as error:
            return self._broken(error.message, "upstream_error", error.error_type)
        finally:
            self.bytes_in = received
        for event in last:
            usage.observe(event)
        framed = [*(frame(event) for event in last), self.client.clean_end]
        tail = b"".join(framed) if output is None else await output.each(framed)  # inside the scope
        return Delivery(self.status, "ok", finish=self._end(tail), response=_final_response(last))


def _is_stream(response: UpstreamResponse) -> bool:
    for name, value in response.headers:
        if name == b"content-type":
            return value.startswith(b"text/event-stream") or value.startswith(
                b"application/vnd.amazon.eventstream"
            )
    return False


def _retry_after(headers: list[Header]) -> float | None:
    """`Retry-After` in seconds (the HTTP-date form is rare from APIs and not honoured)."""
    for name, value in headers:
        if name == b"retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return seconds if 0 <= seconds < 86400 else None
    return None


def _final_response(events: list[Json]) -> Json | None:
    """The stream's terminal `response.completed`/`response.incomplete` object (Responses clients)."""
    for event in events:
        if event.get("type") in _TERMINAL and isinstance(event.get("response"), dict):
            response: Json = event["response"]
            return response
    return None
