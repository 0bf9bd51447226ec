"""The LLM endpoints (`/v1/chat/completions`, `/v1/messages`, `/v1/responses`).

One flow for the three client APIs:

* **passthrough** (the provider speaks the client's API): the body's bytes go
  upstream as they are (only `model` is rewritten, and only if it differs),
  and the response is relayed one downstream write per upstream read, watched
  but never re-encoded.  This is the hot path.
* **translated**: the body is decoded once, run through the pure translators
  of `plano_trio.translate.matrix`, and the provider's answer (JSON, SSE or
  AWS event-stream) is decoded incrementally, translated event by event and
  framed for the client.

Each request runs in its own nursery with a watcher on the client
connection: a client that goes away cancels the nursery, and with it the
upstream call, whose connection is then closed rather than reused.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import msgspec
import trio

from plano_trio.apis.kind import Api
from plano_trio.apis.openai_chat import decode_top_level, encode
from plano_trio.gateway import conversation
from plano_trio.gateway.asgi import Header, send_bytes, wait_for_disconnect
from plano_trio.gateway.clients import ClientApi
from plano_trio.gateway.conversation import PendingTurn
from plano_trio.gateway.errors import ApiError
from plano_trio.gateway.exchange import Exchange
from plano_trio.gateway.headers import downstream_headers, upstream_headers
from plano_trio.gateway.observe import ChatStreamObserver
from plano_trio.gateway.runtime import Runtime
from plano_trio.gateway.upstream_errors import translate_error_body
from plano_trio.providers.resolve import Route, RouteError
from plano_trio.translate.base import Json, StreamError, TranslationError
from plano_trio.translate.bedrock import converse_stream_event
from plano_trio.translate.eventstream import EventStreamDecoder, EventStreamError
from plano_trio.translate.matrix import Context, Plan, plan_for
from plano_trio.translate.responses_to_chat import response_id
from plano_trio.translate.sse import DONE, SseParser
from plano_trio.upstream import UpstreamError, UpstreamResponse

Finish = Callable[[], Awaitable[None]]
"""The response's final ASGI send, run after the request's nursery has closed."""

_STRIPPED_KEYS = (b'"routing_preferences"',)
_JSON = (b"content-type", b"application/json")
_SSE = ((b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"))
_decode_json = msgspec.json.Decoder().decode
_TERMINAL = frozenset({"response.completed", "response.incomplete"})


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


def resolve(runtime: Runtime, model: str) -> Route:
    try:
        route = runtime.resolver.resolve(model)
    except RouteError as error:
        raise ApiError(
            500, f"Provider for model '{model}' is misconfigured: {error}", type="server_error"
        ) from None
    if route is None:
        raise ApiError(
            400, f"Model '{model}' not found in configured providers", param="model", code="model_not_found"
        )
    return route


def _include_usage(request: Json) -> bool:
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def translate_request(plan: Plan, decoded: Json, upstream: Api, model: str, stream: bool) -> bytes:
    """The provider's request body for a translated pair (TranslationError → 400)."""
    try:
        body = plan.request(decoded)
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


async def handle(
    client: ClientApi, runtime: Runtime, exchange: Exchange, body: bytes, timeout: float
) -> None:
    view = client.parse(body)
    model = view.model or ""
    stream = bool(view.stream)
    exchange.model = model
    exchange.stream = stream
    route = resolve(runtime, model)
    exchange.route = route.label
    upstream = route.upstream_api(client.api)
    headers = upstream_headers(exchange.headers, route, exchange.request_id)
    plan = plan_for(client.api, upstream)
    ctx: Context | None = None
    pending: PendingTurn | None = None
    try:
        if plan is None:
            upstream_body = rewrite_body(body, model, route.model)
        else:
            decoded = _decode_json(body)  # an object: `client.parse` checked its shape
            to_translate = decoded
            rid: str | None = None
            if client.api is Api.RESPONSES and runtime.store is not None:
                rid = response_id()  # known up front: it is the key the turn is stored under
                to_translate, pending = await conversation.prepare(
                    runtime.store, decoded, response_id=rid, model=model, provider=route.label
                )
            ctx = Context(route.model, decoded, _include_usage(decoded), rid)
            upstream_body = translate_request(plan, to_translate, upstream, route.model, stream)
            headers = _with_content_type(headers, _JSON)
        relay = _Relay(client, runtime, exchange, route, upstream, plan, ctx, stream, pending)
        target = route.target(upstream, stream=stream)
        await _exchange(relay, exchange, target, headers, upstream_body, timeout)
    finally:
        if pending is not None:
            pending.abandon()  # frees the reserved queue slot; a no-op once the turn was stored


