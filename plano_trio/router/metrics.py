"""Cost and latency feeds, pure: parse what the catalogs and Prometheus send, look a model up.

Three wire formats, each decoded by msgspec into the few fields Plano reads
(anything else in the document is skipped unread):

- models.dev `api.json`: `{provider: {models: {model: {cost: {input, output,
  cache_read}}}}}`, USD per million tokens, filed under `provider/model` and,
  as a fallback, under the bare `model` (first provider wins);
- DigitalOcean's GenAI catalog: `{data: [{model_id, pricing: {...}}]}`,
  whose `*_per_million` fields are in fact USD per *token* (scaled here);
- a Prometheus instant-query answer: `{data: {result: [{metric: {model_name},
  value: [ts, "v"]}]}}`.

A document of the wrong shape raises `FeedError` (the caller keeps its last
good data); within a right-shaped document an entry Plano would skip (no cost
block, no `model_name` label, an unparsable value) is skipped.  Decoding is
linear in the body, which the caller has already bounded.  Model aliases are
applied here, as the catalog is read, so lookups only ever see Plano names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import msgspec

from .rates import ModelRates

TOKENS_PER_MILLION = 1_000_000.0


class FeedError(Exception):
    """A feed's answer is not the document its format promises."""


# --- models.dev -----------------------------------------------------------------------------------------


class _ModelsDevCost(msgspec.Struct):
    input: float | None = None
    output: float | None = None
    cache_read: float | None = None


class _ModelsDevModel(msgspec.Struct):
    cost: _ModelsDevCost | None = None


class _ModelsDevProvider(msgspec.Struct):
    models: dict[str, _ModelsDevModel] = {}


_MODELS_DEV = msgspec.json.Decoder(dict[str, _ModelsDevProvider])


def parse_models_dev(body: bytes, aliases: Mapping[str, str] | None = None) -> dict[str, ModelRates]:
    """Rates per model from a models.dev catalog.

    A model is filed under `provider/model` (renamed through `aliases`, keyed
    by that full name) and also under its bare id unless an earlier entry
    holds it: first-party providers key their models bare (`claude-opus-4-5`)
    while routing names are `provider/model`, and a name with another
    prefix (`vercel/claude-opus-4-5`) still finds its price through the bare
    id.  Models without both an input and an output price are skipped.
    """
    providers = _decode(_MODELS_DEV, body, "models.dev catalog")
    aliases = aliases or {}
    out: dict[str, ModelRates] = {}
    for provider_id, provider in providers.items():
        for model_id, model in provider.models.items():
            cost = model.cost
            if cost is None or cost.input is None or cost.output is None:
                continue
            rates = ModelRates(cost.input, cost.output, cost.cache_read)
            full = f"{provider_id}/{model_id}"
            out[aliases.get(full, full)] = rates
            out.setdefault(model_id, rates)
    return out


# --- DigitalOcean ---------------------------------------------------------------------------------------


class _DoPricing(msgspec.Struct):
    input_price_per_million: float | None = None
    output_price_per_million: float | None = None
    cache_read_input_price_per_million: float | None = None
    input_cache_read: float | None = None
    """The same cached-read price under a newer name; the catalog carries either or both."""


class _DoModel(msgspec.Struct):
    model_id: str
    pricing: _DoPricing | None = None


class _DoCatalog(msgspec.Struct):
    data: list[_DoModel]


_DIGITALOCEAN = msgspec.json.Decoder(_DoCatalog)


def parse_digitalocean(body: bytes, aliases: Mapping[str, str] | None = None) -> dict[str, ModelRates]:
    """Rates per model from a DigitalOcean GenAI catalog, keyed by `model_id` (renamed through `aliases`).

    Despite their names, the catalog's `*_per_million` prices are USD per
    token (gpt-4o input `2.5e-6`); they are scaled to per million like every
    other feed, so the budget's absolute dollar figures are right.  A model
    without `pricing` is skipped; a missing input or output price counts as 0,
    as Plano does.
    """
    catalog = _decode(_DIGITALOCEAN, body, "DigitalOcean catalog")
    aliases = aliases or {}
    out: dict[str, ModelRates] = {}
    for model in catalog.data:
        pricing = model.pricing
        if pricing is None:
            continue
        cached = pricing.cache_read_input_price_per_million
        if cached is None:
            cached = pricing.input_cache_read
        out[aliases.get(model.model_id, model.model_id)] = ModelRates(
            (pricing.input_price_per_million or 0.0) * TOKENS_PER_MILLION,
            (pricing.output_price_per_million or 0.0) * TOKENS_PER_MILLION,
            None if cached is None else cached * TOKENS_PER_MILLION,
        )
    return out


