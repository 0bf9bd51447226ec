"""The ASGI application of a model listener: one route table, and the error edge.

Every request gets a `RequestContext` (safe request id, timing) and exactly
one access-log line, from the `Outcome` its handler returns.  Handlers raise
`ApiError` for anything the client did wrong or the gateway cannot do; the
edge turns it into the JSON the client's SDK parses, and answers an
unexpected exception (a bug) as a 500 in the same shape, with the traceback
in the log, so a bad request never becomes a hang or a dropped connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple

import trio

from plano_trio.apis.http import Header
from plano_trio.config.schema import Listener
from plano_trio.gateway import clients, decision_api, pipeline, signals_stage, stored, trace_spans
from plano_trio.gateway.asgi import (
    JSON_HEADERS,
    BodyLimits,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    carries_body,
    lifespan,
    read_body,
    send_bytes,
    send_json,
)
from plano_trio.gateway.context import RequestContext, request_id_from
from plano_trio.gateway.errors import ApiError, ErrorStyle, head_too_large, method_not_allowed, not_found
from plano_trio.gateway.observe import Outcome, observe, started
from plano_trio.gateway.runtime import Runtime
from plano_trio.metrics.labels import ListenerKind

log = logging.getLogger("plano_trio.gateway")

Handler = Callable[[Runtime, RequestContext], Awaitable[Outcome]]
Methods = Mapping[str, Handler]

MAX_HEADER_BYTES = 16 * 1024
"""A request target (path and query) and headers (names, values and their separators) past this size
are refused with 431, however the client's writes were split (the HTTP parser's own bound only sees
incomplete heads: a whole head that arrives in one read is parsed whatever its size)."""

_CORS_HEADERS = (
    (b"allow", b"GET, OPTIONS"),
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-headers", b"Authorization, Content-Type"),
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
)


class Prefixed(NamedTuple):
    """Paths `prefix` + one id segment + `suffix` (e.g. `/v1/responses/{id}/input_items`)."""

    prefix: str
    suffix: str
    methods: Methods


class RouteTable:
    """Every path the listener serves: exact paths first, then id-carrying prefixes."""

    def __init__(self, exact: dict[str, Methods], prefixed: tuple[Prefixed, ...]) -> None:
        self.exact = exact
        self.prefixed = prefixed

    def find(self, method: str, path: str) -> tuple[Handler, ErrorStyle]:
        methods = self.exact.get(path.rstrip("/") or "/")
        if methods is None:
            methods = self._by_prefix(path)
        if methods is None:
            raise not_found(method, path)
        handler = methods.get(method)
        if handler is None:
            raise method_not_allowed(method, path, ", ".join(methods))
        return handler, clients.error_style(path)

    def _by_prefix(self, path: str) -> Methods | None:
        for route in self.prefixed:
            if path.startswith(route.prefix) and path.endswith(route.suffix):
                middle = path[len(route.prefix) : len(path) - len(route.suffix)].rstrip("/")
                if middle and "/" not in middle:
                    return route.methods
        return None


def _connection_of(scope: Scope) -> tuple[object, object] | None:
    """The request's connection as the server edge names it: (client, server) addresses, which hypercorn
    puts in the scope as tuples; None without a client address (a Unix socket, a test's scope)."""
    client = scope.get("client")
    return None if client is None else (client, scope.get("server"))


def _decision(client: clients.ClientApi) -> Handler:
    async def handler(runtime: Runtime, ctx: RequestContext) -> Outcome:
        return await decision_api.decide(client, runtime, ctx)

    return handler


def _llm(client: clients.ClientApi, listener: pipeline.LlmListener) -> Handler:
    async def handler(runtime: Runtime, ctx: RequestContext) -> Outcome:
        return await pipeline.handle(client, runtime, ctx, listener)

    return handler


async def _healthz(runtime: Runtime, ctx: RequestContext) -> Outcome:
    await send_bytes(ctx.send, 200, [(b"content-type", b"text/plain")], b"")
    return Outcome(200)


async def _models(runtime: Runtime, ctx: RequestContext) -> Outcome:
    headers = [*JSON_HEADERS, (b"access-control-allow-origin", b"*")]
    await send_bytes(ctx.send, 200, headers, runtime.access.models_body(ctx, runtime.models_body))
    return Outcome(200)


async def _cors(runtime: Runtime, ctx: RequestContext) -> Outcome:
    await ctx.send({"type": "http.response.start", "status": 204, "headers": list(_CORS_HEADERS)})
    await ctx.send({"type": "http.response.body", "body": b""})
    return Outcome(204)


async def _failover_counts(runtime: Runtime, ctx: RequestContext) -> Outcome:
    """Failover events since start (JSON view of `plano_trio_failover_events_total`)."""
    await send_json(ctx.send, 200, dict(runtime.failover_counts))
    return Outcome(200)


async def _filter_counts(runtime: Runtime, ctx: RequestContext) -> Outcome:
    """Filter client counters: output filter failures, MCP handshakes (until metrics export them)."""
    await send_json(ctx.send, 200, dict(runtime.filters.counts) if runtime.filters is not None else {})
    return Outcome(200)


async def _tracing_stats(runtime: Runtime, ctx: RequestContext) -> Outcome:
    """Spans queued, dropped (queue full), exported and failed since start (`{}`: tracing is off)."""
    await send_json(ctx.send, 200, runtime.tracing.stats() if runtime.tracing is not None else {})
    return Outcome(200)


async def _access_stats(runtime: Runtime, ctx: RequestContext) -> Outcome:
    """Inbound-key refusals and rate-limit counters since start."""
    await send_json(ctx.send, 200, runtime.access.stats())
    return Outcome(200)


async def _routing_stats(runtime: Runtime, ctx: RequestContext) -> Outcome:
    """Routing decisions, session cache and metrics feed counters (the numbers `/metrics` exports)."""
    await send_json(ctx.send, 200, runtime.routing.stats())
    return Outcome(200)


def route_table(listener: Listener) -> RouteTable:
    llm = pipeline.llm_listener(
        listener.timeout_s, listener.max_retries, listener.input_filters, listener.output_filters
    )
    return RouteTable(
        {
            "/healthz": {"GET": _healthz, "HEAD": _healthz},
            "/v1/models": {"GET": _models, "OPTIONS": _cors},
            "/debug/state": {"GET": stored.get_stats},
            "/debug/failover": {"GET": _failover_counts},
            "/debug/routing": {"GET": _routing_stats},
            "/debug/filters": {"GET": _filter_counts},
            "/debug/tracing": {"GET": _tracing_stats},
            "/debug/access": {"GET": _access_stats},
            "/v1/chat/completions": {"POST": _llm(clients.CHAT, llm)},
            "/v1/messages": {"POST": _llm(clients.MESSAGES, llm)},
            "/v1/responses": {"POST": _llm(clients.RESPONSES, llm)},
            **{
                decision_api.PREFIX + client.path: {"POST": _decision(client)}
                for client in (clients.CHAT, clients.MESSAGES, clients.RESPONSES)
            },
        },
        (
            Prefixed(stored.PREFIX, "/input_items", {"GET": stored.get_input_items}),
            Prefixed(stored.PREFIX, "", {"GET": stored.get_response, "DELETE": stored.delete_response}),
        ),
    )


class ModelListenerApp:
    """ASGI app for one `type: model` listener."""

    listener_kind: ListenerKind = "model"
    """Names the routes in metrics (brightstaff's `handler` label)."""

    def __init__(self, listener: Listener, runtime: Runtime) -> None:
        self.runtime = runtime
        self.routes = route_table(listener)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await lifespan(receive, send)
        # websocket: not served; returning closes it.

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[Header] = scope["headers"]
        version = scope.get("http_version")
        http2 = version == "2"
        connection = _connection_of(scope)
        ctx = RequestContext(
            scope["method"],
            scope["path"],
            headers,
            request_id_from(headers),
            receive,
            send,
            time.perf_counter(),
            http2,
            query=scope.get("query_string", b""),
            connection=connection,
            chunk_writer=(
                self.runtime.client_watch.chunk_writer(connection)
                if version == "1.1" and connection is not None
                else None
            ),
        )
        style = ErrorStyle.OPENAI
        outcome = Outcome(0)
        handler_label = started(self.listener_kind, ctx)
        tracing = self.runtime.tracing
        if tracing is not None and handler_label in trace_spans.TRACED_HANDLERS:
            ctx = ctx._replace(trace=tracing.start(headers))
        try:
            if _inspect_head(headers, len(scope.get("raw_path", b"")) + len(ctx.query)) and not http2:
                ctx = ctx._replace(send=_closing(send))
            try:
                handler, style = self.routes.find(ctx.method, ctx.path)
                ctx = self.runtime.access.authenticate(ctx)  # inbound keys, before the body is read
            except ApiError as refused:
                raise await _after_unread_body(ctx, refused, self.runtime.body_limits) from None
            outcome = await handler(self.runtime, ctx)
        except ApiError as error:
            outcome = Outcome(error.status, "error", error=error.message)
            await ctx.answer_error(error, style)
        except ClientDisconnected:
            outcome = Outcome(0, "client_disconnected")
        except trio.Cancelled:  # the server ended the request (shutdown's hard stop)
            outcome = outcome._replace(result="cut", error="ended by the server's shutdown")
            raise
        except Exception as error:  # a bug: answer 500 in the SDK's shape and keep serving
            log.exception("request %s failed", ctx.request_id.decode())
            outcome = Outcome(500, "error", error=f"internal error: {type(error).__name__}")
            bug = ApiError(
                500, "Internal gateway error; the gateway log has this request id", type="server_error"
            )
            await ctx.answer_error(bug, style)
        finally:
            observe(ctx, outcome, handler_label)
            analysis = signals_stage.submit(self.runtime.signals, ctx, outcome, handler_label)
            if ctx.trace is not None:
                trace_spans.finish(ctx.trace, ctx, outcome, handler_label, time.perf_counter(), analysis)


async def _after_unread_body(ctx: RequestContext, error: ApiError, limits: BodyLimits) -> ApiError:
    """`error`, answerable once the request's body (refused before it was read) is out of the way.

    A response sent while the body is still arriving finds the connection
    mid-request: hypercorn then closes it after the response without saying
    so in the head, and a keep-alive client's next request on it fails.  So
    the body is read (within the usual limits) and dropped; one too large or
    too slow gets the same error with `connection: close` instead."""
    if not carries_body(ctx.headers):
        return error
    try:
        await read_body(ctx.receive, ctx.headers, limits)
    except ApiError:
        return error.with_headers(((b"connection", b"close"),))
    return error


def _inspect_head(headers: list[Header], target_size: int) -> bool:
    """Refuse an oversized head, `target_size` bytes of path and query plus the headers (431); True
    when the body's framing is ambiguous.

    Both Content-Length and Transfer-Encoding: RFC 9112 §6.1 says to close the
    connection after answering, since a peer that framed the body differently
    could smuggle a second request through.
    """
    size = target_size
    framing = 0
    for name, value in headers:
        size += len(name) + len(value) + 4
        if name == b"content-length":
            framing |= 1
        elif name == b"transfer-encoding":
            framing |= 2
    if size > MAX_HEADER_BYTES:
        raise head_too_large(MAX_HEADER_BYTES).with_headers(((b"connection", b"close"),))
    return framing == 3


def _closing(send: Send) -> Send:
    """`send` that adds `connection: close` to the response head."""

    async def send_then_close(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            headers = [h for h in message.get("headers", []) if h[0] != b"connection"]  # type: ignore[attr-defined]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await send(message)

    return send_then_close
