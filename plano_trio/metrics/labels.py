"""Label values: brightstaff's fixed sets, and the pure rules that map a request onto them.

Every label value the gateway emits is either one of the constants below or
a configured name (provider, model, route) passed through `LabelBudget`, so
a client cannot grow the number of series: a hostile path, method or model
name lands in `not_found`, `OTHER` or `other`.  Names and values are
brightstaff's (`crates/brightstaff/src/metrics/labels.rs`), so Plano's
Grafana dashboard reads ours unchanged; the handlers brightstaff never sees
(Envoy answers `/healthz` in front of it) get values of our own.
"""

from __future__ import annotations

from typing import Final, Literal

from plano_trio.signals.report import Quality, SignalType

ListenerKind = Literal["model", "agent"]

# `handler`: which route served the request (brightstaff_http_*).
AGENT_CHAT = "agent_chat"
ROUTING_DECISION = "routing_decision"
LLM_CHAT = "llm_chat"
LIST_MODELS = "list_models"
CORS_PREFLIGHT = "cors_preflight"
NOT_FOUND = "not_found"
# Ours, for routes brightstaff does not serve.
HEALTHZ = "healthz"
DEBUG = "debug"
STORED_RESPONSES = "stored_responses"

SIGNAL_QUALITIES = frozenset(quality.value for quality in Quality)
"""`quality` of plano_trio_signals_quality_total: the five bands."""
SIGNAL_TYPES = frozenset(kind.value for kind in SignalType)
"""`type` of plano_trio_signals_total: the 25 leaf signal types."""

LLM_PATHS = frozenset({"/v1/chat/completions", "/v1/messages", "/v1/responses"})
"""The three client APIs' paths, as brightstaff's `handler_label_for` matches them."""

# `error_class` of brightstaff_llm_upstream_requests_total.
ERR_NONE: Final = "none"
ERR_TIMEOUT: Final = "timeout"
ERR_CONNECT: Final = "connect"
ERR_PARSE: Final = "parse"
ERR_OTHER: Final = "other"
ERR_STREAM: Final = "stream"
ErrorClass = Literal["none", "timeout", "connect", "parse", "other", "stream"]

# `route` of brightstaff_router_decisions_total: which endpoint asked for the decision.
ROUTE_AGENT = "agent"
ROUTE_ROUTING = "routing"
ROUTE_LLM = "llm"

# `kind` of brightstaff_llm_tokens_total.
TOKENS_PROMPT = "prompt"
TOKENS_COMPLETION = "completion"
TOKENS_CACHE_READ = "cache_read"
TOKENS_CACHE_WRITE = "cache_write"

# `outcome` of brightstaff_routing_service_requests_total.
DECISION_SERVED = "decision_served"
NO_CANDIDATES = "no_candidates"
POLICY_ERROR = "policy_error"

# `outcome` of brightstaff_prompt_cache_requests_total.
CACHE_HIT = "hit"
CACHE_MISS = "miss"

OTHER = "other"
"""What a label value becomes once its family has seen `LabelBudget.limit` distinct values."""

_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


def handler_label(kind: ListenerKind, method: str, path: str) -> str:
    """brightstaff's `handler_label_for`, over the routes plano-trio serves.

    On an agent listener the three LLM paths (bare, or under `/agents` as
    Plano's Envoy forwards them) are `agent_chat`.  On a model listener they
    are `llm_chat` for POST only, as brightstaff matches on the method too;
    `/routing/v1/...` is `routing_decision` whatever the method.
    """
    if kind == "agent":
        bare = path.removeprefix("/agents")
        if bare in LLM_PATHS:
            return AGENT_CHAT
        return HEALTHZ if path == "/healthz" else NOT_FOUND
    if path in LLM_PATHS:
        return LLM_CHAT if method == "POST" else NOT_FOUND
    if path.startswith("/routing/") and path.removeprefix("/routing") in LLM_PATHS:
        return ROUTING_DECISION
    if path == "/v1/models":
        if method == "GET":
            return LIST_MODELS
        return CORS_PREFLIGHT if method == "OPTIONS" else NOT_FOUND
    if path == "/healthz":
        return HEALTHZ
    if path.startswith("/debug/"):
        return DEBUG
    if path.startswith("/v1/responses/"):
        return STORED_RESPONSES
    return NOT_FOUND


def method_label(method: str) -> str:
    """The request method, or `OTHER` for anything outside brightstaff's list."""
    return method if method in _METHODS else "OTHER"


def status_class(status: int) -> str:
    """`2xx`, `4xx`, ... as brightstaff buckets a status; `other` outside 100-599."""
    return _CLASSES[status // 100 - 1] if 100 <= status <= 599 else "other"


def upstream_status_class(status: int) -> str:
    """As `status_class`, but `error` when no status arrived (brightstaff's status 0: send failed)."""
    return "error" if status == 0 else status_class(status)


def split_provider_model(label: str) -> tuple[str, str]:
    """`openai/gpt-4o` -> (`openai`, `gpt-4o`); without a `/` the provider is `unknown`, as Plano's."""
    provider, sep, model = label.partition("/")
    return (provider, model) if sep else ("unknown", label)


class LabelBudget:
    """At most `limit` distinct values for one label; later newcomers become `other`.

    Provider and model labels come from configured names, but a wildcard
    provider (`openai/*`) forwards whatever model id the client sends; each
    new id would be a new series kept for the life of the process.  Values
    are also cut to `max_chars`.
    """

    __slots__ = ("limit", "max_chars", "seen")

    def __init__(self, limit: int = 500, max_chars: int = 128) -> None:
        self.limit = limit
        self.max_chars = max_chars
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        value = value[: self.max_chars]
        if value in self.seen:
            return value
        if len(self.seen) >= self.limit:
            return OTHER
        self.seen.add(value)
        return value
