"""`TracingSettings`: Plano's `tracing` mapping, resolved once at load time.

Plano's rules, in the order its CLI applies them:

* tracing is on when `random_sampling` (a percentage) is above zero;
* the collector is `opentracing_grpc_endpoint`, else the environment's
  `OTEL_TRACING_GRPC_ENDPOINT`, else `http://localhost:4317`; whichever
  wins must be `http://host:port` with no path, or startup fails with
  Plano's own messages (`Invalid opentracing_grpc_endpoint <e>, scheme must
  be http` / `..., path must be empty`).  Plano checks the resolved value
  even when tracing is off, and so does this;
* `span_attributes.static` is copied onto every request span;
  `span_attributes.header_prefixes` turns each request header that starts
  with a prefix into an attribute named by the rest of the header name,
  leading dashes dropped and the others turned into dots
  (`x-katanemo-user-id` with prefix `x-katanemo-` → `user.id`).

Where this differs from Plano, on purpose: `random_sampling` is honoured as a
percentage (brightstaff traces every request once it is above zero); a value
above 100 means 100.  Header prefixes match case-insensitively (header names
arrive lowercase, so Plano's `X-Katanemo-` would match nothing), and the
credential headers (`authorization`, `x-api-key`, ...) never become
attributes whatever the prefixes say: a prefix such as `x-` must not copy a
client's key into every span.

`trace_arch_internal` and `sampling_rate` do nothing in Plano and nothing
here; `exporters` (PostHog) is accepted and not acted on (the key is
reported as such).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from .errors import Report
from .values import split_url

DEFAULT_ENDPOINT = "http://localhost:4317"
ENDPOINT_ENV = "OTEL_TRACING_GRPC_ENDPOINT"

EndpointSource = Literal["config", "env", "default"]


class SpanAttributeSettings(msgspec.Struct, frozen=True, kw_only=True):
    static: tuple[tuple[str, str], ...] = ()
    """Attributes copied verbatim onto every request span, in file order."""
    header_prefixes: tuple[bytes, ...] = ()
    """Lowercased header-name prefixes whose headers become attributes."""


class TracingSettings(msgspec.Struct, frozen=True, kw_only=True):
    random_sampling: int = 0
    """Percentage of requests traced (0: tracing off; clamped to 100)."""
    endpoint: str = DEFAULT_ENDPOINT
    """The OTLP/gRPC collector, `http://host:port`."""
    endpoint_source: EndpointSource = "default"
    """Where `endpoint` came from (the exporter lets `OTEL_EXPORTER_OTLP_*` win over the default only)."""
    span_attributes: SpanAttributeSettings = msgspec.field(default_factory=SpanAttributeSettings)

    @property
    def enabled(self) -> bool:
        return self.random_sampling > 0


TRACING_OFF = TracingSettings()


def endpoint_problem(endpoint: str) -> str | None:
    """Plano's message for an unusable collector endpoint, or None when it is `http://host:port`."""
    parts = split_url(endpoint)
    if parts is None or parts.scheme != "http":
        return f"Invalid opentracing_grpc_endpoint {endpoint}, scheme must be http"
    if parts.path and parts.path != "/":
        return f"Invalid opentracing_grpc_endpoint {endpoint}, path must be empty"
    return None


def build_tracing_settings(
    tracing: Mapping[str, Any], env: Mapping[str, str], report: Report
) -> TracingSettings:
    """From the checked `tracing` mapping (types already validated by `keyspec`) and the environment."""
    source: EndpointSource = "default"
    endpoint = DEFAULT_ENDPOINT
    configured = tracing.get("opentracing_grpc_endpoint")
    if configured:
        source, endpoint = "config", str(configured)
    elif env.get(ENDPOINT_ENV):
        source, endpoint = "env", env[ENDPOINT_ENV]
    # A config value still holding `$` names an unset variable, which the loader reports itself.
    if not (source == "config" and "$" in endpoint):
        problem = endpoint_problem(endpoint)
        if problem is not None:
            where = ("tracing", "opentracing_grpc_endpoint") if source == "config" else ()
            report.problem(where, problem if source == "config" else f"{ENDPOINT_ENV}: {problem}")
    attributes: Mapping[str, Any] = tracing.get("span_attributes") or {}
    static: Mapping[str, Any] = attributes.get("static") or {}
    written = attributes.get("header_prefixes") or ()
    prefixes = tuple(str(prefix).lower().encode("latin-1", "replace") for prefix in written)
    sampling = int(tracing.get("random_sampling") or 0)
    return TracingSettings(
        random_sampling=max(0, min(100, sampling)),
        endpoint=endpoint,
        endpoint_source=source,
        span_attributes=SpanAttributeSettings(
            static=tuple((str(k), str(v)) for k, v in static.items()),
            header_prefixes=prefixes,
        ),
    )
