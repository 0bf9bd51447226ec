"""The set of keys a Plano config may contain, and which of them we act on.

Written from Plano's `config/plano_config_schema.yaml` (release 0.4.36): the
same keys, types, enums, ranges and required keys, with
`additionalProperties: false` wherever Plano has it, so a file Plano accepts
passes here and a typo Plano rejects is rejected here too.

`unsupported=True` marks keys that are valid Plano but that plano-trio does not
act on yet; their presence is reported (the CLI logs them once) rather than
rejected.  The top-level `plano_trio:` key is ours, not Plano's.
"""

from __future__ import annotations

from .shape import (
    Bool,
    ByType,
    Enum,
    Field,
    Int,
    ListOf,
    ListOrMap,
    MapOf,
    Num,
    Obj,
    Scalar,
    Spec,
    Str,
    Tagged,
)

VERSIONS = ("v0.1", "v0.1.0", "0.1-beta", "0.2.0", "v0.3.0", "v0.4.0")

PROVIDER_INTERFACES = (
    "plano",
    "deepseek",
    "groq",
    "mistral",
    "openai",
    "xiaomi",
    "gemini",
    "chatgpt",
    "digitalocean",
    "vercel",
    "openrouter",
    "edenai",
    "moonshotai",
)
"""Values allowed for an explicit `provider_interface` (only used with unknown prefixes)."""


def _obj(**fields: Field) -> Obj:
    return Obj(fields=dict(fields))


def _req(spec: Spec) -> Field:
    return Field(spec, required=True)


def _opt(spec: Spec) -> Field:
    return Field(spec)


def _later(spec: Spec) -> Field:
    """A valid Plano key that plano-trio does not act on yet."""
    return Field(spec, unsupported=True)


_STRINGS = ListOf(Str())

_INLINE_ROUTING_PREFERENCE = _obj(name=_req(Str()), description=_req(Str()))

_STATUS_CODE = ByType({int: Int(100, 599), str: Str()}, "an integer status code or a range string")
"""An integer code, or a `"start-end"` range string (parsed in retry_policy.py)."""

_STRATEGY = Enum("same_model", "same_provider", "different_provider")
_BLOCK_SCOPE = Enum("model", "provider")
_APPLY_TO = Enum("global", "request")

RETRY_POLICY = _obj(
    fallback_models=_opt(_STRINGS),
    default_strategy=_opt(_STRATEGY),
    default_max_attempts=_opt(Int(0)),
    on_status_codes=_opt(
        ListOf(
            _obj(
                codes=_req(ListOf(_STATUS_CODE)),
                strategy=_req(_STRATEGY),
                max_attempts=_req(Int(0)),
            )
        )
    ),
    on_timeout=_opt(_obj(strategy=_req(_STRATEGY), max_attempts=_req(Int(1)))),
    on_high_latency=_opt(
        _obj(
            threshold_ms=_req(Int(1)),
            measure=_opt(Enum("ttfb", "total")),
            strategy=_req(_STRATEGY),
            max_attempts=_req(Int(1)),
            block_duration_seconds=_req(Int(1)),
            scope=_opt(_BLOCK_SCOPE),
            apply_to=_opt(_APPLY_TO),
            min_triggers=_opt(Int(1)),
            trigger_window_seconds=_opt(Int(1)),
        )
    ),
    backoff=_opt(
        _obj(
            apply_to=_req(Enum("same_model", "same_provider", "global")),
            base_ms=_opt(Int(1)),
            max_ms=_opt(Int(1)),
            jitter=_opt(Bool()),
        )
    ),
    retry_after_handling=_opt(
        _obj(scope=_opt(_BLOCK_SCOPE), apply_to=_opt(_APPLY_TO), max_retry_after_seconds=_opt(Int(1)))
    ),
    max_retry_duration_ms=_opt(Int(0)),
)
"""`model_providers[].retry_policy`, as in the retry design proposed upstream for Plano; the
checks that span several keys (ranges, `max_ms > base_ms`, fallbacks) are in retry_policy.py."""

PROVIDER = _obj(
    name=_opt(Str()),
    access_key=_opt(Str()),
    model=_req(Str()),
    default=_opt(Bool()),
    base_url=_opt(Str()),
    passthrough_auth=_opt(Bool()),
    http_host=_opt(Str()),
    provider_interface=_opt(Enum(*PROVIDER_INTERFACES)),
    headers=_opt(MapOf(Str())),
    retry_policy=_opt(RETRY_POLICY),
    # Deprecated inline form; lifted into top-level routing_preferences (v0.3 configs).
    routing_preferences=_opt(ListOf(_INLINE_ROUTING_PREFERENCE)),
)

