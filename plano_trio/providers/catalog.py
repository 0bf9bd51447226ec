"""What each provider interface is on the wire: default host, path prefix, auth style.

This table is the one place that knows provider quirks: the default host and
path prefix Plano uses for each provider (e.g. Gemini under `/v1beta/openai`,
Groq under `/openai/v1`, Azure under `/openai/deployments/<model>`), and
Plano's rule that a `base_url` with a path replaces that prefix entirely.
It is pure data plus a pure path builder, so it is table-tested without
sockets.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import NamedTuple
from urllib.parse import quote

import trio

from plano_trio.apis.kind import Api
from plano_trio.providers import demo


class Auth(Enum):
    BEARER = "bearer"
    """`Authorization: Bearer <key>` (OpenAI and everyone copying it)."""
    AZURE = "azure"
    """`api-key: <key>`: Azure OpenAI's API-key header."""
    ANTHROPIC = "anthropic"
    """`x-api-key: <key>` + `anthropic-version` (native Messages API)."""


class ProviderSpec(NamedTuple):
    interface: str
    default_base_url: str | None
    """scheme://host[:port] of the public API; None when `base_url` is mandatory."""
    path_prefix: str
    """Prefix before `/chat/completions` etc. when `base_url` has no path of its own."""
    owned_by: str
    """`owned_by` in `/v1/models` (Plano's `ProviderId` Display text)."""
    auth: Auth = Auth.BEARER
    native_responses: bool = False
    native_messages: bool = False
    needs_key: bool = True
    """Without a `base_url` of its own, a provider with neither key nor passthrough is refused (400)."""
    local: Callable[[], trio.abc.Stream] | None = None
    """An in-process provider: opens its connection (`Origin.local`); no host, `base_url` is ignored."""


_SPECS: tuple[ProviderSpec, ...] = (
    ProviderSpec("openai", "https://api.openai.com", "/v1", "OpenAI", native_responses=True),
    ProviderSpec("groq", "https://api.groq.com", "/openai/v1", "Groq"),
    ProviderSpec("mistral", "https://api.mistral.ai", "/v1", "Mistral"),
    ProviderSpec("deepseek", "https://api.deepseek.com", "/v1", "Deepseek"),
    ProviderSpec("together_ai", "https://api.together.xyz", "/v1", "together_ai"),
    ProviderSpec("xai", "https://api.x.ai", "/v1", "xai", native_responses=True),
    ProviderSpec("moonshotai", "https://api.moonshot.ai", "/v1", "moonshotai"),
    ProviderSpec("zhipu", "https://open.bigmodel.cn", "/api/paas/v4", "zhipu"),
    ProviderSpec("xiaomi", "https://api.xiaomimimo.com", "/v1", "xiaomi"),
    ProviderSpec("digitalocean", "https://inference.do-ai.run", "/v1", "digitalocean"),
    ProviderSpec("openrouter", "https://openrouter.ai", "/api/v1", "openrouter"),
    ProviderSpec("edenai", None, "/v1", "edenai"),
    ProviderSpec("gemini", "https://generativelanguage.googleapis.com", "/v1beta/openai", "Gemini"),
    ProviderSpec("ollama", None, "/v1", "ollama"),
    ProviderSpec("qwen", None, "/compatible-mode/v1", "qwen"),
    ProviderSpec("azure_openai", None, "/openai/deployments", "azure_openai", auth=Auth.AZURE),
    ProviderSpec("plano", "https://archfc.katanemo.dev", "/v1", "Arch", needs_key=False),
    ProviderSpec(demo.INTERFACE, None, "/v1", demo.INTERFACE, needs_key=False, local=demo.open_stream),
    ProviderSpec(
        "vercel", "https://ai-gateway.vercel.sh", "/v1", "vercel", native_responses=True, native_messages=True
    ),
    ProviderSpec("chatgpt", "https://chatgpt.com", "/backend-api/codex", "chatgpt", native_responses=True),
    ProviderSpec(
        "anthropic",
        "https://api.anthropic.com",
        "/v1",
        "Anthropic",
        auth=Auth.ANTHROPIC,
        native_messages=True,
    ),
    ProviderSpec("amazon_bedrock", None, "", "amazon_bedrock"),
)

CATALOG: dict[str, ProviderSpec] = {spec.interface: spec for spec in _SPECS}

AZURE_API_VERSION = "2025-01-01-preview"
"""Plano's default `api-version` for Azure OpenAI (a `base_url` query string overrides it)."""


def spec_for(interface: str) -> ProviderSpec:
    """Spec of a provider interface; unknown ones behave like plain OpenAI-compatible servers."""
    return CATALOG.get(interface) or ProviderSpec(interface, None, "/v1", interface)


def _joined(prefix: str, suffix: str, query: str) -> str:
    target = f"{prefix}{suffix}"
    return f"{target}?{query}" if query else target


def api_path(spec: ProviderSpec, api: Api, base_path: str, query: str, model: str, *, stream: bool) -> str:
    """Upstream request target for one call in `api`'s wire format.

    `base_path`/`query` are the path and query of the provider's `base_url`
    (empty when not set).  A non-empty base path *replaces* the provider's
    default prefix entirely, as in Plano (`https://openrouter.ai/api/v1` →
    `/api/v1/chat/completions`; an Azure base path replaces `/openai/deployments`).
    """
    prefix = base_path.strip("/") or spec.path_prefix.strip("/")
    prefix = f"/{prefix}" if prefix else ""
    if api is Api.BEDROCK:
        action = "converse-stream" if stream else "converse"
        return _joined(prefix, f"/model/{quote(model, safe='')}/{action}", query)
    if api is Api.MESSAGES:
        return _joined(prefix, "/messages", query)
    if api is Api.RESPONSES:
        return _joined(prefix, "/responses", query)
    if spec.auth is Auth.AZURE:
        return _joined(prefix, f"/{model}/chat/completions", query or f"api-version={AZURE_API_VERSION}")
    return _joined(prefix, "/chat/completions", query)


def upstream_api_for(client: Api, spec: ProviderSpec) -> Api:
    """Which wire format a provider is spoken to in, for a client speaking `client`.

    Providers are spoken to natively: Bedrock always in Converse, Anthropic
    always in Messages (Plano uses Anthropic's OpenAI-compatibility endpoint
    for Chat and Responses clients; native Messages keeps `system`, tool use,
    images, `thinking` and `cache_control` intact).  Responses pass through to
    providers that implement it; everything else pivots through Chat.
    """
    if spec.interface == "amazon_bedrock":
        return Api.BEDROCK
    if spec.native_messages and (spec.interface == "anthropic" or client is Api.MESSAGES):
        return Api.MESSAGES
    if client is Api.RESPONSES and spec.native_responses:
        return Api.RESPONSES
    return Api.CHAT
