"""Model name → upstream route, computed once per name.

A client may name a model by its full name (`openai/gpt-4o`), its bare id
(`gpt-4o`), an alias (`model_aliases`, one level) or any model of a wildcard
provider (`openai/*` makes `openai/o9-preview` valid).  Everything that does
not depend on the request (origin, target path, static auth headers) is
precomputed into a `Route`, so the hot path does one dict lookup.  These four
forms are the ones Plano resolves too, so configs and clients carry over.

A wildcard provider also stands for the models Plano's catalogue lists for
its prefix (`model_catalog`): their bare ids (`gpt-4o` for `openai/*`)
resolve to it, and `/v1/models` lists them.  When two providers could serve
one bare id, a configured model beats a catalogue entry, and among wildcards
the first in config order wins (Plano lets whichever it registered last
win, which depends on the order of the file in a less obvious way).
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

from plano_trio.apis.http import Header
from plano_trio.apis.kind import Api
from plano_trio.config.schema import Config, ModelProvider
from plano_trio.providers.catalog import Auth, ProviderSpec, api_path, spec_for, upstream_api_for
from plano_trio.providers.model_catalog import catalogue_models
from plano_trio.upstream import Origin

_WILDCARD_CACHE_LIMIT = 4096


class Route(NamedTuple):
    provider: ModelProvider
    spec: ProviderSpec
    model: str
    """Bare upstream model id written into the request body."""
    origin: Origin
    base_path: str
    query: str
    static_headers: tuple[Header, ...]
    """Auth from `access_key` plus the provider's `headers`; empty auth for passthrough."""
    chat_target: bytes
    """Precomputed target of the hot path (Chat client → Chat provider)."""

    def upstream_api(self, client: Api) -> Api:
        return upstream_api_for(client, self.spec)

    def target(self, api: Api, *, stream: bool = False) -> bytes:
        if api is Api.CHAT:
            return self.chat_target
        return api_path(self.spec, api, self.base_path, self.query, self.model, stream=stream).encode()

    @property
    def label(self) -> str:
        """`provider/model` for logs and metrics."""
        return f"{self.provider.prefix}/{self.model}"


class RouteError(Exception):
    """The provider cannot be reached as configured (e.g. no base URL)."""


def _origin(provider: ModelProvider, spec: ProviderSpec) -> tuple[Origin, str, str]:
    if spec.local is not None:
        return Origin("http", spec.interface, 80, None, spec.local), "", ""
    base = provider.base_url or spec.default_base_url
    if base is None:
        raise RouteError(
            f"provider '{provider.name}' needs a base_url ({spec.interface} has no default host)"
        )
    parts = urlsplit(base)
    scheme = parts.scheme or "https"
    if parts.hostname is None:
        raise RouteError(f"provider '{provider.name}': base_url {base!r} has no host")
    port = parts.port or (443 if scheme == "https" else 80)
    path = parts.path if provider.base_url else ""
    query = parts.query if provider.base_url else ""
    return Origin(scheme, parts.hostname, port, provider.http_host), path, query


def _auth_headers(provider: ModelProvider, spec: ProviderSpec, key: str) -> tuple[Header, ...]:
    if spec.auth is Auth.AZURE:
        return ((b"api-key", key.encode()),)
    if spec.auth is Auth.ANTHROPIC:
        return ((b"x-api-key", key.encode()), (b"anthropic-version", b"2023-06-01"))
    return ((b"authorization", b"Bearer " + key.encode()),)


def build_route(provider: ModelProvider, model: str) -> Route:
    """Precompute everything about calling `model` on `provider`."""
    spec = spec_for(provider.provider_interface)
    origin, base_path, query = _origin(provider, spec)
    headers: list[Header] = []
    if provider.access_key and not provider.passthrough_auth:
        headers.extend(_auth_headers(provider, spec, provider.access_key))
    headers.extend((name.lower().encode(), value.encode()) for name, value in provider.headers)
    chat_target = api_path(spec, Api.CHAT, base_path, query, model, stream=False).encode()
    return Route(provider, spec, model, origin, base_path, query, tuple(headers), chat_target)


def auth_for_key(route: Route, key: str) -> tuple[Header, ...]:
    """Auth headers carrying a client-supplied key (`passthrough_auth`)."""
    return _auth_headers(route.provider, route.spec, key)


