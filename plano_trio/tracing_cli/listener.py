"""`plano-trio trace listen`: take OTLP spans, keep the recent traces, answer viewers.

One gRPC port serves both OTLP's `TraceService/Export` and the viewers' `/plano.TraceQuery/GetTraces`
(an empty request answered with `{"traces": [...]}` as JSON bytes), exactly as `planoai trace listen`
does, so `planoai trace` reads this listener and `plano-trio trace` reads Plano's.  grpcio's server runs
the calls on a small thread pool (`GRPC_THREADS`), refuses messages over `Limits.max_request_bytes`, and
queues at most `GRPC_MAX_CONCURRENT_RPCS` calls; the rest are refused with RESOURCE_EXHAUSTED.
Idle gRPC connections are closed after `GRPC_IDLE_MS` (exporters reconnect on their own).
`grpc.so_reuseport` is off so that a port already taken is an error, not a second listener that silently
gets half of the spans.

Optionally (`--http-port`) OTLP/HTTP too: `POST /v1/traces` with a protobuf body, gzip allowed, served
by the gateway's own accept loop around hypercorn (bounded connections, stalled sends cut) and read with
its bounded body reader.  OTLP/JSON bodies are refused with 415: the OpenTelemetry SDKs send protobuf
unless told otherwise.

Both paths end in `ingest`: decode (bounded, `otlp`), store (bounded, `store`), answer.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from functools import partial
from typing import Any

import grpc  # type: ignore[import-untyped]  # grpcio ships no type information
import trio
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]  # no types-protobuf
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.utils import wrap_app

from plano_trio.apis.http import Header
from plano_trio.gateway.asgi import (
    BodyLimits,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    lifespan,
    read_body,
    send_bytes,
)
from plano_trio.gateway.errors import ApiError
from plano_trio.server.listen import serve_app
from plano_trio.tracing_cli.otlp import OtlpError, decode_export, export_response
from plano_trio.tracing_cli.store import TraceStore

log = logging.getLogger("plano_trio.trace")

OTLP_TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
QUERY_SERVICE = "plano.TraceQuery"
"""Plano's viewer protocol: method `GetTraces`, raw bytes both ways (no protobuf schema)."""
GRPC_THREADS = 4
GRPC_MAX_CONCURRENT_RPCS = 32
GRPC_GRACE_S = 1.0
GRPC_IDLE_MS = 300_000
HTTP_PATH = "/v1/traces"
PROTOBUF = b"application/x-protobuf"
HTTP_MAX_CONNECTIONS = 64
"""Client connections the OTLP/HTTP side holds at once (the gateway's accept loop enforces it)."""
HTTP_SEND_TIMEOUT_S = 10.0
HTTP_BODY_LIMITS_S = (10.0, 30.0)
"""Longest pause between two pieces of an OTLP/HTTP body, and longest upload."""
GRPC_INVALID_ARGUMENT = 3
GRPC_RESOURCE_EXHAUSTED = 8


class ListenerError(Exception):
    """The listener cannot start (its port is taken or not allowed)."""


def ingest(store: TraceStore, body: bytes) -> bytes:
    """Store the spans of one OTLP export request; the OTLP answer.  Raises `OtlpError` on garbage."""
    decoded = decode_export(body, store.limits)
    store.add(decoded.spans)
    if decoded.rejected:
        log.debug("refused %d spans with malformed ids", decoded.rejected)
    return export_response(decoded.rejected)


def grpc_handlers(store: TraceStore) -> list[Any]:
    """The two gRPC services, taking and giving raw bytes (no protobuf round trip in grpcio)."""

    def export(request: bytes, context: Any) -> bytes:
        try:
            return ingest(store, request)
        except OtlpError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error)[:200])
            raise  # not reached: abort raises

    def get_traces(_request: bytes, _context: Any) -> bytes:
        return store.reply_json()

    def raw(behaviour: Callable[[bytes, Any], bytes]) -> Any:
        return grpc.unary_unary_rpc_method_handler(
            behaviour, request_deserializer=None, response_serializer=None
        )

    return [
        grpc.method_handlers_generic_handler(OTLP_TRACE_SERVICE, {"Export": raw(export)}),
        grpc.method_handlers_generic_handler(QUERY_SERVICE, {"GetTraces": raw(get_traces)}),
    ]


def start_grpc(store: TraceStore, host: str, port: int) -> tuple[Any, int]:
    """A started grpcio server and the port it bound (`port` 0 picks one); `ListenerError` if it cannot."""
    limits = store.limits
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=GRPC_THREADS, thread_name_prefix="otlp-grpc"),
        handlers=grpc_handlers(store),
        maximum_concurrent_rpcs=GRPC_MAX_CONCURRENT_RPCS,
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_connection_idle_ms", GRPC_IDLE_MS),
            ("grpc.max_receive_message_length", limits.max_request_bytes),
            ("grpc.max_send_message_length", limits.reply_budget_bytes + 1024),
        ],
    )
    address = f"{host}:{port}"
    try:
        bound = int(server.add_insecure_port(address))
    except RuntimeError as error:
        raise ListenerError(f"cannot listen for OTLP/gRPC on {address}: {error}") from error
    if bound == 0:
        raise ListenerError(f"cannot listen for OTLP/gRPC on {address}: the address is taken or not allowed")
    server.start()
    return server, bound


