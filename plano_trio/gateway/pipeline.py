"""A model-listener request (`/v1/chat/completions`, `/v1/messages`, `/v1/responses`), stage by stage.

    admit → parse → route → load state → translate → exchange → relay → store → (observe)

Each stage is a module with one job; this one shows their order and what
flows between them: the immutable `RequestContext` goes down, each stage
returns plain data (`Route`, `Outbound`, `Delivery`) and the request ends
as one `Outcome`, which the app hands to the observe stage.  Features to
come are new stages at their place in this list (input filters after parse,
the router and sessions inside route, failover as a plan of attempts around
exchange and relay, output filters after relay) rather than edits to the
stages around them.

Cancellation is structured: one nursery (one cancel scope) per request holds
the attempt and a watcher on the client connection.  A client that goes
away, the listener deadline, an idle provider and the shutdown grace period
all end that one scope, and the provider's socket is closed at once.
"""

from __future__ import annotations

from typing import Any

import trio

from plano_trio.apis.kind import Api
from plano_trio.gateway import conversation
from plano_trio.gateway.asgi import read_body, wait_for_disconnect
from plano_trio.gateway.clients import ClientApi
from plano_trio.gateway.context import RequestContext
from plano_trio.gateway.conversation import PendingTurn
from plano_trio.gateway.errors import ApiError
from plano_trio.gateway.observe import Outcome, Result
from plano_trio.gateway.outbound import passthrough, translated
from plano_trio.gateway.relay import Delivery, Relay
from plano_trio.gateway.route import resolve
from plano_trio.gateway.runtime import Runtime
from plano_trio.providers.resolve import Route
from plano_trio.translate.matrix import plan_for, response_id


async def handle(client: ClientApi, runtime: Runtime, ctx: RequestContext, timeout: float) -> Outcome:
    """Serve one LLM request; `timeout` is the listener's deadline for the provider's answer."""
    with runtime.admission:  # admit
        body = await read_body(ctx.receive, ctx.headers, runtime.body_limits)  # parse
        request = client.parse(body)
        model = request.model or ""
        stream = bool(request.stream)
        label: str | None = None
        pending: PendingTurn | None = None
        try:
            route = resolve(runtime, model)  # route
            label = route.label
            upstream = route.upstream_api(client.api)
            plan = plan_for(client.api, upstream)
            if plan is None:  # translate: nothing to do but the model name
                outbound = passthrough(ctx, route, upstream, body, model, stream)
            else:
                decoded = client.decode_request(body)  # every value checked: depth, numbers, UTF-8
                rid = response_id() if client.api is Api.RESPONSES else None
                merged, pending = await _load_state(runtime, decoded, rid, model, route)  # load state
                outbound = translated(ctx, route, upstream, plan, decoded, merged, rid, stream)  # translate
            relay = Relay(runtime, ctx, client, route, outbound, stream=stream, timeout=timeout)
            delivery = await _attempt(runtime, ctx, relay)  # exchange → relay
            if delivery.error is not None:
                raise delivery.error
            if pending is not None and delivery.response is not None:  # store, before the last send:
                pending.complete(delivery.response)  # the client's next turn may follow at once
            if delivery.finish is not None:
                # Outside the request's nursery: completing the last send makes hypercorn recycle the
                # keep-alive connection, which the request's own end must not cancel.  It is bounded
                # all the same: the server resets a connection whose writes stop making progress.
                await delivery.finish()
            usage = relay.usage.usage if relay.usage is not None else None
            return Outcome(
                delivery.status,
                delivery.result,
                model,
                label,
                stream,
                relay.first_byte,
                usage,
                delivery.message,
            )
        except ApiError as error:
            await ctx.answer_error(error, client.style)
            failed: Result = "upstream_error" if error.type == "upstream_error" else "error"
            return Outcome(error.status, failed, model, label, stream, error=error.message)
        finally:
            if pending is not None:
                pending.abandon()  # frees the reserved queue slot; a no-op once the turn was stored


async def _load_state(
    runtime: Runtime, request: dict[str, Any], rid: str | None, model: str, route: Route
) -> tuple[dict[str, Any], PendingTurn | None]:
    """The load-state stage: a Responses turn's stored history, and a reserved slot to store it."""
    if rid is None or runtime.store is None:
        return request, None
    return await conversation.prepare(
        runtime.store, request, response_id=rid, model=model, provider=route.label
    )


async def _attempt(runtime: Runtime, ctx: RequestContext, relay: Relay) -> Delivery:
    """Exchange and relay in the request's own nursery, next to the client watcher.

    The nursery's cancel scope ends early when the client goes away (the
    watcher), when the deadline or idle bound passes (the relay sets it), or
    when shutdown cuts live streams (`Runtime.cut_streams`); the relay then
    says what the client still gets.
    """
    client_gone = False
    async with trio.open_nursery() as nursery:
        scope = nursery.cancel_scope

        async def watch_client() -> None:
            nonlocal client_gone
            await wait_for_disconnect(ctx.receive)
            client_gone = True
            scope.cancel()

        nursery.start_soon(watch_client)
        runtime.live_requests.add(scope)
        try:
            delivery = await relay.run(scope)
        finally:
            runtime.live_requests.discard(scope)
        scope.cancel()
        return delivery
    return relay.interrupted("client_gone" if client_gone else "cut" if runtime.cutting else "deadline")