LISTENER = _obj(
    name=_req(Str()),
    type=_req(Enum("model", "prompt", "agent")),
    port=_opt(Int(0, 65535)),
    address=_opt(Str()),
    timeout=_opt(Str()),
    router=_opt(Enum("plano_orchestrator_v1")),
    max_retries=_opt(Int(0)),
    agents=_opt(
        ListOf(
            _obj(
                id=_req(Str()),
                description=_req(Str()),
                default=_opt(Bool()),
                input_filters=_opt(_STRINGS),
            )
        )
    ),
    input_filters=_opt(_STRINGS),
    output_filters=_opt(_STRINGS),
)

_LEGACY_LISTENER = _obj(
    address=_opt(Str()),
    port=_opt(Int(0, 65535)),
    message_format=_opt(Enum("openai")),
    timeout=_opt(Str()),
)

LISTENERS = ListOrMap(
    as_list=ListOf(LISTENER),
    as_map=_obj(ingress_traffic=_opt(_LEGACY_LISTENER), egress_traffic=_opt(_LEGACY_LISTENER)),
)

_ENDPOINT = _obj(
    endpoint=_req(Str()),
    connect_timeout=_opt(Str()),
    protocol=_opt(Enum("http", "https")),
    http_host=_opt(Str()),
    prefix_affinity=_opt(Bool()),
)

_PROMPT_TARGET = _obj(
    name=_req(Str()),
    default=_opt(Bool()),
    description=_req(Str()),
    auto_llm_dispatch_on_response=_opt(Bool()),
    parameters=_opt(
        ListOf(
            _obj(
                name=_req(Str()),
                required=_opt(Bool()),
                default=_opt(Scalar()),
                description=_req(Str()),
                type=_req(Str()),
                enum=_opt(ListOf(Scalar())),
                in_path=_opt(Bool()),
                format=_opt(Str()),
            )
        )
    ),
    endpoint=_opt(
        _obj(
            name=_req(Str()),
            path=_req(Str()),
            http_method=_opt(Enum("GET", "POST")),
            http_headers=_opt(MapOf(Str())),
        )
    ),
    system_prompt=_opt(Str()),
)

_TOKEN_LIMIT = _obj(tokens=_req(Int()), unit=_req(Enum("second", "minute", "hour", "day")))
"""Plano's schema says `unit: string`; its Rust side accepts only these four (anything else fails at run
time), so they are checked here."""

_RATELIMIT = _obj(
    model=_req(Str()),
    selector=_req(_obj(key=_req(Str()), value=_req(Str()))),
    limit=_req(_TOKEN_LIMIT),
)

INBOUND_KEY = _obj(
    name=_req(Str()),
    key=_opt(Str()),
    key_sha256=_opt(Str()),
    models=_opt(_STRINGS),
    rate_limit=_opt(_TOKEN_LIMIT),
)
"""One entry of `plano_trio.inbound_auth.keys` (and of a keys file); config/access_settings.py."""

_TRACING = _obj(
    random_sampling=_opt(Int()),
    trace_arch_internal=_opt(Bool()),
    opentracing_grpc_endpoint=_opt(Str()),
    span_attributes=_opt(_obj(header_prefixes=_opt(_STRINGS), static=_opt(MapOf(Str())))),
    exporters=_later(
        ListOf(
            Tagged(
                "type",
                {
                    "posthog": _obj(
                        type=_req(Str()),
                        url=_req(Str()),
                        api_key=_req(Str()),
                        distinct_id_header=_opt(Str()),
                        capture_messages=_opt(Bool()),
                    )
                },
            )
        )
    ),
)

_ROUTING = _obj(
    llm_provider=_opt(Str()),
    model=_opt(Str()),
    session_ttl_seconds=_opt(Int(1)),
    session_max_entries=_opt(Int(1, 10000)),
    session_cache=_opt(_obj(type=_opt(Enum("memory", "redis")), url=_opt(Str()), tenant_header=_opt(Str()))),
    routing_budget=_opt(
        _obj(
            max_switch_spend_pct=_req(Num(0, 100)),
            replenish_on_rebind=_opt(Bool()),
            cache_read_discount=_opt(Num(0, 1)),
            record_counterfactual=_opt(Bool()),
        )
    ),
    route_on_user_only=_opt(Bool()),
)

_PROMPT_CACHING = _obj(
    enabled=_opt(Bool()),
    session_affinity=_opt(Bool()),
    inject_cache_control=_opt(Bool()),
    min_prefix_tokens=_opt(Int(1)),
    session_ttl_seconds=_opt(Int(1)),
)

_PROMPT_GUARDS = _obj(
    input_guards=_opt(_obj(jailbreak=_req(_obj(on_exception=_req(_obj(message=_req(Str())))))))
)

ROUTING_PREFERENCE = _obj(
    name=_req(Str()),
    description=_req(Str()),
    models=_req(ListOf(Str(), min_items=1)),
    selection_policy=_opt(_obj(prefer=_req(Enum("cheapest", "fastest", "none")))),
)

