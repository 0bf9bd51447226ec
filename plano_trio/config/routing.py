"""Routing preferences and model aliases: names that must point at declared providers.

Both are checked after the providers are built, against the provider
`Catalog`, so that a typo in an alias target fails at startup rather than as a
400 on the first request that uses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import KeyPath, Report
from .providers import Catalog
from .schema import RoutingPreference
from .shape import valid_items
from .values import version_tuple


def lift_inline_preferences(
    version: str, providers: Sequence[Any], providers_key: str, top_level: Sequence[Any], report: Report
) -> list[tuple[KeyPath, dict[str, Any]]]:
    """Plano's v0.3 -> v0.4 migration of per-provider `routing_preferences`.

    Returns the top-level preferences (with the key path each came from).  For
    configs older than v0.4.0, inline preferences are lifted to the top level:
    the same name on several providers becomes one entry whose `models` lists
    every provider's full model string; the first description wins; a
    top-level entry of the same name wins over inline ones.  From v0.4.0 on
    Plano leaves inline preferences where they are and nothing reads them, so
    we only warn.
    """
    entries: list[tuple[KeyPath, dict[str, Any]]] = [
        (("routing_preferences", index), dict(pref)) for index, pref in valid_items(top_level)
    ]
    inline = [
        (index, provider) for index, provider in valid_items(providers) if provider.get("routing_preferences")
    ]
    if not inline:
        return entries
    if version_tuple(version) >= (0, 4, 0):
        for index, _ in inline:
            report.warn(
                (providers_key, index, "routing_preferences"),
                "inline routing_preferences are ignored from v0.4.0 on; "
                "declare them in the top-level routing_preferences list",
            )
        return entries

    existing = {entry["name"] for _, entry in entries}
    lifted: dict[str, tuple[KeyPath, dict[str, Any]]] = {}
    for index, provider in inline:
        model: str = provider["model"]
        path = (providers_key, index, "routing_preferences")
        if "/" in model and model.split("/", 1)[1].strip() == "*":
            report.problem(
                path,
                f"Model {model} has routing_preferences but uses wildcard (*). "
                "Models with routing preferences cannot be wildcards.",
            )
            continue
        for pref_index, pref in valid_items(provider["routing_preferences"]):
            name: str = pref["name"]
            if name in existing:
                continue
            if name not in lifted:
                lifted[name] = (
                    (*path, pref_index),
                    {"name": name, "description": pref["description"], "models": [model]},
                )
                continue
            entry = lifted[name][1]
            if pref["description"] != entry["description"]:
                report.warn(
                    (*path, pref_index),
                    f"routing preference '{name}' has conflicting descriptions across providers; "
                    "keeping the first one",
                )
            if model not in entry["models"]:
                entry["models"].append(model)
    if lifted:
        report.warn(
            (providers_key,),
            "inline routing_preferences under model_providers are deprecated; they were moved to the "
            "top-level routing_preferences list (v0.4.0 form)",
        )
    return entries + list(lifted.values())


def build_routing_preferences(
    entries: Sequence[tuple[KeyPath, dict[str, Any]]], catalog: Catalog, report: Report, check_models: bool
) -> list[RoutingPreference]:
    """Top-level routing preferences: unique names, models that resolve to a provider."""
    seen: set[str] = set()
    out: list[RoutingPreference] = []
    for path, entry in entries:
        name: str = entry["name"]
        if name in seen:
            report.problem(
                (*path, "name"),
                f'Duplicate routing preference name "{name}", please provide unique name for each '
                "routing preference",
            )
            continue
        seen.add(name)
        models: list[str] = [model for _, model in valid_items(entry["models"])]
        if check_models:
            for model_index, model in valid_items(entry["models"]):
                if not catalog.declares(model):
                    report.problem(
                        (*path, "models", model_index),
                        f"routing_preferences route '{name}' references model '{model}' which is not "
                        "declared in model_providers",
                    )
        policy = entry.get("selection_policy") or {}
        out.append(
            RoutingPreference(
                name=name, description=entry["description"], models=tuple(models), prefer=policy.get("prefer")
            )
        )
    return out


def build_aliases(
    raw: Mapping[str, Any], catalog: Catalog, report: Report, check_targets: bool
) -> list[tuple[str, str]]:
    """`model_aliases: {alias: {target: model}}` -> [(alias, target)], targets checked."""
    out: list[tuple[str, str]] = []
    for alias, entry in raw.items():
        target: str = entry["target"]
        if check_targets and not catalog.declares(target):
            report.problem(
                ("model_aliases", alias, "target"),
                f"Model alias '{alias}' targets '{target}' which is not defined as a model. "
                f"Available models: {catalog.available()}",
            )
        out.append((alias, target))
    return out