def gunzip(body: bytes, limit: int) -> bytes:
    """`body` decompressed, refusing (ValueError) past `limit` bytes: a small body can inflate a lot."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise ValueError(f"body is not valid gzip: {error}") from error
    if len(out) > limit or inflater.unconsumed_tail:
        raise ValueError(f"body inflates past {limit} bytes")
    if not inflater.eof:
        raise ValueError("body is truncated gzip")
    return out


def _header(headers: list[Header], name: bytes) -> bytes:
    return next((value for key, value in headers if key == name), b"")


async def _answer_status(send: Send, status: int, grpc_code: int, message: str) -> None:
    """An OTLP/HTTP error: the HTTP status, and a `google.rpc.Status` saying why, as OTLP asks."""
    body = bytes(Status(code=grpc_code, message=message).SerializeToString())
    await send_bytes(send, status, [(b"content-type", PROTOBUF)], body)


@dataclass(slots=True)
class OtlpHttpApp:
    """The OTLP/HTTP receiver as an ASGI app: `POST /v1/traces`, protobuf, identity or gzip."""

    store: TraceStore

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
        elif scope["type"] == "http":
            try:
                await self._http(scope, receive, send)
            except ClientDisconnected:
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[Header] = scope["headers"]
        if scope["path"] != HTTP_PATH:
            await _answer_status(
                send, 404, GRPC_INVALID_ARGUMENT, f"not found; OTLP/HTTP is POST {HTTP_PATH}"
            )
            return
        if scope["method"] != "POST":
            await _answer_status(send, 405, GRPC_INVALID_ARGUMENT, f"use POST {HTTP_PATH}")
            return
        if _header(headers, b"content-type").split(b";")[0].strip().lower() != PROTOBUF:
            await _answer_status(send, 415, GRPC_INVALID_ARGUMENT, "send application/x-protobuf")
            return
        limit = self.store.limits.max_request_bytes
        stall_s, total_s = HTTP_BODY_LIMITS_S
        try:
            body = await read_body(receive, headers, BodyLimits(limit, stall_s, total_s))
        except ApiError as error:
            await _answer_status(send, error.status, GRPC_RESOURCE_EXHAUSTED, error.message)
            return
        encoding = _header(headers, b"content-encoding").strip().lower()
        try:
            if encoding == b"gzip":
                body = gunzip(body, limit)
            elif encoding not in (b"", b"identity"):
                await _answer_status(send, 415, GRPC_INVALID_ARGUMENT, "content-encoding: gzip or none")
                return
            answer = await trio.to_thread.run_sync(ingest, self.store, body)
        except (ValueError, OtlpError) as error:  # OtlpError is a ValueError; named for the reader
            await _answer_status(send, 400, GRPC_INVALID_ARGUMENT, str(error)[:200])
            return
        await send_bytes(send, 200, [(b"content-type", PROTOBUF)], answer)


def hypercorn_config(host: str, port: int) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [f"{host}:{port}"]
    config.graceful_timeout = GRPC_GRACE_S
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.include_server_header = False
    config.keep_alive_timeout = 5.0
    config.h11_max_incomplete_size = 16 * 1024
    config.h2_max_concurrent_streams = 16
    return config


class Listener:
    """A listener whose ports are bound and whose gRPC server runs; `serve` adds the HTTP side and waits.

    Binding happens in the constructor, before any event loop runs, so a taken port is a plain
    `ListenerError` and the caller can say so and exit.  The gRPC server lives on its own threads;
    whoever made the listener owns it and must `close` it (`serve` does so when it ends).
    """

    def __init__(self, store: TraceStore, host: str, grpc_port: int, http_port: int | None) -> None:
        self.store = store
        self._grpc, port = start_grpc(store, host, grpc_port)
        self.grpc_address = f"{host}:{port}"
        self.http_url: str | None = None
        self._http: tuple[HypercornConfig, Sockets] | None = None
        if http_port is not None:
            config = hypercorn_config(host, http_port)
            try:
                sockets = config.create_sockets()
            except OSError as error:
                self.close()
                raise ListenerError(f"cannot listen for OTLP/HTTP on {host}:{http_port}: {error}") from error
            bound_host, bound_port = sockets.insecure_sockets[0].getsockname()[:2]
            self.http_url = f"http://{bound_host}:{bound_port}{HTTP_PATH}"
            self._http = (config, sockets)

    def close(self) -> None:
        """Stop the gRPC server, giving calls in flight `GRPC_GRACE_S` (blocks that long at most), and
        close the HTTP sockets if `serve` never took them over.  Idempotent."""
        self._grpc.stop(GRPC_GRACE_S).wait(GRPC_GRACE_S + 1)
        if self._http is not None:
            for sock in self._http[1].insecure_sockets:
                sock.close()

    async def serve(
        self, shutdown: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until `shutdown` is set, then drain HTTP and stop gRPC (each within `GRPC_GRACE_S`)."""
        try:
            if self._http is None:
                task_status.started()
                await shutdown.wait()
                return
            config, sockets = self._http
            app = wrap_app(OtlpHttpApp(self.store), config.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
            async with trio.open_nursery() as nursery:
                serve = partial(
                    serve_app,
                    app,
                    config,
                    sockets,
                    max_connections=HTTP_MAX_CONNECTIONS,
                    send_timeout_s=HTTP_SEND_TIMEOUT_S,
                    shutdown_trigger=shutdown.wait,
                )
                await nursery.start(serve)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.close)
