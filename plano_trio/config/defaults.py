"""Zero-config: the config `plano-trio up` serves when the directory has none, as `planoai up` does.

Plano's CLI synthesizes a pass-through config instead of failing: one model
listener on 12000, a wildcard provider for each common LLM provider, and
tracing on to `localhost:4317` (where `plano-trio trace listen`, like
`planoai obs`, collects it).  A provider whose API-key variable is set gets
`access_key: $VAR` (the key stays on the server); every other one is
`passthrough_auth` (the client's own key is forwarded), so the gateway
starts with no environment at all.  Keyed providers come first, then the
pass-through ones, each group in Plano's order; no provider is `default`
(a wildcard cannot be), and a bare model id such as `gpt-4o-mini` still
resolves through the catalogue expansion of `openai/*`.

The list below is the data of Plano's `cli/planoai/defaults.py` (Apache-2.0,
release 0.4.36), with one deliberate change: Gemini's `base_url` ends in
`/v1beta/openai`.  Plano writes `/v1beta`, and since a base URL's path
replaces the provider's own prefix (its rule and ours), requests went to
`/v1beta/chat/completions`, where Google serves no OpenAI-compatible API.

The result is YAML text, loaded by the ordinary loader, so zero-config is
checked exactly like a file a user wrote (and `$VAR`s expand the same way).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import yaml

DEFAULT_LISTENER_PORT = 12000
DEFAULT_OTLP_ENDPOINT = "http://localhost:4317"
SOURCE = "<zero-config>"
"""What error messages and logs name as the config's file."""


class ProviderDefault(NamedTuple):
    name: str
    env_var: str
    base_url: str


PROVIDER_DEFAULTS: tuple[ProviderDefault, ...] = (
    ProviderDefault("openai", "OPENAI_API_KEY", "https://api.openai.com/v1"),
    ProviderDefault("anthropic", "ANTHROPIC_API_KEY", "https://api.anthropic.com/v1"),
    ProviderDefault("gemini", "GEMINI_API_KEY", "https://generativelanguage.googleapis.com/v1beta/openai"),
    ProviderDefault("groq", "GROQ_API_KEY", "https://api.groq.com/openai/v1"),
    ProviderDefault("deepseek", "DEEPSEEK_API_KEY", "https://api.deepseek.com/v1"),
    ProviderDefault("mistral", "MISTRAL_API_KEY", "https://api.mistral.ai/v1"),
    ProviderDefault("digitalocean", "DO_API_KEY", "https://inference.do-ai.run/v1"),
    ProviderDefault("vercel", "AI_GATEWAY_API_KEY", "https://ai-gateway.vercel.sh/v1"),
    ProviderDefault("openrouter", "OPENROUTER_API_KEY", "https://openrouter.ai/api/v1"),
    ProviderDefault("edenai", "EDENAI_API_KEY", "https://api.edenai.run/v3"),
)


class ZeroConfig(NamedTuple):
    text: str
    """The synthesized config, as YAML."""
    keyed: tuple[str, ...]
    """Providers whose key variable is set (`access_key: $VAR`)."""
    passthrough: tuple[str, ...]
    """Providers that forward the client's key."""

    @property
    def summary(self) -> str:
        """Which providers got which auth, by name only (never a key)."""
        parts = []
        if self.keyed:
            parts.append("keys from the environment: " + ", ".join(self.keyed))
        if self.passthrough:
            parts.append("client's own key passed through: " + ", ".join(self.passthrough))
        return "; ".join(parts)


def zero_config(env: Mapping[str, str], listener_port: int = DEFAULT_LISTENER_PORT) -> ZeroConfig:
    """Plano's default config for this environment (only whether each key variable is set matters)."""
    keyed = [p for p in PROVIDER_DEFAULTS if env.get(p.env_var)]
    passthrough = [p for p in PROVIDER_DEFAULTS if not env.get(p.env_var)]
    providers: list[dict[str, Any]] = [
        {"name": p.name, "model": f"{p.name}/*", "base_url": p.base_url, "access_key": f"${p.env_var}"}
        for p in keyed
    ]
    providers += [
        {"name": p.name, "model": f"{p.name}/*", "base_url": p.base_url, "passthrough_auth": True}
        for p in passthrough
    ]
    document = {
        "version": "v0.4.0",
        "listeners": [{"name": "llm", "type": "model", "port": listener_port, "address": "0.0.0.0"}],
        "model_providers": providers,
        "tracing": {"random_sampling": 100, "opentracing_grpc_endpoint": DEFAULT_OTLP_ENDPOINT},
    }
    text = yaml.safe_dump(document, sort_keys=False)
    return ZeroConfig(text, tuple(p.name for p in keyed), tuple(p.name for p in passthrough))
