"""The child spans stages record, named and attributed as Plano's are (pure).

Each function takes plain values, so the packages below the gateway (the
filter client) can record their own calls without knowing the gateway.

* a filter call: brightstaff's `execute_raw_filter (<id>)` (HTTP) or
  `execute_mcp_filter_raw (<id>)` (MCP), service `plano(filter)`, with the
  fields brightstaff's `#[instrument]` gives it (`agent_id`, `agent_url`,
  `filter_name`, `bytes_len`);
* an agent call: `<agent> /v1/chat/completions`, service `plano(agent)`,
  with `agent_id` and `message_count`;
* an upstream attempt: Plano's Envoy names its hop to the provider
  `POST <authority><path>` under service `plano(outbound)`; one such span
  per attempt here, with Envoy's tag names (`upstream_cluster`,
  `request_size`, `response_size`, `guid:x-request-id`).  It carries no
  `llm.model`, so `planoai obs` (which counts every span that has one as a
  call) counts each request once.

URLs in attributes never carry credentials or a query (`public_url`).
"""

from __future__ import annotations

from plano_trio.config.values import split_url
from plano_trio.telemetry import names
from plano_trio.telemetry.record import Attributes, Pending, RequestTrace, Shared, SharedAttributes

_UPSTREAM_SHARED: SharedAttributes[tuple[str, str, bytes, str], tuple[str, Shared]] = SharedAttributes()
"""An upstream attempt's span name and the attributes every attempt to the same URL shares."""


def public_url(url: str) -> str:
    """`url` without user info or query (either may hold a token)."""
    parts = split_url(url)
    if parts is None or not parts.hostname:
        return "<unparsable url>"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def filter_call(
    trace: RequestTrace,
    pending: Pending,
    filter_id: str,
    filter_type: str,
    url: str,
    bytes_len: int,
    error: str | None,
) -> None:
    step = "execute_mcp_filter_raw" if filter_type == "mcp" else "execute_raw_filter"
    attributes: Attributes = {
        "agent_id": filter_id,
        "agent_url": public_url(url),
        "filter_name": filter_id,
        "bytes_len": bytes_len,
        names.SERVICE_OVERRIDE: names.FILTER,
    }
    trace.end(pending, f"{step} ({filter_id})", names.FILTER, attributes, error)


def agent_call(
    trace: RequestTrace, pending: Pending, agent_id: str, message_count: int, error: str | None
) -> None:
    attributes: Attributes = {
        "agent_id": agent_id,
        "message_count": message_count,
        **trace.custom,
        names.SERVICE_OVERRIDE: names.AGENT,
    }
    trace.end(pending, f"{agent_id} /v1/chat/completions", names.AGENT, attributes, error)


def upstream_attempt(
    trace: RequestTrace,
    span_id: int,
    start: float,
    *,
    scheme: str,
    authority: str,
    target: bytes,
    provider: str,
    status: int,
    request_size: int,
    response_size: int,
    request_id: str,
    error: str | None,
) -> None:
    key = (scheme, authority, target, provider)
    made = _UPSTREAM_SHARED.get(key)
    if made is None:
        path = target.split(b"?", 1)[0].decode("ascii", "replace")
        shared: Shared = {
            names.HTTP_METHOD: "POST",
            names.HTTP_URL: f"{scheme}://{authority}{path}",
            names.HTTP_TARGET: path,
            "upstream_cluster": provider,
            names.COMPONENT: "proxy",
        }
        made = _UPSTREAM_SHARED.add(key, (f"POST {authority}{path}", shared))
    attributes: Attributes = {
        "request_size": request_size,
        "response_size": response_size,
        "guid:x-request-id": request_id,
    }
    if status:
        attributes[names.HTTP_STATUS_CODE] = status
    name, shared = made
    trace.end((span_id, start), name, names.OUTBOUND, attributes, error, "client", shared=shared)
