"""Plano's model catalogue: which models a wildcard provider stands for.

A wildcard provider (`openai/*`) accepts any model of its prefix at run
time.  Plano also *expands* it at startup to the models its catalogue lists
for that provider (`provider_models.yaml`, shipped here unchanged as package
data), so `/v1/models` shows them and their bare ids (`gpt-4o`) resolve
without the prefix.  This module only answers "which bare ids does prefix P
stand for"; the resolver decides what they route to.

The catalogue is keyed by the model vendor's name (`google`, `mistralai`,
`x-ai`), not by the provider prefix a config uses (`gemini`, `mistral`,
`xai`): `CATALOGUE_KEYS` is Plano's mapping between the two, including the
prefix aliases its provider parser accepts (`google`, `amazon`, `do`).
Prefixes without an entry (`groq`, `vercel`, `openrouter`, `ollama`, ...)
expand to nothing and stay runtime-only wildcards, as in Plano.

Loaded once, on first use (about 400 lines with the C YAML loader: ~10 ms),
so a config without wildcards never reads it.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib import resources
from typing import Any

import yaml

log = logging.getLogger("plano_trio.providers")

CATALOGUE_FILE = "provider_models.yaml"

CATALOGUE_KEYS: dict[str, str] = {
    "openai": "openai",
    "azure_openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "google": "google",
    "mistral": "mistralai",
    "deepseek": "deepseek",
    "groq": "groq",
    "xai": "x-ai",
    "moonshotai": "moonshotai",
    "zhipu": "z-ai",
    "qwen": "qwen",
    "xiaomi": "xiaomi",
    "together_ai": "together",
    "together": "together",
    "amazon_bedrock": "amazon",
    "amazon": "amazon",
    "chatgpt": "chatgpt",
    "digitalocean": "digitalocean",
    "do": "digitalocean",
    "do_ai": "digitalocean",
    "meta": "meta",
    "minimax": "minimax",
}
"""Wildcard prefix (lowercased) -> catalogue key, as Plano's provider ids map to it."""


def catalogue_models(prefix: str) -> tuple[str, ...]:
    """The bare model ids (`gpt-4o`) Plano's catalogue lists for wildcard prefix `prefix`, in file order."""
    key = CATALOGUE_KEYS.get(prefix.lower())
    if key is None:
        return ()
    return _catalogue().get(key, ())


@cache
def _catalogue() -> dict[str, tuple[str, ...]]:
    text = (resources.files("plano_trio.providers") / CATALOGUE_FILE).read_text("utf-8")
    return parse_catalogue(yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def parse_catalogue(document: Any) -> dict[str, tuple[str, ...]]:
    """`providers: {key: ["key/model", ...]}` -> {key: ("model", ...)}; malformed entries are skipped.

    The prefix of each entry is dropped at its first `/` as Plano does
    (`amazon/amazon.nova-pro-v1:0` -> `amazon.nova-pro-v1:0`); an entry
    without one names no model and is skipped, as are duplicates.
    """
    providers = document.get("providers") if isinstance(document, dict) else None
    if not isinstance(providers, dict):
        log.error("model catalogue %s has no providers mapping; wildcards will not expand", CATALOGUE_FILE)
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for key, entries in providers.items():
        if not isinstance(key, str) or not isinstance(entries, list):
            continue
        models = (entry.split("/", 1)[1] for entry in entries if isinstance(entry, str) and "/" in entry)
        out[key] = tuple(dict.fromkeys(model for model in models if model))
    return out