class ModelResolver:
    """Resolves client model names to routes; built once from the config."""

    def __init__(self, config: Config) -> None:
        self._aliases = dict(config.model_aliases)
        self._routes: dict[str, Route | RouteError] = {}
        self._wildcards: dict[str, ModelProvider] = {}
        self._wildcard_routes: dict[str, Route | RouteError] = {}
        by_name: dict[str, Route | RouteError] = {}
        for provider in config.model_providers:
            if provider.is_wildcard:
                self._wildcards[provider.prefix] = provider
                continue
            route: Route | RouteError
            try:
                route = build_route(provider, provider.model)
            except RouteError as error:
                route = error
            by_name[provider.name] = route
            # A bare id served by several providers (`a/claude`, `b/claude`) goes to the
            # first one in config order, as a deterministic default; failover reaches the others.
            self._routes.setdefault(provider.model, route)
        # Full names win over bare ids: registered last, they overwrite.
        self._routes.update(by_name)
        self._catalogued: dict[str, str] = {}
        """Bare id of a catalogue model -> the full name its wildcard serves it under (`openai/gpt-4o`)."""
        for name in expanded_names(config):
            self._catalogued.setdefault(name.partition("/")[2], name)

    def sole_native_responses(self, config: Config) -> Route | None:
        """The one upstream that stores Responses turns itself (OpenAI, xAI, ...), if the config has
        exactly one: where a response id nobody recorded can only have come from.

        Providers that differ only in model (one host, one key) are one upstream.
        """
        routes: dict[tuple[object, ...], Route] = {}
        for provider in config.model_providers:
            if provider.internal or not spec_for(provider.provider_interface).native_responses:
                continue
            try:
                route = build_route(provider, provider.model)
            except RouteError:
                continue
            key = (
                route.origin,
                route.base_path,
                route.query,
                route.static_headers,
                provider.passthrough_auth,
            )
            routes.setdefault(key, route)
        return next(iter(routes.values())) if len(routes) == 1 else None

    def resolve(self, requested: str) -> Route | None:
        """The route for `requested`, or None when no provider serves it.

        Raises `RouteError` when a provider matches but cannot be called.
        """
        name = self._aliases.get(requested, requested)
        entry = self._routes.get(name) or self._wildcard(name)
        if entry is None and name in self._catalogued:
            entry = self._wildcard(self._catalogued[name])
        if isinstance(entry, RouteError):
            raise entry
        return entry

    def _wildcard(self, name: str) -> Route | RouteError | None:
        prefix, slash, rest = name.partition("/")
        if not slash:
            return None
        bare = self._routes.get(rest)
        if bare is not None and not isinstance(bare, RouteError) and bare.provider.prefix == prefix:
            return bare
        provider = self._wildcards.get(prefix)
        if provider is None or not rest:
            return None
        cached = self._wildcard_routes.get(name)
        if cached is None:
            try:
                cached = build_route(provider, rest)
            except RouteError as error:
                cached = error
            if len(self._wildcard_routes) >= _WILDCARD_CACHE_LIMIT:
                self._wildcard_routes.clear()
            self._wildcard_routes[name] = cached
        return cached

    def listed_models(self, config: Config) -> list[tuple[str, str]]:
        """(id, owned_by) for `/v1/models`: configured non-internal names, each wildcard expanded to
        its catalogue models (at the first wildcard of that prefix), in config order."""
        by_prefix: dict[str, list[str]] = {}
        for name, prefix in expanded_names(config).items():
            by_prefix.setdefault(prefix, []).append(name)
        listed: list[tuple[str, str]] = []
        for provider in config.model_providers:
            if provider.internal:
                continue
            if not provider.is_wildcard:
                listed.append((provider.name, spec_for(provider.provider_interface).owned_by))
                continue
            serving = self._wildcards.get(provider.prefix, provider)
            owner = spec_for(serving.provider_interface).owned_by
            listed.extend((name, owner) for name in by_prefix.pop(provider.prefix, ()))
        return listed


def expanded_names(config: Config) -> dict[str, str]:
    """Full name (`openai/gpt-4o`) -> wildcard prefix, for every catalogue model a wildcard provider
    stands for, in config then catalogue order.

    A model some provider is configured under by name is left out, as in
    Plano: that provider serves it.  Two wildcards with one prefix expand
    once (the later one serves, as it does at run time).
    """
    configured = {p.name for p in config.model_providers if not p.is_wildcard}
    out: dict[str, str] = {}
    for provider in config.model_providers:
        if not provider.is_wildcard or provider.internal:
            continue
        prefix = provider.prefix
        for model in catalogue_models(prefix):
            name = f"{prefix}/{model}"
            if name not in configured:
                out.setdefault(name, prefix)
    return out
