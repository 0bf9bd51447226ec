"""`model_metrics_sources`: where `prefer: cheapest` gets prices and `prefer: fastest` gets latencies.

The key shapes (types, enums, `refresh_interval >= 1`) are already checked
by the key spec; this module adds what Plano checks at startup (at most one
source of each type, a cost or latency source for every route that prefers
one) and resolves the defaults: a cost source without `url` reads its
provider's public catalog.  One thing Plano does not check: the URL itself.
Plano hands it to its HTTP client and, when that fails, routes with no data
at all; a typo there should fail at load, with its line, instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from .errors import KeyPath, Report
from .shape import valid_items
from .values import split_url

CostProvider = Literal["digitalocean", "models.dev"]

DIGITALOCEAN_CATALOG_URL = "https://api.digitalocean.com/v2/gen-ai/models/catalog"
MODELS_DEV_URL = "https://models.dev/api.json"
DEFAULT_COST_URLS: Mapping[str, str] = {
    "digitalocean": DIGITALOCEAN_CATALOG_URL,
    "models.dev": MODELS_DEV_URL,
}
"""The catalog a cost source reads when it names no `url`, per provider (Plano's defaults)."""


class CostSource(msgspec.Struct, frozen=True, kw_only=True):
    """A price catalog: models.dev's `api.json` or DigitalOcean's GenAI catalog shape."""

    provider: CostProvider
    url: str
    """http(s):// or file://; the provider's public catalog when the config names none."""
    refresh_interval_s: int | None = None
    """Refetch period; None: fetched once, at startup."""
    model_aliases: tuple[tuple[str, str], ...] = ()
    """(catalog key, Plano model name) pairs: a priced model is filed under the Plano name instead."""


class LatencySource(msgspec.Struct, frozen=True, kw_only=True):
    """A Prometheus server and the instant query whose vector gives one latency per `model_name` label."""

    url: str
    """Base URL of the Prometheus HTTP API (the query goes to `{url}/api/v1/query`)."""
    query: str
    refresh_interval_s: int | None = None


class MetricsSources(msgspec.Struct, frozen=True, kw_only=True):
    cost: CostSource | None = None
    latency: LatencySource | None = None

    @property
    def empty(self) -> bool:
        return self.cost is None and self.latency is None


NO_SOURCES = MetricsSources()


def build_metrics_sources(raw: Sequence[Any], report: Report) -> MetricsSources:
    """The checked `model_metrics_sources` list (items the key spec rejected are skipped).

    A second source of one type is a problem, as in Plano; the first one is
    kept.  A source whose URL is reported is kept too, so that the routes
    that need it are not reported a second time as having no source.
    """
    cost: CostSource | None = None
    latency: LatencySource | None = None
    seen: set[str] = set()
    for index, entry in valid_items(raw):
        path: KeyPath = ("model_metrics_sources", index)
        kind: str = entry["type"]
        if kind in seen:
            report.problem(path, f"only one {kind} metrics source is allowed")
            continue
        seen.add(kind)
        if kind == "cost":
            cost = _cost_source(entry, path, report)
        elif kind == "latency":
            latency = _latency_source(entry, path, report)
    return MetricsSources(cost=cost, latency=latency)


def _cost_source(entry: Mapping[str, Any], path: KeyPath, report: Report) -> CostSource:
    provider: CostProvider = entry["provider"]
    url: str = entry.get("url") or DEFAULT_COST_URLS[provider]
    _check_url(url, ("http", "https", "file"), (*path, "url"), report)
    aliases: Mapping[str, str] = entry.get("model_aliases") or {}
    return CostSource(
        provider=provider,
        url=url,
        refresh_interval_s=entry.get("refresh_interval"),
        model_aliases=tuple(aliases.items()),
    )


def _latency_source(entry: Mapping[str, Any], path: KeyPath, report: Report) -> LatencySource:
    url: str = entry["url"]
    _check_url(url, ("http", "https"), (*path, "url"), report)
    return LatencySource(url=url, query=entry["query"], refresh_interval_s=entry.get("refresh_interval"))


def _check_url(url: str, schemes: tuple[str, ...], path: KeyPath, report: Report) -> None:
    parts = split_url(url)
    shown = " or ".join(f"{scheme}://" for scheme in schemes)
    if parts is None or parts.scheme not in schemes:
        report.problem(path, f"must be an {shown} URL, got {report.shown(path, url)}")
    elif parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            report.problem(path, "a file:// URL names an absolute path: file:///path/to/catalog.json")
    elif not parts.hostname:
        report.problem(path, f"must name a host, got {report.shown(path, url)}")


def check_selection_policies(
    preferences: Sequence[tuple[KeyPath, Mapping[str, Any]]], sources: MetricsSources, report: Report
) -> None:
    """Plano refuses to start when a route prefers `cheapest` or `fastest` with nothing to rank by.

    `preferences` are the top-level routing preferences with the key path each came from.
    """
    for path, pref in preferences:
        prefer = (pref.get("selection_policy") or {}).get("prefer")
        if prefer == "cheapest" and sources.cost is None:
            kind = "cost"
        elif prefer == "fastest" and sources.latency is None:
            kind = "latency"
        else:
            continue
        report.problem(
            (*path, "selection_policy", "prefer"),
            f"routing_preferences route '{pref['name']}' uses prefer: {prefer} but no {kind} metrics source "
            f"is configured — add a {kind} metrics source to model_metrics_sources",
        )
