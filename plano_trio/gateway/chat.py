"""`POST /v1/chat/completions` to OpenAI-compatible providers.

The hot path.  The request body is decoded once into a small typed view;
if the model name needs no rewrite, the client's bytes go upstream as they
are.  The response is relayed one downstream write per upstream read,
observed (not re-encoded) on the way.  Each request runs in its own nursery
with a watcher on the client connection: when the client goes away the
nursery is cancelled and the upstream connection is closed with it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial

import msgspec
import trio

from plano_trio.apis.openai_chat import decode_chat_request, decode_top_level, encode
from plano_trio.gateway.errors import ApiError
from plano_trio.gateway.exchange import Exchange
from plano_trio.gateway.headers import downstream_headers, upstream_headers
from plano_trio.gateway.observe import ChatStreamObserver
from plano_trio.gateway.runtime import Runtime
from plano_trio.providers.resolve import Route, RouteError
from plano_trio.server.asgi import send_bytes, wait_for_disconnect
from plano_trio.translate.sse import encode_event
from plano_trio.upstream import UpstreamError, UpstreamResponse

Finish = Callable[[], Awaitable[None]]
"""The response's final ASGI send, run after the request's nursery has closed."""

_STRIPPED_KEYS = (b'"routing_preferences"',)


def parse_chat_request(body: bytes) -> tuple[str, bool]:
    """(model, stream) of a chat request, or ApiError(400) saying what is wrong."""
    if not body.strip():
        raise ApiError(400, "Request body is empty; expected a JSON chat completion request")
    try:
        view = decode_chat_request(body)
    except msgspec.ValidationError as error:
        raise ApiError(400, f"Invalid chat completion request: {error}") from None
    except msgspec.DecodeError as error:
        raise ApiError(400, f"Request body is not valid JSON: {error}") from None
    if view.messages is msgspec.UNSET:
        raise ApiError(
            400, "Missing required parameter: 'messages' (this is /v1/chat/completions)", param="messages"
        )
    if not view.model:
        raise ApiError(400, "Missing required parameter: 'model'", param="model")
    return view.model, bool(view.stream)


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
            400,
            f"Model '{model}' not found in configured providers",
            param="model",
            code="model_not_found",
        )
    return route


async def chat_completions(runtime: Runtime, exchange: Exchange, body: bytes, timeout: float) -> None:
    model, stream = parse_chat_request(body)
    exchange.model = model
    exchange.stream = stream
    route = resolve(runtime, model)
    exchange.route = route.label
    headers = upstream_headers(exchange.headers, route, exchange.request_id)
    upstream_body = rewrite_body(body, model, route.model)

    failure: ApiError | None = None
    finish: Finish | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_client, exchange, nursery.cancel_scope)
        try:
            finish = await _relay(runtime, exchange, route, headers, upstream_body, timeout)
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


async def _relay(
    runtime: Runtime,
    exchange: Exchange,
    route: Route,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    timeout: float,
) -> Finish:
    deadline = trio.current_time() + timeout
    try:
        with trio.fail_at(deadline):
            response = await runtime.pool.request(route.origin, b"POST", route.chat_target, headers, body)
    except trio.TooSlowError:
        raise ApiError(
            504,
            f"Provider '{route.label}' did not answer within {timeout:g}s",
            type="upstream_error",
            code="upstream_timeout",
        ) from None
    except UpstreamError as error:
        status = 504 if error.kind == "timeout" else 502
        raise ApiError(
            status,
            f"Provider '{route.label}' could not be reached: {error}",
            type="upstream_error",
            code="upstream_unreachable",
        ) from None
    async with response:
        if response.status == 200 and _is_event_stream(response):
            return await _relay_stream(exchange, route, response, deadline)
        return await _relay_whole(exchange, route, response, deadline)


def _is_event_stream(response: UpstreamResponse) -> bool:
    for name, value in response.headers:
        if name == b"content-type":
            return value.startswith(b"text/event-stream")
    return False


async def _relay_whole(
    exchange: Exchange, route: Route, response: UpstreamResponse, deadline: float
) -> Finish:
    """Buffer a JSON (or error) response; it is small and needs no incremental relay."""
    try:
        with trio.fail_at(deadline):
            data = await response.read()
    except (UpstreamError, trio.TooSlowError) as error:
        raise ApiError(
            502,
            f"Provider '{route.label}' response was cut off: {error}",
            type="upstream_error",
            code="upstream_incomplete",
        ) from None
    if response.status == 200:
        observer = ChatStreamObserver()
        observer.observe_body(data)
        exchange.usage = observer.usage
    exchange.status = response.status
    exchange.first_byte = time.perf_counter()
    if response.status >= 400:
        exchange.outcome = "upstream_error"
    headers = downstream_headers(response.headers, exchange.request_id)
    return partial(send_bytes, exchange.send, response.status, headers, data)


async def _relay_stream(
    exchange: Exchange, route: Route, response: UpstreamResponse, deadline: float
) -> Finish:
    """Forward each upstream read as one downstream write; end with an error event if it breaks."""
    send = exchange.send
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": downstream_headers(response.headers, exchange.request_id),
        }
    )
    exchange.status = response.status
    observer = ChatStreamObserver()
    failure: str | None = None
    try:
        with trio.fail_at(deadline):
            async for chunk in response:
                if exchange.first_byte is None:
                    exchange.first_byte = time.perf_counter()
                observer.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except UpstreamError as error:
        failure = f"provider '{route.label}' stream broke off: {error}"
    except trio.TooSlowError:
        failure = f"provider '{route.label}' stream exceeded the listener timeout"
    exchange.usage = observer.usage
    tail = b""
    if failure is not None:
        exchange.outcome = "upstream_error"
        exchange.error = failure
        tail = encode_event(ApiError(502, failure, type="upstream_error", code="stream_interrupted").body())
    return partial(send, {"type": "http.response.body", "body": tail, "more_body": False})
