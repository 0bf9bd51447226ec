"""Typed, *normalized* configuration: what the rest of plano-trio reads.

The YAML a user writes is Plano's format (several versions, legacy forms, inline
shortcuts).  `plano_trio.config.loader` turns it into these Structs once, at
startup, so no request ever walks a dict.  Every Struct here is frozen: the
config is shared by all requests and must not change under them.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from .access_settings import NO_RATE_LIMITS, InboundAuthSettings, RateLimitSettings
from .metrics_sources import NO_SOURCES, MetricsSources
from .retry import RetryPolicy
from .routing_settings import RoutingSettings
from .state_settings import StateSettings
from .tracing_settings import TRACING_OFF, TracingSettings

ListenerType = Literal["model", "prompt", "agent"]


class ListenerAgent(msgspec.Struct, frozen=True, kw_only=True):
    """One agent an agent listener may hand a conversation to (`listeners[].agents[]`)."""

    id: str
    description: str = ""
    default: bool = False
    input_filters: tuple[str, ...] = ()


class AgentEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """An entry of top-level `agents` or `filters` (one namespace of ids, as in Plano).

    Agents are called as OpenAI Chat endpoints; filters receive a request body
    and return it (possibly changed) over plain HTTP (`type: http`) or as an MCP
    tool call (`type: mcp`, the default).
    """

    id: str
    url: str
    type: Literal["http", "mcp"] = "mcp"
    tool: str | None = None
    """MCP tool name (default: the id)."""
    transport: str = "streamable-http"
    kind: Literal["agent", "filter"] = "filter"
    """Which list it came from (`agents` or `filters`)."""


class Listener(msgspec.Struct, frozen=True, kw_only=True):
    """One listening socket (Plano `listeners[]`)."""

    name: str
    type: ListenerType
    address: str = "0.0.0.0"
    port: int = 12000
    timeout_s: float = 300.0
    """Per-request deadline for the whole upstream exchange (Plano `timeout`, e.g. "30s")."""
    max_retries: int | None = None
    """Plano 0.4.36's listener-level retry of the same model (connect failure, reset, 429, 5xx)."""
    input_filters: tuple[str, ...] = ()
    output_filters: tuple[str, ...] = ()
    agents: tuple[ListenerAgent, ...] = ()
    """Agent listeners: the agents the orchestrator chooses among."""


class ModelProvider(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of `model_providers` after Plano's normalizations (name, prefix aliases, interface)."""

    name: str
    """Public id: what clients send and `/v1/models` lists (defaults to the `model` string)."""
    model: str
    """Bare upstream model id (the part after the first `/`), or `*` for a wildcard provider."""
    provider_interface: str
    """Wire dialect / default host, e.g. `openai`, `groq`, `azure_openai`, `anthropic`."""
    access_key: str | None = None
    default: bool = False
    base_url: str | None = None
    passthrough_auth: bool = False
    http_host: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    internal: bool = False
    """Auto-added by Plano (e.g. `arch-function`); hidden from `/v1/models`."""
    retry_policy: RetryPolicy | None = None
    """Retries and failover when this provider fails (None: a failure is answered as it is)."""

    @property
    def is_wildcard(self) -> bool:
        return self.model == "*"

    @property
    def prefix(self) -> str:
        """The provider prefix the user wrote (`openai` in `openai/gpt-4o`)."""
        return self.name.split("/", 1)[0] if "/" in self.name else self.provider_interface


class RoutingPreference(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str
    models: tuple[str, ...]
    prefer: str | None = None


METRICS_OFF = frozenset({"", "off"})
"""`plano_trio.metrics_bind_address` values that turn the metrics listener off."""


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """plano-trio's own knobs (top-level `plano_trio:` key; not in Plano's schema).

    Documented in README "Config keys beyond Plano".
    """

    graceful_shutdown_s: float = 30.0
    max_request_body_bytes: int = 16 * 1024 * 1024
    upstream_connect_timeout_s: float = 5.0
    upstream_pool_max_per_host: int = 1024
    ca_bundle: str | None = None
    workers: int = 1
    """Processes sharing each listening socket (multi-core); needs postgres or no state storage."""
    max_upstream_body_bytes: int = 32 * 1024 * 1024
    """Most bytes of a provider body held in memory (a whole JSON/error body, or one stream event)."""
    upstream_read_timeout_s: float = 120.0
    """Longest silence between two reads of a provider response once its head arrived."""
    client_body_timeout_s: float = 60.0
    """Longest silence between two reads of a client's request body."""
    client_body_total_timeout_s: float = 120.0
    """Longest a client may take to upload its whole request body."""
    client_send_timeout_s: float = 60.0
    """Longest one write to a client may wait (a client that stops reading is cut off)."""
    max_connections: int = 0
    """Open client connections per listener; 0 derives it from the file-descriptor limit."""
    max_concurrent_requests: int = 1024
    """LLM requests in flight per process; beyond it, 503 + Retry-After at once."""
    max_loop_lag_ms: int | None = None
    """While the event loop runs later than this (ms), new LLM requests get 503 + Retry-After; None: off."""
    filter_timeout_s: float = 30.0
    """Longest one filter call (HTTP, or MCP with its handshake) may take; then the request fails."""
    metrics_bind_address: str | None = None
    """`ip:port` of the Prometheus `/metrics` listener; `""` or `off` disables it; None: Plano's
    `METRICS_BIND_ADDRESS` environment variable, else `0.0.0.0:9092`."""
    signals: bool = True
    """Conversation-quality signals on LLM responses (Plano's `overrides.disable_signals` turns them off)."""
    signals_queue_size: int = 64
    """Conversations waiting for (or in) the signals worker; past it, analyses are skipped and counted."""


class Config(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    listeners: tuple[Listener, ...]
    model_providers: tuple[ModelProvider, ...]
    model_aliases: tuple[tuple[str, str], ...] = ()
    """alias -> target model string; one level, as in Plano: an alias never targets another alias."""
    routing_preferences: tuple[RoutingPreference, ...] = ()
    routing: RoutingSettings = msgspec.field(default_factory=RoutingSettings)
    """The router model, sessions, routing budget and prompt caching (Plano's `routing`, `prompt_caching`)."""
    agents: tuple[AgentEndpoint, ...] = ()
    """Top-level `agents` and `filters`, by id (agents first, then filters, in file order)."""
    metrics_sources: MetricsSources = NO_SOURCES
    """Cost and latency feeds for ranking a route's models and pricing the routing budget."""
    state_storage: StateSettings | None = None
    """Responses API conversation state (Plano's `state_storage` plus our knobs)."""
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    tracing: TracingSettings = TRACING_OFF
    """OpenTelemetry traces (Plano's `tracing`, its collector endpoint resolved from the environment)."""
    inbound_auth: InboundAuthSettings | None = None
    """Client keys every listener asks for (`plano_trio.inbound_auth`; None: no inbound authentication)."""
    ratelimits: RateLimitSettings = NO_RATE_LIMITS
    """Plano's token `ratelimits` and where their buckets live."""
    unsupported: tuple[str, ...] = ()
    """Key paths present in the file that plano-trio accepts but does not act on yet."""
    warnings: tuple[str, ...] = ()
    """Non-fatal findings (e.g. both `access_key` and `passthrough_auth`)."""

    @property
    def model_listener(self) -> Listener | None:
        return next((lst for lst in self.listeners if lst.type == "model"), None)
