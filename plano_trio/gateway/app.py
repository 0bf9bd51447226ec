"""The ASGI application of a model listener: routing table and error edge.

Every request gets an `Exchange` (request id, timing) and exactly one
access-log line.  Handlers raise `ApiError` for anything the client did
wrong or the provider could not do; this module turns it into the JSON the
client's SDK parses, so a bad request never becomes a traceback or a hang.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from plano_trio.config.schema import Listener
from plano_trio.gateway import clients, llm, stored
from plano_trio.gateway.asgi import (
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    lifespan,
    read_body,
    send_bytes,
    send_error,
)
from plano_trio.gateway.errors import ApiError, method_not_allowed, not_found
from plano_trio.gateway.exchange import Exchange, new_request_id
from plano_trio.gateway.runtime import Runtime

log = logging.getLogger("plano_trio.gateway")

Handler = Callable[["ModelListenerApp", Exchange], Awaitable[None]]

_CORS_HEADERS = (
    (b"allow", b"GET, OPTIONS"),
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-headers", b"Authorization, Content-Type"),
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
)


class ModelListenerApp:
    """ASGI app for one `type: model` listener."""

    def __init__(self, listener: Listener, runtime: Runtime) -> None:
        self.listener = listener
        self.runtime = runtime
        self.body_limit = runtime.config.server.max_request_body_bytes
        self.routes: dict[str, dict[str, Handler]] = {
            "/healthz": {"GET": _healthz, "HEAD": _healthz},
            "/v1/models": {"GET": _models, "OPTIONS": _cors},
            "/debug/state": {"GET": stored.get_stats},
            "/v1/chat/completions": {"POST": _llm(clients.CHAT)},
            "/v1/messages": {"POST": _llm(clients.MESSAGES)},
            "/v1/responses": {"POST": _llm(clients.RESPONSES)},
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await lifespan(receive, send)
        # websocket: not served; returning closes it.

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        request_id = next((v for n, v in headers if n == b"x-request-id" and v), None) or new_request_id()
        exchange = Exchange(scope["method"], scope["path"], headers, receive, send, request_id)
        try:
            handler = self._route(exchange.method, exchange.path)
            await handler(self, exchange)
        except ApiError as error:
            await self._fail(exchange, error)
        except ClientDisconnected:
            exchange.outcome = "client_disconnected"
        except Exception as error:  # a bug: answer 500 in the SDK's shape and keep serving
            log.exception("request %s failed", request_id.decode())
            await self._fail(
                exchange,
                ApiError(500, f"Internal gateway error: {type(error).__name__}", type="server_error"),
            )
        finally:
            exchange.log()

    def _route(self, method: str, path: str) -> Handler:
        methods = self.routes.get(path.rstrip("/") or "/")
        if methods is None and path.startswith(stored.PREFIX):
            methods = stored.ROUTES_INPUT_ITEMS if path.endswith("/input_items") else stored.ROUTES_RESPONSE
        if methods is None:
            raise not_found(method, path)
        handler = methods.get(method)
        if handler is None:
            raise method_not_allowed(method, path, ", ".join(methods))
        return handler

    async def _fail(self, exchange: Exchange, error: ApiError) -> None:
        exchange.error = error.message
        if exchange.status:
            return  # the response already started; the stream itself carried the error
        if exchange.outcome == "ok":
            exchange.outcome = "error"
        exchange.status = error.status
        await send_error(exchange.send, error, exchange.style, ((b"x-request-id", exchange.request_id),))


async def _healthz(app: ModelListenerApp, exchange: Exchange) -> None:
    exchange.status = 200
    await send_bytes(exchange.send, 200, [(b"content-type", b"text/plain")], b"")


async def _models(app: ModelListenerApp, exchange: Exchange) -> None:
    exchange.status = 200
    await send_bytes(
        exchange.send,
        200,
        [(b"content-type", b"application/json"), (b"access-control-allow-origin", b"*")],
        app.runtime.models_body,
    )


async def _cors(app: ModelListenerApp, exchange: Exchange) -> None:
    exchange.status = 204
    await exchange.send({"type": "http.response.start", "status": 204, "headers": list(_CORS_HEADERS)})
    await exchange.send({"type": "http.response.body", "body": b""})


def _llm(client: clients.ClientApi) -> Handler:
    async def handler(app: ModelListenerApp, exchange: Exchange) -> None:
        exchange.style = client.style
        body = await read_body(exchange.receive, app.body_limit)
        await llm.handle(client, app.runtime, exchange, body, app.listener.timeout_s)

    return handler