def parse_cost(provider: str, body: bytes, aliases: Mapping[str, str] | None = None) -> dict[str, ModelRates]:
    """The parser a cost source's `provider` names (`models.dev` or `digitalocean`)."""
    if provider == "models.dev":
        return parse_models_dev(body, aliases)
    if provider == "digitalocean":
        return parse_digitalocean(body, aliases)
    raise ValueError(f"unknown cost provider {provider!r}")


# --- Prometheus -----------------------------------------------------------------------------------------


class _PromSample(msgspec.Struct):
    metric: dict[str, str]
    value: tuple[float, str]
    """(timestamp, value as text): Prometheus sends sample values as strings."""


class _PromData(msgspec.Struct):
    result: list[_PromSample]


class _PromAnswer(msgspec.Struct):
    data: _PromData


_PROMETHEUS = msgspec.json.Decoder(_PromAnswer)

MODEL_LABEL = "model_name"
"""The label that names a sample's model, as Plano reads it."""

_FLOAT = re.compile(r"[+-]?(?:inf|infinity|nan|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?)", re.I)
"""The float syntax Plano's parser accepts; `float()` alone also takes spaces, `_` and non-ASCII digits."""


def parse_prometheus(body: bytes) -> dict[str, float]:
    """Latency per model from an instant-query vector: each sample's `model_name` label -> its value.

    Samples without the label, or whose value is not a number, are skipped;
    a later sample for the same model replaces an earlier one.  `NaN`
    (what Prometheus answers for a rate over no requests) is kept: lookups
    treat it as no data.
    """
    answer = _decode(_PROMETHEUS, body, "Prometheus answer")
    out: dict[str, float] = {}
    for sample in answer.data.result:
        model = sample.metric.get(MODEL_LABEL)
        text = sample.value[1]
        if model is None or _FLOAT.fullmatch(text) is None:
            continue
        out[model] = float(text)
    return out


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes, what: str) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise FeedError(f"{what}: {exc}") from None
    except RecursionError:
        raise FeedError(f"{what}: nested too deeply") from None


# --- lookups --------------------------------------------------------------------------------------------


class MetricsSnapshot(NamedTuple):
    """The feeds' latest data, swapped whole by the feed so that a request reads one consistent view."""

    rates: Mapping[str, ModelRates]
    latency: Mapping[str, float]

    def rates_for(self, model: str) -> ModelRates | None:
        """Prices for `model` by full name, else by the id after its first `/` (as Plano's budget does)."""
        rates = self.rates.get(model)
        if rates is None:
            _, slash, bare = model.partition("/")
            if slash:
                rates = self.rates.get(bare)
        return rates

    def rank_rates_for(self, model: str) -> ModelRates | None:
        """Prices for `model` by its full name only: what Plano's `prefer: cheapest` ranking sees."""
        return self.rates.get(model)

    def latency_for(self, model: str) -> float | None:
        """Latency for `model` by its full name; None when missing or NaN, which rank last as in Plano."""
        value = self.latency.get(model)
        if value is None or math.isnan(value):
            return None
        return value


EMPTY_SNAPSHOT = MetricsSnapshot({}, {})


def models_without_data(snapshot: MetricsSnapshot, prefer: str | None, models: tuple[str, ...]) -> list[str]:
    """The route's models that `prefer` cannot rank (they go last): Plano warns about them at startup."""
    if prefer == "cheapest":
        return [model for model in models if model not in snapshot.rates]
    if prefer == "fastest":
        return [model for model in models if model not in snapshot.latency]
    return []
