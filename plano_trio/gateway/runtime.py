"""Process-wide state shared by every request: config, routes, upstream pool.

Built once at startup, read (never mutated) by handlers.  Anything here that
does I/O (the pool) is closed by `aclose()` when the server stops.
"""

from __future__ import annotations

import msgspec

from plano_trio.config.schema import Config
from plano_trio.providers.resolve import ModelResolver
from plano_trio.state import StateStore
from plano_trio.upstream import UpstreamPool, make_ssl_context


class _Model(msgspec.Struct):
    id: str
    owned_by: str
    object: str = "model"
    created: int = 0


class _ModelList(msgspec.Struct):
    data: list[_Model]
    object: str = "list"


class Runtime:
    def __init__(
        self, config: Config, pool: UpstreamPool | None = None, store: StateStore | None = None
    ) -> None:
        self.config = config
        self.store = store
        """Conversation state for `/v1/responses` (None without `state_storage`)."""
        self.resolver = ModelResolver(config)
        settings = config.server
        self.pool = pool or UpstreamPool(
            connect_timeout=settings.upstream_connect_timeout_s,
            max_per_host=settings.upstream_pool_max_per_host,
            ssl_context=make_ssl_context(settings.ca_bundle),
        )
        models = [_Model(id=name, owned_by=owner) for name, owner in self.resolver.listed_models(config)]
        self.models_body = msgspec.json.encode(_ModelList(data=models))

    async def aclose(self) -> None:
        await self.pool.aclose()
