"""Span, service and attribute names, spelled as Plano's brightstaff spells them.

`planoai trace` and `planoai obs` (and anyone's dashboards) read these
strings, so they are Plano's (`crates/brightstaff/src/tracing/constants.rs`),
not OpenTelemetry's newer semantic conventions.  Each span carries its
service as the attribute `service.name.override` too, as brightstaff's spans
do; the exporter also puts it in the span's resource (`service.name`),
which is what the viewers group by.
"""

from __future__ import annotations

SERVICE_OVERRIDE = "service.name.override"

# Services (brightstaff's `operation_component`, plus Envoy's outbound hop).
LLM = "plano(llm)"
ROUTING = "plano(routing)"
ORCHESTRATOR = "plano(orchestrator)"
AGENT = "plano(agent)"
FILTER = "plano(filter)"
OUTBOUND = "plano(outbound)"
"""Plano's Envoy names its hop to the provider so; here each upstream attempt is such a span."""
DEFAULT_SERVICE = "plano"
"""Spans without a service of their own (state load/store), unless `OTEL_SERVICE_NAME` says otherwise."""

# Span names brightstaff gives before renaming them.
LLM_SPAN = "llm"
ROUTING_SPAN = "routing"
ROUTING_DECISION_SPAN = "routing_decision"
ORCHESTRATOR_SPAN = "(orchestrator)"

# http.*
HTTP_METHOD = "http.method"
HTTP_PATH = "http.path"
HTTP_TARGET = "http.target"
HTTP_STATUS_CODE = "http.status_code"
HTTP_URL = "http.url"

# llm.*
LLM_MODEL = "llm.model"
LLM_PROVIDER = "llm.provider"
LLM_IS_STREAMING = "llm.is_streaming"
LLM_RESPONSE_BYTES = "llm.response_bytes"
LLM_DURATION_MS = "llm.duration_ms"
LLM_TTFT_MS = "llm.time_to_first_token"
LLM_TEMPERATURE = "llm.temperature"
LLM_TOOLS = "llm.tools"
LLM_USER_MESSAGE_PREVIEW = "llm.user_message_preview"
USAGE_PROMPT = "llm.usage.prompt_tokens"
USAGE_COMPLETION = "llm.usage.completion_tokens"
USAGE_TOTAL = "llm.usage.total_tokens"
USAGE_CACHED_INPUT = "llm.usage.cached_input_tokens"
USAGE_REASONING = "llm.usage.reasoning_tokens"

# Routing and sessions.
MODEL_REQUESTED = "model.requested"
MODEL_ALIAS_RESOLVED = "model.alias_resolved"
ROUTE_SELECTED_MODEL = "route.selected_model"
ROUTING_DETERMINATION_MS = "routing.determination_ms"
SESSION_ID = "plano.session_id"
ROUTE_NAME = "plano.route.name"
ROUTING_SKIPPED = "plano.routing.skipped"

# Agents.
SELECTION_LISTENER = "selection.listener"
SELECTION_AGENT_COUNT = "selection.agent_count"
SELECTION_AGENTS = "selection.agents"
SELECTION_DETERMINATION_MS = "selection.determination_ms"

# Others.
COMPONENT = "component"
REQUEST_ID = "request_id"
ERROR_MESSAGE = "error.message"
DROPPED_CHILD_SPANS = "plano_trio.dropped_child_spans"
"""Ours: child spans past the per-request bound (`record.MAX_CHILD_SPANS`)."""
