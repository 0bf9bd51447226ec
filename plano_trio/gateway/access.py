"""Who may call, for which models, and how many input tokens: the edge check and the rate-limit stage.

Two places in a request's life:

* At the edge, before the body is read (`authenticate`, called by the app
  for model and agent listeners alike): with `plano_trio.inbound_auth` on,
  a request without a known client key gets 401 in its SDK's error shape
  (OpenAI's `{"error": ...}`, Anthropic's on `/v1/messages`) with
  `WWW-Authenticate: Bearer`.  `/healthz` and CORS preflights stay open
  (`/metrics` has its own listener).  The accepted key travels in
  `RequestContext.inbound_key`; the credential headers are removed from
  the request the stages see (see `plano_trio.auth.keys`).
* After parse, route and state (`check_model`, then `admit`, on the model
  listener): a key limited to some `models` gets 403 `model_not_allowed`
  for any other (403 rather than 404: the key is known and the model
  exists, the key may just not use it; the message names the key, never
  its text), checked on the model as requested and again on the model a
  router chose.  Then the token rate limits: Plano's `ratelimits` rules the
  request selects and the key's own `rate_limit` are charged the request's
  input tokens at once, all or none; a refusal is 429 with Plano's message
  in the client's error shape and `Retry-After` (none when the request is
  larger than a whole period, which no wait fixes).

Zero cost when unused: without inbound keys `authenticate` is one test;
without a rule for the request's model and a key limit, `admit` returns
before any token is counted.  Counting is the only real cost (see
`plano_trio.ratelimit.tokens` for its size).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Final

import msgspec
import trio

from plano_trio.apis.kind import Api
from plano_trio.auth import (
    UPSTREAM_AUTH_HEADER,
    ClientKey,
    KeyTable,
    fingerprint,
    presented_credentials,
    without_inbound_credentials,
)
from plano_trio.config.schema import Config
from plano_trio.gateway.context import RequestContext
from plano_trio.gateway.errors import ApiError
from plano_trio.providers.resolve import ModelResolver, Route, RouteError
from plano_trio.ratelimit.gcra import retry_after_s
from plano_trio.ratelimit.rules import Charge, RateLimitRules, key_charge
from plano_trio.ratelimit.store import Buckets, MemoryBuckets, RateLimitCounters
from plano_trio.ratelimit.tokens import O200K, count_tokens, encoding_for, input_text, load_encoding
from plano_trio.session.failopen import raise_lone

log = logging.getLogger("plano_trio.access")

OPEN_PATHS: Final = frozenset({"/healthz"})
"""Paths served without a client key (load balancers' health checks)."""

_CHALLENGE: Final = ((b"www-authenticate", b'Bearer realm="plano-trio"'),)


def route_names(route: Route) -> tuple[str, str, str]:
    """The names a configured model answers to: full `provider/model`, bare id, provider's own name."""
    return route.label, route.model, route.provider.name


class Access:
    """Inbound keys and token rate limits for every listener of this process."""

    def __init__(self, config: Config, resolver: ModelResolver) -> None:
        self._resolver = resolver
        self._aliases = tuple(alias for alias, _ in config.model_aliases)
        auth = config.inbound_auth
        self.keys: KeyTable | None = KeyTable(auth) if auth is not None else None
        settings = config.ratelimits
        self.settings = settings
        self.rules = RateLimitRules(settings.rules)
        self.counters = RateLimitCounters()
        self.buckets: Buckets = MemoryBuckets(settings.max_buckets, self.counters)
        """This process's buckets; `open_access` puts the shared Redis store here when configured."""
        self.refused: Counter[str] = Counter()
        """Requests refused by the edge or the model check: `missing_key`, `invalid_key`, `model`."""
        self._key_charges: dict[str, Charge] = {}
        for key in self.keys.keys() if self.keys is not None else ():
            charge = key_charge(key.settings)
            if charge is not None:
                self._key_charges[key.name] = charge
        self._models_bodies: dict[str, bytes] = {}
        self._encodings: set[str] = set()
        """Encodings built in this process (building one takes seconds: see `load`)."""
        self._building = trio.Lock()

    @property
    def shares_buckets(self) -> bool:
        """Whether anything here needs a bucket store at all."""
        return bool(self.rules) or bool(self._key_charges)

    def authenticate(self, ctx: RequestContext) -> RequestContext:
        """The request with its client key found and its credentials removed; 401 without a known key."""
        keys = self.keys
        if keys is None or ctx.path in OPEN_PATHS or ctx.method == "OPTIONS":
            return ctx
        presented = presented_credentials(ctx.headers)
        for credential in presented:
            key = keys.find(credential)
            if key is not None:
                return ctx._replace(headers=without_inbound_credentials(ctx.headers), inbound_key=key)
        if not presented:
            self.refused["missing_key"] += 1
            raise ApiError(
                401,
                "Missing API key: send it as Authorization: Bearer <key> (or x-api-key)",
                code="missing_api_key",
                headers=_CHALLENGE,
            )
        self.refused["invalid_key"] += 1
        log.debug(
            "inbound key refused",
            extra={"fields": {"fingerprints": ",".join(fingerprint(c) for c in presented)}},
        )
        raise ApiError(401, "Incorrect API key provided", code="invalid_api_key", headers=_CHALLENGE)

    def check_model(self, ctx: RequestContext, requested: str) -> None:
        """403 when the request's key may not use the model it asked for (before any routing)."""
        key = ctx.inbound_key
        if key is None or not key.restricted or key.may_use(self._names(requested)):
            return
        raise self._forbidden(key, requested)

    async def admit(
        self, ctx: RequestContext, api: Api, requested: str, route: Route, request: Callable[[], Any]
    ) -> None:
        """The rate-limit stage, on the route the first attempt takes: the key's model check on a routed
        model, then the token rate limits (`request()` gives the client's request, decoded, with any
        stored conversation merged in: what the provider will be sent)."""
        key = ctx.inbound_key
        names = route_names(route)
        if key is not None:
            self._check_route(key, requested, route, names)
            if route.provider.passthrough_auth and not any(n == b"authorization" for n, _ in ctx.headers):
                raise ApiError(
                    401,
                    f"Provider '{route.provider.name}' uses passthrough_auth: send its API key in "
                    f"{UPSTREAM_AUTH_HEADER.decode()} (your gateway key is never forwarded)",
                    code="missing_upstream_api_key",
                )
        charges = self.rules.charges(names, ctx.headers) if self.rules else []
        own = self._key_charges.get(key.name) if key is not None else None
        if own is not None:
            charges.append(own)
        if not charges:
            return
        encoding = encoding_for(route.model)
        if encoding not in self._encodings:
            await self.load(encoding)
        cost = count_tokens(route.model, input_text(api, request()))
        if cost == 0:
            return
        self.counters.checked += 1
        decision = await self.buckets.take(charges, cost)
        if decision.allowed:
            return
        self.counters.limited += 1
        wait = decision.retry_after_us
        headers = () if wait is None else ((b"retry-after", str(retry_after_s(wait)).encode()),)
        raise ApiError(
            429,
            charges[decision.refused].exceeded(cost),
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers=headers,
        )

    async def load(self, encoding: str) -> None:
        """Build a tokenizer encoding in a thread, once: seconds of CPU that must not stall the event
        loop.  Requests that need it meanwhile wait here; a cancelled wait leaves the build running."""
        async with self._building:
            if encoding not in self._encodings:
                await trio.to_thread.run_sync(load_encoding, encoding, abandon_on_cancel=True)
                self._encodings.add(encoding)

    def models_body(self, ctx: RequestContext, everything: bytes) -> bytes:
        """`/v1/models` as the request's key sees it: what it may ask for.  That is the listed models
        its `models` allow (by any of their names) and, since a key may be granted an alias alone
        (which `/v1/models` does not list otherwise), the aliases it names, owned as their target."""
        key = ctx.inbound_key
        if key is None or not key.restricted:
            return everything
        body = self._models_bodies.get(key.name)
        if body is None:
            listing = msgspec.json.decode(everything)
            owners = {m["id"]: m.get("owned_by") for m in listing["data"]}
            listing["data"] = [m for m in listing["data"] if key.may_use(self._names(m["id"]))]
            for alias in self._aliases:
                if alias in key.models:
                    target = next((n for n in self._names(alias) if n in owners), None)
                    owner = owners[target] if target is not None else "system"
                    listing["data"].append({"id": alias, "object": "model", "created": 0, "owned_by": owner})
            body = self._models_bodies[key.name] = msgspec.json.encode(listing)
        return body

    def stats(self) -> dict[str, int]:
        """Counters for `/debug/access`."""
        counters = self.counters
        return {
            "ratelimit_checked": counters.checked,
            "ratelimit_limited": counters.limited,
            "ratelimit_failed_open": counters.failed_open,
            "ratelimit_store_errors": counters.store_errors,
            "ratelimit_store_timeouts": counters.store_timeouts,
            "ratelimit_evicted_live": counters.evicted_live,
            **{f"refused_{reason}": n for reason, n in self.refused.items()},
        }

    def _names(self, requested: str) -> Iterable[str]:
        """A requested name and, when it resolves, the names of its route."""
        yield requested
        try:
            route = self._resolver.resolve(requested)
        except RouteError:
            return
        if route is not None:
            yield from route_names(route)

    def _check_route(self, key: ClientKey, requested: str, route: Route, names: Iterable[str]) -> None:
        """The model actually used must be allowed too: by one of its own names, or as the requested
        name (an alias) when no router picked another model."""
        if not key.restricted or key.may_use(names):
            return
        try:
            same = self._resolver.resolve(requested) == route
        except RouteError:
            same = False
        if same and key.may_use((requested,)):
            return
        raise self._forbidden(key, route.label)

    def _forbidden(self, key: ClientKey, model: str) -> ApiError:
        self.refused["model"] += 1
        return ApiError(
            403,
            f"The API key '{key.name}' may not use model '{model}'",
            type="permission_error",
            param="model",
            code="model_not_allowed",
        )


@asynccontextmanager
async def open_access(access: Access) -> AsyncIterator[Access]:
    """`access` with its shared bucket store open (`plano_trio.ratelimit_store: redis://...`), if any,
    and, when any limit is configured, `o200k_base` built in the background so the first limited
    request does not wait for it; the store's connections closed on exit.

    Raises `ValueError` for a store URL the client cannot use.
    """
    if not access.shares_buckets:
        yield access
        return
    try:
        async with trio.open_nursery() as background:
            background.start_soon(access.load, O200K)
            try:
                url = access.settings.store_url
                if url is None:
                    yield access
                else:
                    # The Redis client is imported only for a configured shared store.
                    from plano_trio.ratelimit.redis_store import open_redis_buckets

                    local = access.buckets
                    timeout_s = access.settings.timeout_s
                    async with open_redis_buckets(url, access.counters, timeout_s=timeout_s) as shared:
                        access.buckets = shared
                        try:
                            yield access
                        finally:
                            access.buckets = local
            finally:
                background.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise_lone(group)
