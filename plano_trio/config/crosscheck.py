"""Checks across sections that Plano's CLI makes fatal at startup (agent ids, filter references,
endpoints, routing and metric sources; the tracing endpoint is checked in `tracing_settings`).

Some of these sections (prompt targets, endpoints) are not acted on by plano-trio yet, but a file
Plano would refuse to start with should not start here either: once those features land, the same
file must keep meaning the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from .errors import Report
from .schema import AgentEndpoint
from .shape import valid_items
from .state_settings import StateConfigError, StateSettings, connection_string_problem


def agent_ids(top: Mapping[str, Any], report: Report) -> set[str]:
    """Ids of `agents` + `filters`; they share one namespace (Envoy cluster names)."""
    seen: set[str] = set()
    for section in ("agents", "filters"):
        for index, entry in valid_items(top.get(section, [])):
            agent_id: str = entry["id"]
            if agent_id in seen:
                report.problem(
                    (section, index, "id"),
                    f"Duplicate agent id {agent_id}, please provide unique id for each agent",
                )
            seen.add(agent_id)
    return seen


def check_listener_filters(listeners: Sequence[Any], ids: set[str], report: Report) -> None:
    """Listener `input_filters` / `output_filters` must name an agent or filter."""
    available = ", ".join(sorted(ids))
    for index, listener in valid_items(listeners):
        for key in ("input_filters", "output_filters"):
            for ref_index, ref in valid_items(listener.get(key, [])):
                if ref not in ids:
                    report.problem(
                        ("listeners", index, key, ref_index),
                        f"Listener '{listener['name']}' references {key} id '{ref}' which is not defined "
                        f"in agents or filters. Available ids: {available}",
                    )


def check_prompt_target_endpoints(top: Mapping[str, Any], ids: set[str], report: Report) -> None:
    known = set(top.get("endpoints", {})) | ids
    for index, target in valid_items(top.get("prompt_targets", [])):
        name = target.get("endpoint", {}).get("name")
        if name and name not in known:
            report.problem(
                ("prompt_targets", index, "endpoint", "name"),
                f"Unknown endpoint {name}, please add it in endpoints section in your plano_config.yaml file",
            )


def check_routing(top: Mapping[str, Any], report: Report) -> None:
    """The session cache backend, and the routing budget's need for prices.

    (One source per type, and `prefer` needing its source, are checked where
    the sources are built: `metrics_sources`.)
    """
    routing: Mapping[str, Any] = top.get("routing", {})
    cache = routing.get("session_cache", {})
    if cache.get("type") == "redis" and not cache.get("url"):
        report.problem(("routing", "session_cache"), "session_cache.url is required when type is redis")
    kinds = {source["type"] for _, source in valid_items(top.get("model_metrics_sources", []))}
    if "routing_budget" in routing and "cost" not in kinds:
        report.problem(
            ("routing", "routing_budget"),
            "routing.routing_budget requires a model_metrics_sources entry of type 'cost'",
        )


def build_state_storage(raw: Mapping[str, Any] | None, report: Report) -> StateSettings | None:
    """The checked `state_storage` settings; a connection string libpq cannot parse is reported here,
    with its line, so `validate` catches it and `up` never retries it until the startup timeout."""
    if raw is None:
        return None
    if raw["type"] == "postgres":
        path = ("state_storage", "connection_string")
        conninfo = raw.get("connection_string")
        if not conninfo:
            report.problem(path, "connection_string is required when type is postgres")
            return None
        problem = connection_string_problem(conninfo)
        if problem is not None:
            report.problem(path, f"invalid connection string: {problem}")
            return None
    try:
        return StateSettings.from_mapping(raw)
    except StateConfigError as error:
        report.problem(("state_storage",), str(error).removeprefix("state_storage: "))
        return None


def build_agent_endpoints(top: Mapping[str, Any]) -> tuple[AgentEndpoint, ...]:
    """Top-level `agents` then `filters` as typed endpoints (ids were checked by `agent_ids`)."""
    out: list[AgentEndpoint] = []
    Kind = Literal["agent", "filter"]
    sections: tuple[tuple[str, Kind], ...] = (("agents", "agent"), ("filters", "filter"))
    for section, kind in sections:
        for _, entry in valid_items(top.get(section, [])):
            out.append(
                AgentEndpoint(
                    id=entry["id"],
                    url=entry["url"],
                    type=entry.get("type", "mcp"),
                    tool=entry.get("tool"),
                    transport=entry.get("transport", "streamable-http"),
                    kind=kind,
                )
            )
    return tuple(out)
