"""`listeners` (list form or the legacy mapping form) -> `Listener`s.

Plano always has a model listener: if the file declares none, the CLI adds
`egress_traffic` on 0.0.0.0:12000 (`cli/planoai/utils.py::convert_legacy_listeners`).
The legacy form `{egress_traffic: {...}, ingress_traffic: {...}}` maps to a
model listener and (if given) a prompt listener with the same defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import KeyPath, Report
from .schema import Listener, ListenerAgent, ListenerType
from .shape import INVALID, valid_items
from .values import DURATION_HINT, parse_duration

_DEFAULTS: dict[str, tuple[int | None, float]] = {
    # listener type → (default port, default timeout in seconds)
    "model": (12000, 300.0),
    "prompt": (10000, 300.0),
    # Agent listeners have no default port in Plano (its Envoy template needs one).
    "agent": (None, 30.0),
}

_WILDCARD_ADDRESSES = {"0.0.0.0", "::", ""}


def default_model_listener() -> Listener:
    return Listener(name="egress_traffic", type="model", address="0.0.0.0", port=12000, timeout_s=300.0)


def _timeout(raw: Any, path: KeyPath, default: float, report: Report) -> float:
    if raw is None:
        return default
    seconds = parse_duration(raw)
    if seconds is None:
        report.problem(path, f"invalid duration {raw!r}: {DURATION_HINT}")
        return default
    return seconds


def build_listeners(raw: Any, report: Report, provider_count: int) -> tuple[list[Listener], bool]:
    """Returns the listeners and whether the legacy mapping form was used."""
    if isinstance(raw, dict):
        return _from_legacy(raw, report, provider_count), True
    placed = _from_list(raw if isinstance(raw, list) else [], report)
    if not any(listener.type == "model" for _, listener in placed):
        placed.append((("listeners",), default_model_listener()))
    _check_unique(placed, report)
    return [listener for _, listener in placed], False


def _from_legacy(raw: dict[str, Any], report: Report, provider_count: int) -> list[Listener]:
    if provider_count == 0:
        report.problem(("listeners",), "model_providers cannot be empty when using legacy format")
    out: list[Listener] = []
    legacy: tuple[tuple[str, ListenerType, int], ...] = (
        ("egress_traffic", "model", 12000),
        ("ingress_traffic", "prompt", 10000),
    )
    for key, kind, port in legacy:
        section = raw.get(key)
        if kind == "prompt" and not section:
            continue
        section = section or {}
        out.append(
            Listener(
                name=key,
                type=kind,
                address=section.get("address", "0.0.0.0"),
                port=section.get("port", port),
                timeout_s=_timeout(section.get("timeout"), ("listeners", key, "timeout"), 300.0, report),
            )
        )
    return out


def _from_list(raw: Sequence[Any], report: Report) -> list[tuple[KeyPath, Listener]]:
    out: list[tuple[KeyPath, Listener]] = []
    model_count = sum(1 for item in raw if item is not INVALID and item["type"] == "model")
    seen_model = False
    for index, item in valid_items(raw):
        path = ("listeners", index)
        kind: ListenerType = item["type"]
        default_port, default_timeout = _DEFAULTS[kind]
        if kind == "model":
            if seen_model:
                report.problem((*path, "type"), f"only one model listener is allowed, found {model_count}")
            seen_model = True
        port = item.get("port", default_port)
        if port is None:
            report.problem((*path, "port"), f"missing required key 'port' (needed for {kind} listeners)")
            continue
        listener = Listener(
            name=item["name"],
            type=kind,
            address=item.get("address", "0.0.0.0"),
            port=port,
            timeout_s=_timeout(item.get("timeout"), (*path, "timeout"), default_timeout, report),
            max_retries=item.get("max_retries"),
            input_filters=tuple(ref for _, ref in valid_items(item.get("input_filters", []))),
            output_filters=tuple(ref for _, ref in valid_items(item.get("output_filters", []))),
            agents=tuple(
                ListenerAgent(
                    id=agent["id"],
                    description=agent.get("description", ""),
                    default=bool(agent.get("default", False)),
                    input_filters=tuple(ref for _, ref in valid_items(agent.get("input_filters", []))),
                )
                for _, agent in valid_items(item.get("agents", []))
            ),
        )
        out.append((path, listener))
    return out


def _check_unique(placed: Sequence[tuple[KeyPath, Listener]], report: Report) -> None:
    """Two listeners with one name or one socket cannot both work."""
    for index, (path, listener) in enumerate(placed):
        for _, other in placed[:index]:
            if listener.name == other.name:
                report.problem((*path, "name"), f"Duplicate listener name {listener.name!r}")
            elif (
                listener.port != 0
                and listener.port == other.port
                and (
                    listener.address == other.address
                    or {listener.address, other.address} & _WILDCARD_ADDRESSES
                )
            ):
                report.problem(
                    (*path, "port"),
                    f"port {listener.port} is already used by listener {other.name!r}",
                )