async def _exchange(
    relay: _Relay, exchange: Exchange, target: bytes, headers: list[Header], body: bytes, timeout: float
) -> None:
    """Run the upstream exchange in the request's own nursery, next to the client watcher."""
    failure: ApiError | None = None
    finish: Finish | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_client, exchange, nursery.cancel_scope)
        try:
            finish = await relay.run(target, headers, body, timeout)
        except ApiError as error:
            failure = error  # raised outside the nursery, so it is not wrapped in an ExceptionGroup
        finally:
            nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    if finish is not None:  # None: the client went away and the exchange was cancelled
        # The response's last message is sent outside the request's cancel scope: completing
        # it makes hypercorn recycle the keep-alive connection, which must not be cancelled.
        await finish()


async def _watch_client(exchange: Exchange, scope: trio.CancelScope) -> None:
    """Cancel the request (and so its upstream call) when the client goes away."""
    await wait_for_disconnect(exchange.receive)
    exchange.outcome = "client_disconnected"
    scope.cancel()


def _content_type(response: UpstreamResponse) -> bytes:
    for name, value in response.headers:
        if name == b"content-type":
            return value
    return b""


class _Relay:
    """One upstream exchange and how its answer reaches the client."""

    def __init__(
        self,
        client: ClientApi,
        runtime: Runtime,
        exchange: Exchange,
        route: Route,
        upstream: Api,
        plan: Plan | None,
        ctx: Context | None,
        stream: bool,
        pending: PendingTurn | None = None,
    ) -> None:
        self.pending = pending
        self.client = client
        self.runtime = runtime
        self.exchange = exchange
        self.route = route
        self.upstream = upstream
        self.plan = plan
        self.ctx = ctx
        self.stream = stream
        self.deadline = 0.0

    async def run(self, target: bytes, headers: list[Header], body: bytes, timeout: float) -> Finish:
        route = self.route
        self.deadline = trio.current_time() + timeout
        try:
            with trio.fail_at(self.deadline):
                response = await self.runtime.pool.request(route.origin, b"POST", target, headers, body)
        except trio.TooSlowError:
            raise ApiError(
                504,
                f"Provider '{route.label}' did not answer within {timeout:g}s",
                type="upstream_error",
                code="upstream_timeout",
            ) from None
        except UpstreamError as error:
            raise ApiError(
                504 if error.kind == "timeout" else 502,
                f"Provider '{route.label}' could not be reached: {error}",
                type="upstream_error",
                code="upstream_unreachable",
            ) from None
        async with response:
            if response.status == 200 and self.stream and self._is_stream(response):
                if self.plan is None:
                    return await self._pass_stream(response)
                return await self._translate_stream(response)
            return await self._whole(response)

    def _is_stream(self, response: UpstreamResponse) -> bool:
        kind = _content_type(response)
        return kind.startswith(b"text/event-stream") or kind.startswith(b"application/vnd.amazon.eventstream")

    # -- whole bodies ---------------------------------------------------------------------------------

    async def _whole(self, response: UpstreamResponse) -> Finish:
        """A JSON (or error) body: small, buffered, translated in one go when needed."""
        exchange = self.exchange
        try:
            with trio.fail_at(self.deadline):
                data = await response.read()
        except (UpstreamError, trio.TooSlowError) as error:
            raise ApiError(
                502,
                f"Provider '{self.route.label}' response was cut off: {error}",
                type="upstream_error",
                code="upstream_incomplete",
            ) from None
        status = response.status
        headers = downstream_headers(response.headers, exchange.request_id)
        if status >= 400:
            exchange.outcome = "upstream_error"
            if self.plan is not None:
                data = translate_error_body(status, data, self.route.label, self.client.style)
                headers = _with_content_type(headers, _JSON)
        elif self.plan is not None and self.ctx is not None:
            translated = self._translate_whole(data, self.plan, self.ctx)
            if self.pending is not None:
                self.pending.complete(translated)
            data = encode(translated)
            headers = _with_content_type(headers, _JSON)
        if status == 200 and self.client.api is Api.CHAT:
            observer = ChatStreamObserver()
            observer.observe_body(data)
            exchange.usage = observer.usage
        exchange.status = status  # only now: a translation failure above is still answered as a 502
        exchange.first_byte = time.perf_counter()
        return partial(send_bytes, exchange.send, status, headers, data)

    def _translate_whole(self, data: bytes, plan: Plan, ctx: Context) -> Json:
        try:
            decoded = _decode_json(data)
            if not isinstance(decoded, dict):
                raise TypeError("not a JSON object")
            return plan.response(decoded, ctx)
        except (msgspec.DecodeError, TypeError, KeyError, ValueError) as error:
            raise ApiError(
                502,
                f"Provider '{self.route.label}' sent a response that could not be translated: {error}",
                type="upstream_error",
                code="upstream_malformed",
            ) from None

    # -- streams --------------------------------------------------------------------------------------

    async def _start(self, status: int, headers: list[Header]) -> None:
        await self.exchange.send({"type": "http.response.start", "status": status, "headers": headers})
        self.exchange.status = status

    @contextmanager
    def _streaming(self) -> Iterator[None]:
        """The listener deadline and upstream failures, as StreamError, around a relay loop.

        (A context manager, not an async generator: trio forbids yielding out of a cancel scope.)
        """
        try:
            with trio.fail_at(self.deadline):
                yield
        except UpstreamError as error:
            raise StreamError(f"provider '{self.route.label}' stream broke off: {error}") from None
        except trio.TooSlowError:
            raise StreamError(f"provider '{self.route.label}' stream exceeded the listener timeout") from None

    def _first_byte(self) -> None:
        if self.exchange.first_byte is None:
            self.exchange.first_byte = time.perf_counter()

    def _fail(self, error: StreamError) -> Finish:
        self.exchange.outcome = "upstream_error"
        self.exchange.error = error.message
        return self._end(self.client.stream_error(error.message, error.error_type))

    def _end(self, tail: bytes) -> Finish:
        return partial(self.exchange.send, {"type": "http.response.body", "body": tail, "more_body": False})

    async def _pass_stream(self, response: UpstreamResponse) -> Finish:
        """Same API both sides: forward each upstream read as one downstream write."""
        send = self.exchange.send
        await self._start(response.status, downstream_headers(response.headers, self.exchange.request_id))
        observer = ChatStreamObserver() if self.client.api is Api.CHAT else None
        try:
            with self._streaming():
                async for chunk in response:
                    self._first_byte()
                    if observer is not None:
                        observer.feed(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except StreamError as error:
            return self._fail(error)
        finally:
            if observer is not None:
                self.exchange.usage = observer.usage
        return self._end(b"")

    async def _translate_stream(self, response: UpstreamResponse) -> Finish:
        assert self.plan is not None and self.ctx is not None
        translator = self.plan.stream(self.ctx)
        frame = self.client.frame
        send = self.exchange.send
        headers = _with_content_type(downstream_headers(response.headers, self.exchange.request_id), *_SSE)
        await self._start(200, headers)
        events = _BedrockEvents() if self.upstream is Api.BEDROCK else _SseEvents()
        try:
            with self._streaming():
                async for chunk in response:
                    self._first_byte()
                    out = [frame(event) for item in events.feed(chunk) for event in translator.feed(item)]
                    if out:
                        await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
            events.close()
            last = translator.finish()
            if self.pending is not None:
                _store_final(last, self.pending)
            tail = b"".join(frame(event) for event in last)
        except StreamError as error:
            return self._fail(error)
        return self._end(tail + self.client.clean_end)


def _store_final(events: list[Json], pending: PendingTurn) -> None:
    """Store the turn from the stream's terminal `response.completed`/`response.incomplete` event."""
    for event in events:
        if event.get("type") in _TERMINAL and isinstance(event.get("response"), dict):
            pending.complete(event["response"])


def _with_content_type(headers: list[Header], *replacement: Header) -> list[Header]:
    names = {name for name, _ in replacement}
    names.add(b"content-type")
    return [h for h in headers if h[0] not in names] + list(replacement)


class _SseEvents:
    """Upstream SSE → decoded JSON events; `[DONE]` ends the stream."""

    def __init__(self) -> None:
        self.parser = SseParser()
        self.done = False

    def feed(self, chunk: bytes) -> list[Json]:
        out: list[Json] = []
        if self.done:  # read on to the end of the body so the connection can be reused
            return out
        for event in self.parser.feed(chunk):
            if event.data == DONE:
                self.done = True
                break
            if not event.data:
                continue
            try:
                value: Any = _decode_json(event.data)
            except msgspec.DecodeError:
                raise StreamError("provider sent a stream event that is not valid JSON") from None
            if isinstance(value, dict):
                out.append(value)
        return out

    def close(self) -> None:
        """Nothing to check: a missing `[DONE]` is judged by the translator's own envelope."""


class _BedrockEvents:
    """Upstream AWS event-stream frames → the dicts `ConverseStreamToChat` consumes."""

    def __init__(self) -> None:
        self.decoder = EventStreamDecoder()

    def feed(self, chunk: bytes) -> list[Json]:
        try:
            return [converse_stream_event(message) for message in self.decoder.feed(chunk)]
        except EventStreamError as error:
            raise StreamError(f"provider sent a malformed event-stream: {error}") from None

    def close(self) -> None:
        try:
            self.decoder.finish()
        except EventStreamError as error:
            raise StreamError(f"provider event-stream ended mid-frame: {error}") from None
