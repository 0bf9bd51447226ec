"""Routing preferences a client sends in its request body (`routing_preferences`), overriding the config's.

A request may carry its own list, in the configuration's shape:
`[{"name", "description", "models": [...], "selection_policy": {"prefer"}}]`.
When present it replaces the configured preferences for that request only;
an empty list means "no routes" (the router is not asked and the request's
own model is used).  The key has to be removed from the body before it goes
upstream; that is the caller's job.

Plano ignores a list it cannot read (it logs a warning and routes with the
configuration), which is what `extract_inline_preferences` does by default;
`strict=True` raises `InlinePreferencesError` instead, for a caller that
prefers telling the client.  Serde's reading of a struct from a JSON array is
not reproduced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plano_trio.config.schema import RoutingPreference

FIELD = "routing_preferences"

_POLICIES = {"cheapest": "cheapest", "fastest": "fastest", "none": None, "": None}
"""`prefer` values Plano accepts; `none`, empty and null all mean "keep the configured order"."""


class InlinePreferencesError(ValueError):
    """A request's `routing_preferences` is not a list of preferences; `message` says where."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def extract_inline_preferences(
    request: Mapping[str, Any], *, strict: bool = False
) -> tuple[RoutingPreference, ...] | None:
    """The request's own routing preferences; None when it has none (or, unless `strict`, unreadable ones)."""
    if not isinstance(request, Mapping) or FIELD not in request:
        return None
    try:
        return parse_inline_preferences(request[FIELD])
    except InlinePreferencesError:
        if strict:
            raise
        return None


def parse_inline_preferences(value: object) -> tuple[RoutingPreference, ...]:
    """A `routing_preferences` value read as Plano's serde reads it; unknown keys are ignored."""
    if not isinstance(value, list):
        raise InlinePreferencesError(f"{FIELD} must be a list")
    return tuple(_preference(index, entry) for index, entry in enumerate(value))


def _preference(index: int, entry: object) -> RoutingPreference:
    where = f"{FIELD}[{index}]"
    if not isinstance(entry, Mapping):
        raise InlinePreferencesError(f"{where} must be an object")
    name = entry.get("name")
    description = entry.get("description")
    models = entry.get("models")
    if not isinstance(name, str):
        raise InlinePreferencesError(f"{where}.name must be a string")
    if not isinstance(description, str):
        raise InlinePreferencesError(f"{where}.description must be a string")
    if not isinstance(models, list) or not all(isinstance(model, str) for model in models):
        raise InlinePreferencesError(f"{where}.models must be a list of strings")
    return RoutingPreference(
        name=name, description=description, models=tuple(models), prefer=_prefer(where, entry)
    )


def _prefer(where: str, entry: Mapping[str, Any]) -> str | None:
    if "selection_policy" not in entry:
        return None
    policy = entry["selection_policy"]
    if not isinstance(policy, Mapping):
        raise InlinePreferencesError(f"{where}.selection_policy must be an object")
    prefer = policy.get("prefer")
    if prefer is None:
        return None
    if not isinstance(prefer, str) or prefer not in _POLICIES:
        raise InlinePreferencesError(f"{where}.selection_policy.prefer must be cheapest, fastest or none")
    return _POLICIES[prefer]
