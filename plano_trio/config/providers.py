"""`model_providers` -> `ModelProvider`s, with Plano's normalizations and checks.

Plano's CLI (`cli/planoai/config_generator.py`) rewrites each provider before
anything uses it: `name` defaults to the model string, `model` becomes the id
after the first `/`, `provider_interface` comes from the prefix, and some
providers get defaults (ChatGPT, Kimi Code).  It also adds internal providers
(`arch-function`, the orchestrator) that configs may reference.  We do the same
once, here, so the rest of plano-trio sees only the normalized form.

The error texts are Plano's own where Plano has one, so that people who know
Plano's messages (or search for them) find them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import KeyPath, Report
from .retry import RetryPolicy
from .retry_policy import build_retry_policy, check_fallback_references
from .schema import ModelProvider
from .shape import INVALID, valid_items
from .values import http_url_error, split_url

PROVIDERS_WITHOUT_BASE_URL = (
    "deepseek",
    "groq",
    "mistral",
    "openai",
    "xiaomi",
    "gemini",
    "anthropic",
    "together_ai",
    "xai",
    "moonshotai",
    "zhipu",
    "chatgpt",
    "digitalocean",
    "vercel",
    "openrouter",
    "edenai",
    "plano_trio",  # ours: the built-in demo model (`plano_trio/echo`), served in-process
)
PROVIDERS_WITH_BASE_URL = ("azure_openai", "ollama", "qwen", "amazon_bedrock", "plano")
"""Known prefixes that have no built-in host, so `base_url` is required."""

SUPPORTED_PROVIDERS = PROVIDERS_WITHOUT_BASE_URL + PROVIDERS_WITH_BASE_URL

PREFIX_ALIASES = {"google": "gemini", "amazon": "amazon_bedrock"}
"""Other spellings of a known prefix (Plano's Rust `ProviderId` accepts these)."""

CHATGPT_API_BASE = "https://chatgpt.com/backend-api/codex"
CHATGPT_HEADERS = (
    ("originator", "codex_cli_rs"),
    ("user-agent", "codex_cli_rs/0.0.0 (Unknown 0; unknown) unknown"),
)
KIMI_CODE_HOST = "api.kimi.com"
KIMI_CODE_USER_AGENT = "KimiCLI/1.3"

DEFAULT_ORCHESTRATOR_MODEL = "Plano-Orchestrator"

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


@dataclass
class Catalog:
    """What the declared providers make resolvable: used to check aliases and
    routing preferences against the providers."""

    names: set[str] = field(default_factory=set)
    model_keys: set[str] = field(default_factory=set)
    """Full model strings and bare ids of non-wildcard providers (Plano's `model_name_keys`)."""
    wildcard_prefixes: set[str] = field(default_factory=set)

    def declares(self, ref: str) -> bool:
        """Would a request for model `ref` find a provider?

        Plano's lookup order: a provider `name`, then a full model string or a
        bare model id, then a wildcard provider of the ref's prefix.
        """
        if ref in self.names or ref in self.model_keys:
            return True
        return "/" in ref and ref.split("/", 1)[0] in self.wildcard_prefixes

    def available(self) -> str:
        return ", ".join(sorted(self.model_keys))


@dataclass
class ProviderResult:
    providers: list[ModelProvider] = field(default_factory=list)
    catalog: Catalog = field(default_factory=Catalog)
    complete: bool = True
    """False if some entry was too broken to enter the catalog (so lookups may miss it)."""


def _is_wildcard(model: str) -> bool:
    return "/" in model and model.split("/", 1)[1].strip() == "*"


def build_providers(
    raw: Sequence[Any], base: KeyPath, report: Report, env: Mapping[str, str]
) -> ProviderResult:
    """Normalize and check every provider; `base` is where the list sits (`("model_providers",)`)."""
    result = ProviderResult(complete=all(item is not INVALID for item in raw))
    default_seen = False
    policies: list[tuple[KeyPath, RetryPolicy]] = []
    for index, item in valid_items(raw):
        path = (*base, index)
        provider = _build_one(item, path, report, env, result.catalog)
        if provider is None:  # its name is in the catalog all the same, so no knock-on errors
            continue
        if provider.default:
            if default_seen:
                report.problem((*path, "default"), "There must be at most one default LLM Provider")
            default_seen = True
        if provider.retry_policy is not None:
            policies.append(((*path, "retry_policy"), provider.retry_policy))
        result.providers.append(provider)
    if result.complete:  # a broken entry is missing from the catalog: its name would look unknown
        check_fallback_references(policies, result.catalog.declares, len(raw), report)
    return result


def _build_one(
    item: dict[str, Any], path: KeyPath, report: Report, env: Mapping[str, str], catalog: Catalog
) -> ModelProvider | None:
    model: str = item["model"]
    name: str = item.get("name", model)
    here = (*path, "name") if "name" in item else (*path, "model")
    if name in catalog.names:
        report.problem(
            here, f"Duplicate model_provider name {name}, please provide unique name for each model_provider"
        )
    catalog.names.add(name)

    if "/" not in model or not model.split("/", 1)[1].strip():
        report.problem(
            (*path, "model"),
            f"Invalid model name {model}. Please provide model name in the format "
            "<provider>/<model_id> or <provider>/* for wildcards.",
        )
        catalog.names.add(model)
        return None
    prefix = model.split("/", 1)[0].strip()
    model_id = model.split("/", 1)[1]
    wildcard = _is_wildcard(model)
    canonical = PREFIX_ALIASES.get(prefix, prefix)
    base_url: str | None = item.get("base_url")
    interface: str | None = item.get("provider_interface")

    if wildcard:
        catalog.wildcard_prefixes.update({prefix, canonical})
        if item.get("default", False):
            report.problem(
                (*path, "default"),
                f"Model {model} is configured as default but uses wildcard (*). "
                "Default models cannot be wildcards.",
            )
    else:
        # Only the full model string must be unique: one bare id may be served by several
        # providers (`custom/claude-opus-4-6` and `custom-aws/claude-opus-4-6`), which is what
        # failover between them needs; a request for the bare id goes to the first one listed.
        if model in catalog.model_keys:
            report.problem(
                (*path, "model"),
                f"Duplicate model name {model}, please provide unique model name for each model_provider",
            )
        catalog.model_keys.update({model, model_id})

    if canonical in PROVIDERS_WITH_BASE_URL and base_url is None:
        report.problem(path, f"Provider '{prefix}' requires 'base_url' to be set for model {model}")
    if canonical in SUPPORTED_PROVIDERS:
        if interface is not None:
            report.problem(
                (*path, "provider_interface"),
                f"Please provide provider interface as part of model name {model} using the format "
                "<provider>/<model_id>. For example, use 'openai/gpt-3.5-turbo' instead of 'gpt-3.5-turbo'",
            )
        interface = canonical
    elif base_url is None or interface is None:
        kind = "wildcard model" if wildcard else "model"
        report.problem(
            path,
            f"Must provide base_url and provider_interface for unsupported provider {prefix} for {kind} "
            f"{model}. Supported providers are: {', '.join(SUPPORTED_PROVIDERS)}",
        )
        interface = interface or canonical

    if base_url is not None:
        error = http_url_error(base_url)
        if error is not None:
            report.problem((*path, "base_url"), error)

    access_key: str | None = item.get("access_key")
    passthrough: bool = item.get("passthrough_auth", False)
    if passthrough and access_key:
        report.warn(
            path,
            f"Model provider '{name}' has both 'passthrough_auth: true' and 'access_key' configured. "
            "The access_key will be ignored and the client's Authorization header will be forwarded instead.",
        )
    headers = _headers(item.get("headers", {}), (*path, "headers"), report)
    raw_policy = item.get("retry_policy")
    policy = None if raw_policy is None else build_retry_policy(raw_policy, (*path, "retry_policy"), report)

    if interface == "chatgpt":
        base_url, passthrough, headers = _chatgpt_defaults(base_url, access_key, passthrough, headers, env)
    base_url, headers = _kimi_code_defaults(base_url, model_id, headers)

    return ModelProvider(
        name=name,
        model="*" if wildcard else model_id,
        provider_interface=interface,
        access_key=access_key,
        default=item.get("default", False),
        base_url=base_url,
        passthrough_auth=passthrough,
        http_host=item.get("http_host"),
        headers=tuple(headers),
        retry_policy=policy,
    )


def _headers(raw: dict[str, str], path: KeyPath, report: Report) -> list[tuple[str, str]]:
    """Extra upstream headers; names and values are checked because they go on the wire."""
    out: list[tuple[str, str]] = []
    for header, value in raw.items():
        if not _HEADER_NAME.match(header):
            report.problem((*path, header), f"invalid HTTP header name {header!r}")
        elif "\r" in value or "\n" in value:
            report.problem((*path, header), "header value must not contain line breaks")
        else:
            out.append((header, value))
    return out


def _set_default_header(headers: list[tuple[str, str]], name: str, value: str) -> None:
    if all(existing.lower() != name.lower() for existing, _ in headers):
        headers.append((name, value))


def _chatgpt_defaults(
    base_url: str | None,
    access_key: str | None,
    passthrough: bool,
    headers: list[tuple[str, str]],
    env: Mapping[str, str],
) -> tuple[str, bool, list[tuple[str, str]]]:
    """ChatGPT-subscription (Codex) upstream: Plano wires its endpoint and headers in."""
    headers = list(headers)
    _set_default_header(headers, "ChatGPT-Account-Id", env.get("CHATGPT_ACCOUNT_ID", ""))
    for header, value in CHATGPT_HEADERS:
        _set_default_header(headers, header, value)
    _set_default_header(headers, "session_id", str(uuid.uuid4()))
    return base_url or CHATGPT_API_BASE, passthrough or not access_key, headers


def _kimi_code_defaults(
    base_url: str | None, model_id: str, headers: list[tuple[str, str]]
) -> tuple[str | None, list[tuple[str, str]]]:
    """Kimi Code wants `/coding/v1` and a KimiCLI User-Agent (Plano adds both)."""
    if not base_url:
        return base_url, headers
    parts = split_url(base_url)
    if parts is None or (parts.hostname != KIMI_CODE_HOST and model_id != "kimi-for-coding"):
        return base_url, headers
    path = parts.path.rstrip("/")
    if parts.hostname == KIMI_CODE_HOST and path.endswith("/coding"):
        base_url = f"{parts.scheme}://{parts.netloc}{path}/v1"
    headers = list(headers)
    _set_default_header(headers, "User-Agent", KIMI_CODE_USER_AGENT)
    return base_url, headers


def _bare_id(model: str) -> str:
    return model.split("/", 1)[1] if "/" in model else model


def internal_providers(
    declared: Iterable[ModelProvider], *, has_routing_preferences: bool, overrides: Mapping[str, Any]
) -> list[ModelProvider]:
    """The providers Plano adds on its own (hidden from `/v1/models`).

    `arch-function` always (unless the user declared that name), the LLM router
    model when routing preferences exist, and the agent orchestrator model —
    each only if no declared provider already serves that model id.
    """
    declared = list(declared)
    names = {p.name for p in declared}
    model_ids = {p.model for p in declared}
    extra: list[ModelProvider] = []
    router_id = _bare_id(str(overrides.get("llm_routing_model", DEFAULT_ORCHESTRATOR_MODEL)))
    if has_routing_preferences and router_id not in model_ids:
        extra.append(_internal("plano-orchestrator", router_id))
    if "arch-function" not in names:
        extra.append(_internal("arch-function", "Arch-Function"))
    orchestrator_id = _bare_id(str(overrides.get("agent_orchestration_model", DEFAULT_ORCHESTRATOR_MODEL)))
    if orchestrator_id not in model_ids:
        extra.append(_internal("plano/orchestrator", orchestrator_id))
    return extra


def _internal(name: str, model: str) -> ModelProvider:
    return ModelProvider(name=name, model=model, provider_interface="plano", internal=True)
