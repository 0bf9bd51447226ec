"""How long a provider's prompt cache plausibly stays warm, by provider.

The routing decision has no provider response in hand, so it infers warmth
from time alone: a session last used longer ago than its provider's cache
window is cold.  The table is Plano's: today every provider gets the
conservative default (a 5-minute sliding window under a 1-hour ceiling, no
extended retention), and an unknown provider gets it too -- treating a cache
as short-lived keeps the router from sticking to one that is likely gone.
The table is data so tuning one provider's window touches nothing else.
"""

from __future__ import annotations

from typing import NamedTuple


class CacheCapability(NamedTuple):
    idle_ttl_s: float = 300.0
    """Sliding window: the cache stays warm while touched at least this often."""
    hard_ttl_s: float = 3600.0
    """Ceiling on a cache entry's life regardless of activity."""
    extended_retention: bool = False
    """Whether the provider, as configured, keeps caches out to `extended_ttl_s` (opt-in; off everywhere)."""
    extended_ttl_s: float = 3600.0


DEFAULT_CAPABILITY = CacheCapability()

PROVIDER_ALIASES = {
    "google": "gemini",
    "together": "together_ai",
    "amazon": "amazon_bedrock",
    "do": "digitalocean",
    "do_ai": "digitalocean",
}
"""Prefixes Plano accepts for the same provider."""

PROVIDER_CAPABILITIES: dict[str, CacheCapability] = {
    provider: DEFAULT_CAPABILITY
    for provider in (
        # Anthropic-family caches, native or fronted.
        "anthropic",
        "digitalocean",
        "openrouter",
        "edenai",
        "vercel",
        # OpenAI-family automatic prefix caching lives on the order of minutes too.
        "openai",
        "azure_openai",
        "chatgpt",
        "groq",
        "deepseek",
        "gemini",
        "moonshotai",
        "xai",
    )
}


def capability_for_model(model: str) -> CacheCapability:
    """The cache window of a provider-qualified model id (`openai/gpt-4o`); the default when unknown."""
    provider = model.split("/", 1)[0].lower()
    provider = PROVIDER_ALIASES.get(provider, provider)
    return PROVIDER_CAPABILITIES.get(provider, DEFAULT_CAPABILITY)


def warmth_window_s(cap: CacheCapability) -> float:
    """How long a binding on this provider may sit idle before its cache is certainly cold.

    Also the store's TTL for the binding: it need not outlive its warmth.
    """
    return cap.extended_ttl_s if cap.extended_retention else min(cap.idle_ttl_s, cap.hard_ttl_s)


def warm_after_idle(cap: CacheCapability, idle_s: float) -> bool:
    """Whether a cache idle for `idle_s` seconds is plausibly still warm (boundaries inclusive)."""
    if cap.extended_retention:
        return idle_s <= cap.extended_ttl_s
    return idle_s <= cap.idle_ttl_s and idle_s <= cap.hard_ttl_s
