"""Process-wide state shared by every request: config, routes, upstream pool, admission.

Built once at startup.  Handlers read it; the only things requests change
are counters (admission) and the set of live request scopes, which lets
shutdown end streams that outlive the grace period with an error event
instead of a bare close.  Anything here that does I/O (the pool) is closed by
`aclose()` when the server stops.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import msgspec
import trio

from plano_trio.config.schema import Config
from plano_trio.gateway.access import Access
from plano_trio.gateway.admission import Admission
from plano_trio.gateway.asgi import BodyLimits
from plano_trio.gateway.client_watch import ClientWatch
from plano_trio.gateway.routing import Routing
from plano_trio.gateway.signals_worker import SignalsWorker
from plano_trio.providers.native_ids import NativeResponseIds
from plano_trio.providers.resolve import ModelResolver
from plano_trio.retry import BlockState
from plano_trio.state import StateStore
from plano_trio.telemetry import Tracing
from plano_trio.upstream import UpstreamPool, make_ssl_context

if TYPE_CHECKING:
    from plano_trio.filters.client import FilterClient
    from plano_trio.gateway.loop_lag import LoopLag


class _Model(msgspec.Struct):
    id: str
    owned_by: str
    object: str = "model"
    created: int = 0


class _ModelList(msgspec.Struct):
    data: list[_Model]
    object: str = "list"


def _loop_lag(limit_ms: int | None) -> LoopLag | None:
    """The loop-lag decision admission reads, when `max_loop_lag_ms` is set (only then is its module
    imported)."""
    if limit_ms is None:
        return None
    from plano_trio.gateway.loop_lag import LoopLag

    return LoopLag(limit_ms / 1000)


class Runtime:
    def __init__(
        self, config: Config, pool: UpstreamPool | None = None, store: StateStore | None = None
    ) -> None:
        self.config = config
        self.store = store
        """Conversation state for `/v1/responses` (None without `state_storage`)."""
        self.resolver = ModelResolver(config)
        self.native_responses = NativeResponseIds()
        """Which provider answered each Responses turn a native provider stored (for its retrieval)."""
        self.access = Access(config, self.resolver)
        """Inbound keys and token rate limits (`serve` opens the shared Redis buckets when configured)."""
        settings = config.server
        self.pool = pool or UpstreamPool(
            connect_timeout=settings.upstream_connect_timeout_s,
            max_per_host=settings.upstream_pool_max_per_host,
            read_timeout=settings.upstream_read_timeout_s,
            ssl_context=make_ssl_context(settings.ca_bundle),
        )
        self.admission = Admission(settings.max_concurrent_requests, _loop_lag(settings.max_loop_lag_ms))
        self.body_limits = BodyLimits(
            settings.max_request_body_bytes,
            settings.client_body_timeout_s,
            settings.client_body_total_timeout_s,
        )
        self.live_requests: set[trio.CancelScope] = set()
        """The cancel scope of every LLM request in flight (see `cut_streams`)."""
        self.client_watch = ClientWatch()
        """Live client connections, as the server edge reports them, and their requests' scopes."""
        self.cutting = False
        self.blocks = BlockState()
        """Retry-After and high-latency blocks, shared by every request's retry plan."""
        self.failover_counts: Counter[str] = Counter()
        """Failover events since start (`retried`, `failed_over`, `recovered`, `exhausted`), for the
        metrics endpoint to export; only requests under a retry policy touch it."""
        self.routing = Routing(config, self.resolver, self.pool)
        """Preference-based routing; `serve` replaces it with one that has the metrics feed and the
        session store once those are open."""
        self.filters: FilterClient | None = None
        """Calls the configured agents' and filters' endpoints (None when the config has none); one per
        process, so MCP sessions outlive a request."""
        if config.agents:  # the filter client (MCP included) is imported only when the config has any
            from plano_trio.filters.client import FilterClient

            self.filters = FilterClient(self.pool, config.agents, settings.filter_timeout_s)
        self.tracing: Tracing | None = None
        """OpenTelemetry tracing; `serve` sets it while the exporter is open (None: tracing is off)."""
        self.signals: SignalsWorker | None = None
        """The conversation-signals worker; `serve` sets it while it runs (None: signals are off)."""
        models = [_Model(id=name, owned_by=owner) for name, owner in self.resolver.listed_models(config)]
        self.models_body = msgspec.json.encode(_ModelList(data=models))

    def cut_streams(self) -> None:
        """End every request still in flight: the shutdown grace period is over.

        Each one's relay then ends its stream with the client's error event
        (or answers 503 if nothing was sent yet), and the access log says "cut".
        """
        self.cutting = True
        for scope in self.live_requests:
            scope.cancel()

    async def aclose(self) -> None:
        await self.pool.aclose()