_METRICS_SOURCE = Tagged(
    "type",
    {
        "cost": _obj(
            type=_req(Str()),
            provider=_req(Enum("digitalocean", "models.dev")),
            url=_opt(Str()),
            refresh_interval=_opt(Int(1)),
            model_aliases=_opt(MapOf(Str())),
        ),
        "latency": _obj(
            type=_req(Str()),
            provider=_req(Enum("prometheus")),
            url=_req(Str()),
            query=_req(Str()),
            refresh_interval=_opt(Int(1)),
        ),
    },
)

_OVERRIDES = _obj(
    prompt_target_intent_matching_threshold=_later(Num()),
    optimize_context_window=_later(Bool()),
    use_agent_orchestrator=_later(Bool()),
    disable_signals=_opt(Bool()),
    upstream_connect_timeout=_opt(Str()),
    upstream_tls_ca_path=_opt(Str()),
    llm_routing_model=_opt(Str()),
    agent_orchestration_model=_opt(Str()),
    orchestrator_model_context_length=_opt(Int(1)),
)

PLANO_TRIO = _obj(
    graceful_shutdown_s=_opt(Num(0)),
    max_request_body_bytes=_opt(Int(1)),
    upstream_connect_timeout_s=_opt(Num(0.001)),
    upstream_pool_max_per_host=_opt(Int(1)),
    ca_bundle=_opt(Str()),
    metrics_bind_address=_opt(Str()),
    workers=_opt(Int(1)),
    max_upstream_body_bytes=_opt(Int(1024)),
    upstream_read_timeout_s=_opt(Num(0.001)),
    client_body_timeout_s=_opt(Num(0.001)),
    client_body_total_timeout_s=_opt(Num(0.001)),
    client_send_timeout_s=_opt(Num(0.001)),
    max_connections=_opt(Int(0)),
    max_concurrent_requests=_opt(Int(1)),
    max_loop_lag_ms=_opt(Int(1)),
    filter_timeout_s=_opt(Num(0.001)),
    router_timeout_s=_opt(Num(0.001)),
    session_cache_timeout_s=_opt(Num(0.001)),
    session_cache_client=_opt(Enum("native", "redis-py")),
    inbound_auth=_opt(_obj(keys=_opt(ListOf(INBOUND_KEY)), keys_file=_opt(Str()))),
    ratelimit_store=_opt(Str()),
    ratelimit_timeout_s=_opt(Num(0.001)),
    ratelimit_max_buckets=_opt(Int(1)),
    signals_queue_size=_opt(Int(1)),
)
"""plano-trio's own knobs (`ServerSettings`, `RoutingSettings`, `access_settings`)."""

STATE_STORAGE = _obj(
    type=_req(Enum("memory", "postgres")),
    connection_string=_opt(Str()),
    # plano-trio's own knobs (config/state_settings.py documents them):
    queue_size=_opt(Int(1)),
    max_batch=_opt(Int(1)),
    consistency_window_s=_opt(Num(0)),
    ttl_s=_opt(Num(0.001)),
    cleanup_interval_s=_opt(Num(0.001)),
    memory_max_entries=_opt(Int(1)),
    memory_max_bytes=_opt(Int(1)),
    cache_max_bytes=_opt(Int(0)),
    startup_timeout_s=_opt(Num(0.001)),
    drain_timeout_s=_opt(Num(0)),
    op_timeout_s=_opt(Num(0.001)),
    read_pool_size=_opt(Int(1)),
)
"""Plano's `state_storage` plus plano-trio's write-behind and retention knobs."""

TOP_LEVEL = Obj(
    keep_partial=True,
    fields=dict(
        version=_req(Enum(*VERSIONS)),
        listeners=_req(LISTENERS),
        model_providers=_opt(ListOf(PROVIDER)),
        llm_providers=_opt(ListOf(PROVIDER)),
        model_aliases=_opt(MapOf(_obj(target=_req(Str())))),
        state_storage=_opt(STATE_STORAGE),
        overrides=_opt(_OVERRIDES),
        plano_trio=_opt(PLANO_TRIO),
        routing_preferences=_opt(ListOf(ROUTING_PREFERENCE)),
        agents=_opt(ListOf(_obj(id=_req(Str()), url=_req(Str())))),
        filters=_opt(
            ListOf(
                _obj(
                    id=_req(Str()),
                    url=_req(Str()),
                    type=_opt(Enum("mcp", "http")),
                    transport=_opt(Enum("streamable-http")),
                    tool=_opt(Str()),
                )
            )
        ),
        endpoints=_later(MapOf(_ENDPOINT)),
        model_metrics_sources=_opt(ListOf(_METRICS_SOURCE)),
        routing=_opt(_ROUTING),
        prompt_caching=_opt(_PROMPT_CACHING),
        tracing=_opt(_TRACING),
        ratelimits=_opt(ListOf(_RATELIMIT)),
        prompt_targets=_later(ListOf(_PROMPT_TARGET)),
        system_prompt=_later(Str()),
        prompt_guards=_later(_PROMPT_GUARDS),
        mode=_later(Enum("llm", "prompt")),
    ),
)
"""The whole file."""
