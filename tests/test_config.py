"""Tests for plano_trio.config: Plano-format YAML -> normalized, frozen Config.

The first table ports the behaviour of Plano's own `cli/test/test_config_generator.py`
(same inputs, same pass/fail, same error text); the rest cover plano-trio's
loader specifics (line numbers, env substitution, all-problems-at-once,
unknown/unsupported keys, plano_trio settings).
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

import pytest

from plano_trio.config import (
    Config,
    ConfigError,
    ModelProvider,
    Problem,
    find_config_file,
    load_config,
    load_config_text,
)
from plano_trio.config.values import parse_duration, version_tuple
from plano_trio.config.yamlsource import expand_env

ENV = {
    "OPENAI_API_KEY": "sk-openai",
    "ANTHROPIC_API_KEY": "sk-ant",
    "MISTRAL_API_KEY": "sk-mistral",
    "POSTHOG_API_KEY": "ph",
}


def load(text: str, env: dict[str, str] | None = None) -> Config:
    return load_config_text(textwrap.dedent(text), source="config.yaml", env=ENV if env is None else env)


def problems(text: str, env: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load(text, env)
    return info.value.problems


def messages(text: str, env: dict[str, str] | None = None) -> str:
    return "\n".join(f"{p.path}: {p.message}" for p in problems(text, env))


def provider(config: Config, name: str) -> ModelProvider:
    return next(p for p in config.model_providers if p.name == name)


MINIMAL = """
version: v0.4.0
listeners:
  - {name: llm, type: model, port: 12000}
model_providers:
  - model: openai/gpt-4o
    access_key: $OPENAI_API_KEY
"""

# --------------------------------------------------------------------------------------
# Ported from Plano's cli/test/test_config_generator.py (behaviour, not code)
# --------------------------------------------------------------------------------------

PLANO_CASES = [
    (
        "happy_path_legacy",
        None,
        """
        version: v0.1.0
        listeners:
          egress_traffic:
            address: 0.0.0.0
            port: 12000
            message_format: openai
            timeout: 30s
        llm_providers:
          - model: openai/gpt-4o-mini
            access_key: $OPENAI_API_KEY
            default: true
          - model: openai/gpt-4o
            access_key: $OPENAI_API_KEY
            routing_preferences:
              - name: code understanding
                description: understand and explain existing code snippets, functions, or libraries
          - model: openai/gpt-4.1
            access_key: $OPENAI_API_KEY
            routing_preferences:
              - name: code generation
                description: generating new code snippets, functions, or boilerplate
        tracing:
          random_sampling: 100
        """,
    ),
    (
        "happy_path_agent_config",
        None,
        """
        version: v0.3.0
        agents:
          - id: query_rewriter
            url: http://localhost:10500
          - id: context_builder
            url: http://localhost:10501
          - id: response_generator
            url: http://localhost:10502
          - id: research_agent
            url: http://localhost:10500
          - id: input_guard_rails
            url: http://localhost:10503
        listeners:
          - name: tmobile
            type: agent
            router: plano_orchestrator_v1
            agents:
              - id: simple_tmobile_rag_agent
                description: t-mobile virtual assistant for device contracts.
                input_filters: [query_rewriter, context_builder, response_generator]
              - id: research_agent
                description: agent to research and gather information from various sources.
                input_filters: [research_agent, response_generator]
            port: 8000
          - name: llm_provider
            type: model
            port: 12000
        model_providers:
          - access_key: ${OPENAI_API_KEY}
            model: openai/gpt-4o
        """,
    ),
    (
        "duplicate_provider_name",
        "Duplicate model_provider name",
        """
        version: v0.1.0
        listeners:
          egress_traffic: {address: 0.0.0.0, port: 12000, message_format: openai, timeout: 30s}
        llm_providers:
          - name: test1
            model: openai/gpt-4o
            access_key: $OPENAI_API_KEY
          - name: test1
            model: openai/gpt-4o
            access_key: $OPENAI_API_KEY
        """,
    ),
    (
        "provider_interface_with_model_id",
        "Please provide provider interface as part of model name",
        """
        version: v0.1.0
        listeners:
          egress_traffic: {address: 0.0.0.0, port: 12000, message_format: openai, timeout: 30s}
        llm_providers:
          - model: openai/gpt-4o
            access_key: $OPENAI_API_KEY
            provider_interface: openai
        """,
    ),
    (
        # Plano's proposed retry design lifts this check: two providers may serve one model id.
        "duplicate_model_id",
        None,
        """
        version: v0.1.0
        listeners:
          egress_traffic: {address: 0.0.0.0, port: 12000, message_format: openai, timeout: 30s}
        llm_providers:
          - model: openai/gpt-4o
            access_key: $OPENAI_API_KEY
          - model: mistral/gpt-4o
        """,
    ),
    (
        "custom_provider_base_url",
        "Must provide base_url and provider_interface",
        """
        version: v0.1.0
        listeners:
          egress_traffic: {address: 0.0.0.0, port: 12000, message_format: openai, timeout: 30s}
        llm_providers:
          - model: custom/gpt-4o
        """,
    ),
    (
        "base_url_with_path_prefix",
        None,
        """
        version: v0.1.0
        listeners:
          egress_traffic: {address: 0.0.0.0, port: 12000, message_format: openai, timeout: 30s}
        llm_providers:
          - model: custom/gpt-4o
            base_url: "http://custom.com/api/v2"
            provider_interface: openai
        """,
    ),
    *[
        (
            f"{prefix}_is_supported_provider",
            None,
            f"""
            version: v0.4.0
            listeners:
              - name: llm
                type: model
                port: 12000
            model_providers:
              - model: {prefix}/*
                base_url: {url}
                passthrough_auth: true
            """,
        )
        for prefix, url in (
            ("vercel", "https://ai-gateway.vercel.sh/v1"),
            ("openrouter", "https://openrouter.ai/api/v1"),
            ("edenai", "https://api.edenai.run/v3"),
        )
    ],
    (
        "duplicate_routing_preference_name",
        "Duplicate routing preference name",
        """
        version: v0.4.0
        listeners:
          - {name: llm, type: model, port: 12000}
        model_providers:
          - model: openai/gpt-4o-mini
            access_key: $OPENAI_API_KEY
            default: true
          - model: openai/gpt-4o
            access_key: $OPENAI_API_KEY
        routing_preferences:
          - name: code understanding
            description: understand and explain existing code
            models: [openai/gpt-4o]
          - name: code understanding
            description: generating new code snippets
            models: [openai/gpt-4o-mini]
        tracing:
          random_sampling: 100
        """,
    ),
    (
        "unknown_listener_output_filter",
        "references output_filters id 'missing_output_guard'",
        """
        version: v0.4.0
        filters:
          - id: input_guard
            url: http://localhost:10500
            type: http
        listeners:
          - name: llm
            type: model
            port: 12000
            input_filters: [input_guard]
            output_filters: [missing_output_guard]
        model_providers:
          - model: openai/gpt-4o-mini
            access_key: $OPENAI_API_KEY
            default: true
        """,
    ),
    (
        "valid_listener_output_filter",
        None,
        """
        version: v0.4.0
        filters:
          - {id: input_guard, url: "http://localhost:10500", type: http}
          - {id: output_guard, url: "http://localhost:10501", type: http}
        listeners:
          - name: llm
            type: model
            port: 12000
            input_filters: [input_guard]
            output_filters: [output_guard]
        model_providers:
          - model: openai/gpt-4o-mini
            access_key: $OPENAI_API_KEY
            default: true
        """,
    ),
    (
        "valid_tracing_posthog_exporter",
        None,
        """
        version: v0.4.0
        listeners:
          - {name: llm, type: model, port: 12000}
        model_providers:
          - model: openai/gpt-4o-mini
            access_key: $OPENAI_API_KEY
            default: true
        tracing:
          random_sampling: 100
          exporters:
            - type: posthog
              url: https://us.i.posthog.com
              api_key: $POSTHOG_API_KEY
              distinct_id_header: x-user-id
              capture_messages: false
        """,
    ),
    (
        "wildcard_with_inline_routing_preferences",
        "uses wildcard (*). Models with routing preferences cannot be wildcards.",
        """
        version: v0.3.0
        listeners:
          - {type: model, name: model_listener, port: 12000}
        model_providers:
          - model: openrouter/*
            base_url: https://openrouter.ai/api/v1
            passthrough_auth: true
            routing_preferences:
              - name: code generation
                description: generating code
        """,
    ),
    (
        "alias_to_undeclared_model",
        "Model alias 'fast' targets 'gpt-5-nano' which is not defined as a model. "
        "Available models: gpt-4o, openai/gpt-4o",
        MINIMAL + "model_aliases:\n  fast: {target: gpt-5-nano}\n",
    ),
]


@pytest.mark.parametrize(("case_id", "expected", "text"), PLANO_CASES, ids=[c[0] for c in PLANO_CASES])
def test_plano_generator_cases(case_id: str, expected: str | None, text: str) -> None:
    if expected is None:
        assert isinstance(load(text), Config)
    else:
        assert expected in messages(text)


def test_inline_routing_preferences_migrated_to_top_level() -> None:
    config = load(
        """
        version: v0.3.0
        listeners:
          - {type: model, name: model_listener, port: 12000}
        model_providers:
          - model: openai/gpt-4o-mini
            access_key: $OPENAI_API_KEY
            default: true
          - model: openai/gpt-4o
            access_key: $OPENAI_API_KEY
            routing_preferences:
              - name: code understanding
                description: understand and explain existing code
          - model: anthropic/claude-sonnet-4-6
            access_key: $ANTHROPIC_API_KEY
            routing_preferences:
              - name: code generation
                description: generating new code
        """
    )
    by_name = {pref.name: pref for pref in config.routing_preferences}
    assert set(by_name) == {"code understanding", "code generation"}
    assert by_name["code understanding"].models == ("openai/gpt-4o",)
    assert by_name["code understanding"].description == "understand and explain existing code"
    assert by_name["code generation"].models == ("anthropic/claude-sonnet-4-6",)
    assert "model_providers[1].routing_preferences" not in config.unsupported  # lifted, so acted on
    assert any("deprecated" in w for w in config.warnings)
    # Routing preferences make Plano add its router model as an internal provider.
    assert provider(config, "plano-orchestrator").internal


def test_inline_same_name_across_providers_merges_models() -> None:
    config = load(
        """
        version: v0.3.0
        listeners:
          - {type: model, name: model_listener, port: 12000}
        model_providers:
          - model: openai/gpt-4o
            access_key: $OPENAI_API_KEY
            routing_preferences:
              - {name: code generation, description: generating code}
          - model: anthropic/claude-sonnet-4-6
            access_key: $ANTHROPIC_API_KEY
            routing_preferences:
              - {name: code generation, description: writing code}
        """
    )
    (pref,) = config.routing_preferences
    assert pref.models == ("openai/gpt-4o", "anthropic/claude-sonnet-4-6")
    assert pref.description == "generating code"  # first wins ...
    assert any("conflicting descriptions" in w for w in config.warnings)  # ... with a warning


def test_existing_top_level_routing_preference_wins_over_inline() -> None:
    config = load(
        """
        version: v0.3.0
        listeners:
          - {type: model, name: model_listener, port: 12000}
        model_providers:
          - model: openai/gpt-4o
            access_key: $OPENAI_API_KEY
            routing_preferences:
              - {name: code generation, description: inline description should lose}
        routing_preferences:
          - name: code generation
            description: user-defined top-level description wins
            models: [openai/gpt-4o]
        """
    )
    (pref,) = config.routing_preferences
    assert pref.description == "user-defined top-level description wins"
    assert pref.models == ("openai/gpt-4o",)


def test_v040_inline_routing_preferences_are_not_migrated() -> None:
    config = load(
        """
        version: v0.4.0
        listeners:
          - {type: model, name: model_listener, port: 12000}
        model_providers:
          - model: openai/gpt-4o
            access_key: $OPENAI_API_KEY
            routing_preferences:
              - {name: code generation, description: generating new code}
        """
    )
    assert config.routing_preferences == ()
    assert any("ignored from v0.4.0 on" in w for w in config.warnings)
    assert not any(p.name == "plano-orchestrator" for p in config.model_providers)


def test_top_level_routing_preferences() -> None:
    config = load(
        MINIMAL
        + """
  - model: anthropic/claude-sonnet-4-6
    access_key: $ANTHROPIC_API_KEY
routing_preferences:
  - name: code
    description: writing code
    models: [anthropic/claude-sonnet-4-6, gpt-4o]
    selection_policy: {prefer: none}
"""
    )
    (pref,) = config.routing_preferences
    assert pref.models == ("anthropic/claude-sonnet-4-6", "gpt-4o")
    assert pref.prefer == "none"
    assert "routing_preferences" not in config.unsupported


def test_routing_preference_with_undeclared_model() -> None:
    found = problems(
        MINIMAL
        + """
routing_preferences:
  - name: code
    description: writing code
    models: [openai/gpt-4o, anthropic/claude-sonnet-4-6]
"""
    )
    assert [(p.path, p.line) for p in found] == [("routing_preferences[0].models[1]", 12)]
    assert "references model 'anthropic/claude-sonnet-4-6' which is not declared" in found[0].message


def test_routing_preference_prefer_cheapest_needs_cost_source() -> None:
    text = MINIMAL + (
        "routing_preferences:\n"
        "  - {name: a, description: b, models: [openai/gpt-4o], selection_policy: {prefer: cheapest}}\n"
    )
    assert "uses prefer: cheapest but no cost metrics source is configured" in messages(text)
    load(text + "model_metrics_sources:\n  - {type: cost, provider: models.dev}\n")


def test_convert_legacy_listeners_with_ingress() -> None:
    config = load(
        """
        version: v0.1
        listeners:
          ingress_traffic: {address: 0.0.0.0, port: 10000, timeout: 30s}
          egress_traffic: {address: 127.0.0.1, port: 12001, timeout: 30s}
        llm_providers:
          - model: openai/gpt-4o
            access_key: test_key
        """
    )
    model, prompt = config.listeners
    assert (model.name, model.type, model.address, model.port, model.timeout_s) == (
        "egress_traffic",
        "model",
        "127.0.0.1",
        12001,
        30.0,
    )
    assert (prompt.name, prompt.type, prompt.port, prompt.timeout_s) == (
        "ingress_traffic",
        "prompt",
        10000,
        30.0,
    )
    assert config.model_listener == model


def test_convert_legacy_listeners_without_ingress_uses_defaults() -> None:
    config = load(
        """
        version: v0.1
        listeners:
          egress_traffic: {}
        llm_providers:
          - {model: openai/gpt-4o, access_key: k}
        """
    )
    (model,) = config.listeners
    assert (model.name, model.address, model.port, model.timeout_s) == (
        "egress_traffic",
        "0.0.0.0",
        12000,
        300.0,
    )


def test_legacy_listeners_need_providers() -> None:
    found = problems(
        """
        version: v0.1
        listeners:
          egress_traffic: {port: 12000}
        """
    )
    assert [p.message for p in found] == ["model_providers cannot be empty when using legacy format"]


def test_kimi_code_defaults() -> None:
    config = load(
        MINIMAL
        + """
  - model: moonshotai/kimi-for-coding
    access_key: k
    base_url: https://api.kimi.com/coding/
"""
    )
    kimi = provider(config, "moonshotai/kimi-for-coding")
    assert kimi.base_url == "https://api.kimi.com/coding/v1"
    assert kimi.headers == (("User-Agent", "KimiCLI/1.3"),)


def test_chatgpt_defaults() -> None:
    config = load(
        """
        version: v0.3.0
        listeners: [{type: model, name: model_listener, port: 12000}]
        model_providers:
          - model: chatgpt/*
        """,
        env={"CHATGPT_ACCOUNT_ID": "acct-1"},
    )
    chatgpt = provider(config, "chatgpt/*")
    headers = dict(chatgpt.headers)
    assert chatgpt.base_url == "https://chatgpt.com/backend-api/codex"
    assert chatgpt.passthrough_auth is True
    assert headers["ChatGPT-Account-Id"] == "acct-1"
    assert headers["originator"] == "codex_cli_rs"
    assert re.fullmatch(r"[0-9a-f-]{36}", headers["session_id"])


# --------------------------------------------------------------------------------------
# Provider normalizations
# --------------------------------------------------------------------------------------

NO_BASE_URL = [
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
]
NEEDS_BASE_URL = ["azure_openai", "ollama", "qwen", "amazon_bedrock", "plano"]


def one_provider(body: str, version: str = "v0.4.0") -> str:
    return (
        f"version: {version}\nlisteners: [{{name: llm, type: model, port: 12000}}]\nmodel_providers:\n{body}"
    )


@pytest.mark.parametrize("prefix", NO_BASE_URL)
def test_known_prefix_sets_provider_interface(prefix: str) -> None:
    config = load(one_provider(f"  - {{model: {prefix}/some-model, access_key: k}}\n"))
    p = config.model_providers[0]
    assert (p.name, p.model, p.provider_interface, p.prefix) == (
        f"{prefix}/some-model",
        "some-model",
        prefix,
        prefix,
    )
    assert not p.internal


@pytest.mark.parametrize("prefix", NEEDS_BASE_URL)
def test_prefix_requiring_base_url(prefix: str) -> None:
    text = one_provider(f"  - {{model: {prefix}/m1, access_key: k}}\n")
    assert f"Provider '{prefix}' requires 'base_url' to be set for model {prefix}/m1" in messages(text)
    config = load(
        one_provider(f"  - {{model: {prefix}/m1, access_key: k, base_url: 'http://localhost:8080'}}\n")
    )
    assert config.model_providers[0].provider_interface == prefix


@pytest.mark.parametrize(("alias", "interface"), [("google", "gemini"), ("amazon", "amazon_bedrock")])
def test_prefix_aliases(alias: str, interface: str) -> None:
    config = load(one_provider(f"  - {{model: {alias}/m1, access_key: k, base_url: 'https://h.example'}}\n"))
    p = config.model_providers[0]
    assert (p.name, p.provider_interface, p.prefix) == (f"{alias}/m1", interface, alias)


def test_name_defaults_and_custom_name() -> None:
    config = load(
        one_provider(
            "  - {model: together_ai/openai/gpt-oss-20b, access_key: k}\n"
            "  - {name: my-fast, model: groq/llama-3.1-8b-instant, access_key: k, default: true}\n"
            "  - {model: openai/*, access_key: k}\n"
        )
    )
    together, groq, wildcard = config.model_providers[:3]
    assert (together.name, together.model) == ("together_ai/openai/gpt-oss-20b", "openai/gpt-oss-20b")
    assert (groq.name, groq.model, groq.default, groq.prefix) == (
        "my-fast",
        "llama-3.1-8b-instant",
        True,
        "groq",
    )
    assert (wildcard.name, wildcard.model, wildcard.is_wildcard) == ("openai/*", "*", True)


def test_internal_providers_are_added_and_hidden() -> None:
    config = load(MINIMAL)
    internal = {p.name: p for p in config.model_providers if p.internal}
    assert set(internal) == {"arch-function", "plano/orchestrator"}
    assert (internal["arch-function"].model, internal["arch-function"].provider_interface) == (
        "Arch-Function",
        "plano",
    )
    assert [p.name for p in config.model_providers if not p.internal] == ["openai/gpt-4o"]


def test_unknown_prefix_with_interface_and_base_url() -> None:
    config = load(
        one_provider(
            "  - {model: custom/test-model, base_url: 'http://localhost:11223', provider_interface: openai}\n"
        )
    )
    p = config.model_providers[0]
    assert (p.name, p.model, p.provider_interface, p.base_url) == (
        "custom/test-model",
        "test-model",
        "openai",
        "http://localhost:11223",
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "  - {model: gpt-4o-mini, access_key: k}\n",
            "model_providers[0].model: Invalid model name gpt-4o-mini. Please provide model name in the "
            "format <provider>/<model_id> or <provider>/* for wildcards.",
        ),
        (
            "  - {model: openai/gpt-4o, access_key: k}\n"
            "  - {model: openai/gpt-4o, name: other, access_key: k}\n",
            "model_providers[1].model: Duplicate model name openai/gpt-4o",
        ),
        (
            "  - {model: openai/*, default: true}\n",
            "model_providers[0].default: Model openai/* is configured as default but uses wildcard (*).",
        ),
        (
            "  - {model: openai/a, default: true}\n  - {model: openai/b, default: true}\n",
            "model_providers[1].default: There must be at most one default LLM Provider",
        ),
        (
            "  - {model: openai/a, base_url: 'ftp://x.example'}\n",
            "model_providers[0].base_url: Please provide a valid URL with scheme (http/https) in base_url",
        ),
        (
            "  - {model: openai/a, base_url: 'http://x.example:notaport'}\n",
            "model_providers[0].base_url: Please provide a valid URL with scheme (http/https) in base_url",
        ),
        (
            "  - {model: openai/a, headers: {'bad header': x}}\n",
            "model_providers[0].headers['bad header']: invalid HTTP header name",
        ),
        (
            "  - {model: custom/a, base_url: 'http://x.example', provider_interface: anthropic}\n",
            "model_providers[0].provider_interface: expected one of plano, deepseek",
        ),
        ("  - {access_key: k}\n", "model_providers[0].model: missing required key 'model'"),
    ],
)
def test_provider_problems(body: str, expected: str) -> None:
    assert expected in messages(one_provider(body))


def test_wildcards_do_not_count_as_duplicate_ids() -> None:
    config = load(
        one_provider(
            "  - {model: openai/gpt-4o, access_key: k}\n"
            "  - {model: openai/*, access_key: k}\n"
            "  - {model: anthropic/*, access_key: k}\n"
        )
    )
    assert [p.model for p in config.model_providers if not p.internal] == ["gpt-4o", "*", "*"]


def test_headers_become_pairs_and_passthrough_warning() -> None:
    config = load(
        one_provider(
            "  - model: openai/gpt-4o\n"
            "    access_key: k\n"
            "    passthrough_auth: true\n"
            "    headers: {X-Org: acme, X-Team: '${TEAM}'}\n"
        ),
        env={"TEAM": "infra"},
    )
    p = config.model_providers[0]
    assert p.headers == (("X-Org", "acme"), ("X-Team", "infra"))
    assert p.passthrough_auth and p.access_key == "k"
    (warning,) = config.warnings
    assert "has both 'passthrough_auth: true' and 'access_key'" in warning
    assert warning.startswith("line 4: model_providers[0]")


def test_no_providers_at_all() -> None:
    text = "version: v0.4.0\nlisteners: [{name: llm, type: model, port: 12000}]\n"
    assert messages(text) == "model_providers: There must be at least one LLM Provider"


def test_llm_providers_alias() -> None:
    config = load(
        """
        version: v0.3.0
        listeners: [{name: llm, type: model, port: 12000}]
        llm_providers:
          - {model: openai/gpt-4o, access_key: $OPENAI_API_KEY}
        """
    )
    assert config.model_providers[0].access_key == "sk-openai"
    assert "llm_providers" not in config.unsupported


def test_llm_providers_and_model_providers_together() -> None:
    found = problems(MINIMAL + "llm_providers:\n  - {model: openai/gpt-4.1}\n")
    assert [(p.path, p.line) for p in found] == [("llm_providers", 8)]
    assert found[0].message.startswith("Please provide either llm_providers or model_providers, not both")


# --------------------------------------------------------------------------------------
# Aliases
# --------------------------------------------------------------------------------------


def test_model_aliases() -> None:
    config = load(
        MINIMAL
        + """
  - model: anthropic/*
    access_key: k
model_aliases:
  fast: {target: gpt-4o}
  smart: {target: openai/gpt-4o}
  arch.creative.v1: {target: anthropic/claude-sonnet-4-6}
"""
    )
    assert config.model_aliases == (
        ("fast", "gpt-4o"),
        ("smart", "openai/gpt-4o"),
        ("arch.creative.v1", "anthropic/claude-sonnet-4-6"),
    )


def test_alias_problem_path_quotes_dotted_alias_names() -> None:
    found = problems(MINIMAL + "model_aliases:\n  arch.v1: {target: o3}\n")
    assert [(p.path, p.line) for p in found] == [("model_aliases['arch.v1'].target", 9)]


# --------------------------------------------------------------------------------------
# Listeners and durations
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("300s", 300.0),
        ("1.5s", 1.5),
        ("5m", 300.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        (".5s", 0.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "s", "1.5.2s", "-3s", "3 days", ""])
def test_parse_duration_rejects(text: str) -> None:
    assert parse_duration(text) is None


def test_zero_duration_means_no_deadline() -> None:
    assert parse_duration("0s") == math.inf


def test_version_tuple() -> None:
    assert version_tuple("v0.3.0") < (0, 4, 0) <= version_tuple("v0.4.0")
    assert version_tuple("0.1-beta") == (0, 1, 0)
    assert version_tuple("v0.1") == (0, 1, 0)


def test_listener_defaults_per_type() -> None:
    config = load(
        """
        version: v0.4.0
        listeners:
          - {name: m, type: model}
          - {name: p, type: prompt}
          - {name: a, type: agent, port: 8001}
          - {name: b, type: agent, port: 8002, timeout: 5m, address: 127.0.0.1}
        model_providers: [{model: openai/gpt-4o, access_key: k}]
        """
    )
    got = [(lst.name, lst.type, lst.address, lst.port, lst.timeout_s) for lst in config.listeners]
    assert got == [
        ("m", "model", "0.0.0.0", 12000, 300.0),
        ("p", "prompt", "0.0.0.0", 10000, 300.0),
        ("a", "agent", "0.0.0.0", 8001, 30.0),
        ("b", "agent", "127.0.0.1", 8002, 300.0),
    ]


def test_default_model_listener_is_synthesized() -> None:
    config = load(
        """
        version: v0.3.0
        listeners:
          - {type: prompt, name: prompt_listener, port: 10000}
        model_providers: [{model: openai/gpt-4o, access_key: k}]
        """
    )
    assert config.model_listener is not None
    m = config.model_listener
    assert (m.name, m.address, m.port, m.timeout_s) == ("egress_traffic", "0.0.0.0", 12000, 300.0)
    assert config.listeners[0].name == "prompt_listener"


def test_listener_fields_kept() -> None:
    config = load(
        """
        version: v0.4.0
        filters: [{id: guard, url: "http://localhost:1"}]
        listeners:
          - {name: m, type: model, port: 12000, max_retries: 3,
             input_filters: [guard], output_filters: [guard]}
        model_providers: [{model: openai/gpt-4o, access_key: k}]
        """
    )
    m = config.listeners[0]
    assert (m.max_retries, m.input_filters, m.output_filters) == (3, ("guard",), ("guard",))
    assert "listeners[0].max_retries" not in config.unsupported
    assert not set(config.unsupported) & {
        "filters",
        "listeners[0].input_filters",
        "listeners[0].output_filters",
    }


@pytest.mark.parametrize(
    ("listeners", "expected"),
    [
        (
            "  - {name: a, type: model, port: 1}\n  - {name: b, type: model, port: 2}\n",
            "listeners[1].type: only one model listener is allowed, found 2",
        ),
        ("  - {name: a, type: agent}\n", "listeners[0].port: missing required key 'port'"),
        (
            "  - {name: a, type: model, timeout: 30}\n",
            "listeners[0].timeout: expected a string, got integer 30",
        ),
        ("  - {name: a, type: model, timeout: soon}\n", "listeners[0].timeout: invalid duration 'soon'"),
        ("  - {name: a, type: router}\n", "listeners[0].type: expected one of model, prompt, agent"),
        ("  - {type: model}\n", "listeners[0].name: missing required key 'name'"),
        ("  - {name: a, type: model, port: 70000}\n", "listeners[0].port: must be at most 65535"),
        (
            "  - {name: a, type: model, port: 9000}\n  - {name: a, type: prompt, port: 9001}\n",
            "listeners[1].name: Duplicate listener name 'a'",
        ),
        (
            "  - {name: a, type: model, port: 9000}\n  - {name: b, type: prompt, port: 9000}\n",
            "listeners[1].port: port 9000 is already used by listener 'a'",
        ),
        (
            "  - {name: a, type: model, filter_chain: [x]}\n",
            "listeners[0].filter_chain: Unknown key 'filter_chain'",
        ),
    ],
)
def test_listener_problems(listeners: str, expected: str) -> None:
    providers = "model_providers: [{model: openai/gpt-4o, access_key: k}]\n"
    text = f"version: v0.4.0\nlisteners:\n{listeners}{providers}"
    assert expected in messages(text)


def test_listeners_must_be_list_or_mapping() -> None:
    text = "version: v0.4.0\nlisteners: 12000\nmodel_providers: [{model: openai/gpt-4o, access_key: k}]\n"
    assert messages(text) == "listeners: expected a list or a mapping, got integer 12000"


# --------------------------------------------------------------------------------------
# Env substitution
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expanded", "missing"),
    [
        ("$A", "1", []),
        ("${A}", "1", []),
        ("x-$A-${B}-y", "x-1-2-y", []),
        ("postgresql://u:$PW@h/db", "postgresql://u:$PW@h/db", ["PW"]),
        ("${NOPE} and $NOPE", "${NOPE} and $NOPE", ["NOPE"]),
        ("costs $5", "costs $5", []),
        ("$$A", "$$A", []),
        ("no dollars", "no dollars", []),
    ],
)
def test_expand_env(text: str, expanded: str, missing: list[str]) -> None:
    assert expand_env(text, {"A": "1", "B": "2"}) == (expanded, missing)


def test_env_substitution_in_any_used_string() -> None:
    config = load(
        """
        version: v0.4.0
        listeners:
          - {name: $LISTENER, type: model, address: "${BIND}", port: 12000}
        model_providers:
          - model: ollama/llama3.1
            base_url: http://${OLLAMA_HOST}:11434
        state_storage:
          type: postgres
          connection_string: postgresql://plano:${DB_PASSWORD}@localhost:5432/plano
        """,
        env={"LISTENER": "llm", "BIND": "127.0.0.1", "OLLAMA_HOST": "gpu-box", "DB_PASSWORD": "s3cret"},
    )
    assert (config.listeners[0].name, config.listeners[0].address) == ("llm", "127.0.0.1")
    assert config.model_providers[0].base_url == "http://gpu-box:11434"
    assert config.state_storage is not None
    assert config.state_storage.connection_string == "postgresql://plano:s3cret@localhost:5432/plano"


def test_unset_env_var_is_a_problem_with_path_and_line() -> None:
    found = problems(MINIMAL, env={})
    assert found == [
        Problem(
            path="model_providers[0].access_key",
            line=7,
            message="environment variable OPENAI_API_KEY is not set",
        )
    ]


def test_unset_env_var_under_unsupported_key_is_ignored() -> None:
    config = load(
        MINIMAL
        + "tracing:\n  exporters:\n    - {type: posthog, url: 'https://x.example', api_key: $PH_KEY}\n"
    )
    assert "tracing.exporters" in config.unsupported


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "from-os")
    config = load_config_text(textwrap.dedent(MINIMAL))
    assert config.model_providers[0].access_key == "from-os"


# --------------------------------------------------------------------------------------
# Errors: line numbers, many at once, unknown keys, types, broken files
# --------------------------------------------------------------------------------------


def test_error_format_names_file_line_and_path() -> None:
    text = one_provider("  - model: gpt-4o-mini\n")
    with pytest.raises(ConfigError) as info:
        load_config_text(text, source="config.yaml", env={})
    assert str(info.value) == (
        "config.yaml:4: model_providers[0].model: Invalid model name gpt-4o-mini. Please provide model "
        "name in the format <provider>/<model_id> or <provider>/* for wildcards."
    )


def test_all_problems_reported_at_once_in_line_order() -> None:
    text = """\
version: v9
listeners:
  - name: llm
    type: model
    port: "12000"
modle_providers: []
model_providers:
  - model: openai/gpt-4o
    access_key: $MISSING_KEY
  - model: gpt-4o
  - model: openai/gpt-4o-mini
    default: yes
    base_url: not a url
model_aliases:
  fast: {target: nope}
state_storage: {type: postgres}
plano_trio:
  max_request_body_bytes: lots
"""
    with pytest.raises(ConfigError) as info:
        load_config_text(text, source="c.yaml", env={})
    got = [(p.line, p.path) for p in info.value.problems]
    assert got == [
        (1, "version"),
        (5, "listeners[0].port"),
        (6, "modle_providers"),
        (9, "model_providers[0].access_key"),
        (10, "model_providers[1].model"),
        (13, "model_providers[2].base_url"),
        (15, "model_aliases.fast.target"),
        (16, "state_storage.connection_string"),
        (18, "plano_trio.max_request_body_bytes"),
    ]
    lines = str(info.value).splitlines()
    assert len(lines) == 9
    assert lines[2] == "c.yaml:6: modle_providers: Unknown key 'modle_providers'"
    assert lines[1] == "c.yaml:5: listeners[0].port: expected an integer, got string '12000'"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", [(None, "", "config file is empty")]),
        ("# only a comment\n", [(None, "", "config file is empty")]),
        ("- a\n- b\n", [(1, "", "top level must be a mapping of keys, got a list")]),
        ("version: v0.4.0\nlisteners: [\n", [(3, "", "invalid YAML")]),
        ("a: 1\n  b: 2\n", [(2, "", "invalid YAML")]),
        ("x: !!python/object:os.system {}\n", [(1, "", "invalid YAML")]),
        (
            "listeners: []\nmodel_providers: [{model: openai/x}]\n",
            [(1, "version", "missing required key 'version'")],
        ),
        (
            "version: v0.4.0\nmodel_providers: [{model: openai/x}]\n",
            [(1, "listeners", "missing required key 'listeners'")],
        ),
        (
            "version: 0.1\nlisteners: []\nmodel_providers: [{model: openai/x}]\n",
            [(1, "version", "expected one of v0.1, v0.1.0, 0.1-beta, 0.2.0, v0.3.0, v0.4.0; got number 0.1")],
        ),
    ],
)
def test_broken_files(text: str, expected: list[tuple[int | None, str, str]]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, env={})
    got = [(p.line, p.path, p.message) for p in info.value.problems]
    assert len(got) == len(expected)
    for (line, path, message), (want_line, want_path, want_message) in zip(got, expected, strict=True):
        assert (line, path) == (want_line, want_path)
        assert message.startswith(want_message)


@pytest.mark.parametrize("version", ["v0.1", "v0.1.0", "0.1-beta", "0.2.0", "v0.3.0", "v0.4.0"])
def test_accepted_versions(version: str) -> None:
    config = load(MINIMAL.replace("v0.4.0", version))
    assert config.version == version


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "overrides: {upstream_connect_timeout: 5}\n",
            "overrides.upstream_connect_timeout: expected a string",
        ),
        (
            "overrides: {use_agent_orchestrator: maybe}\n",
            "overrides.use_agent_orchestrator: expected true or false",
        ),
        ("model_aliases: {fast: gpt-4o}\n", "model_aliases.fast: expected a mapping, got string 'gpt-4o'"),
        ("model_aliases: {fast: {target: gpt-4o, to: x}}\n", "model_aliases.fast.to: Unknown key 'to'"),
        ("state_storage: {type: redis}\n", "state_storage.type: expected one of memory, postgres"),
        ("routing: {session_max_entries: 20000}\n", "routing.session_max_entries: must be at most 10000"),
        ("routing: {session_cache: {type: redis}}\n", "session_cache.url is required when type is redis"),
        ("tracing: {sampling_rate: 5}\n", "tracing.sampling_rate: Unknown key 'sampling_rate'"),
        (
            "tracing: {opentracing_grpc_endpoint: 'https://otel:4317'}\n",
            "Invalid opentracing_grpc_endpoint https://otel:4317, scheme must be http",
        ),
        (
            "agents: [{id: a, url: 'http://x'}, {id: a, url: 'http://y'}]\n",
            "agents[1].id: Duplicate agent id a",
        ),
        (
            "prompt_targets: [{name: t, description: d, endpoint: {name: api, path: /x}}]\n",
            "Unknown endpoint api, please add it in endpoints section",
        ),
        (
            "model_metrics_sources: [{type: price, provider: models.dev}]\n",
            "model_metrics_sources[0].type: expected one of cost, latency",
        ),
        ("routing: {routing_budget: {max_switch_spend_pct: 20}}\n", "routing.routing_budget requires"),
        ("mode: chat\n", "mode: expected one of llm, prompt"),
        ("plano_trio: {wrokers: 4}\n", "plano_trio.wrokers: Unknown key 'wrokers'"),
        (
            "plano_trio: {workers: 2}\nstate_storage: {type: memory}\n",
            "workers > 1 needs state_storage type postgres",
        ),
    ],
)
def test_section_problems(extra: str, expected: str) -> None:
    assert expected in messages(MINIMAL + extra)


def test_duplicate_yaml_key_is_a_warning() -> None:
    config = load(MINIMAL + "model_aliases: {a: {target: gpt-4o}}\nmodel_aliases: {b: {target: gpt-4o}}\n")
    assert config.model_aliases == (("b", "gpt-4o"),)
    assert config.warnings == ("line 9: model_aliases: key given more than once; the last value is used",)


def test_yaml_anchors_and_merge_keys() -> None:
    config = load(
        """
        version: v0.4.0
        listeners: [{name: llm, type: model, port: 12000}]
        model_providers:
          - &base
            model: openai/gpt-4o
            access_key: shared
          - <<: *base
            model: openai/gpt-4.1
        """
    )
    assert [(p.name, p.access_key) for p in config.model_providers[:2]] == [
        ("openai/gpt-4o", "shared"),
        ("openai/gpt-4.1", "shared"),
    ]


# --------------------------------------------------------------------------------------
# Unsupported keys, state storage, plano_trio settings
# --------------------------------------------------------------------------------------


def test_unsupported_keys_listed_not_rejected() -> None:
    config = load(
        MINIMAL
        + """
agents: [{id: a, url: "http://localhost:1"}]
endpoints: {api: {endpoint: "localhost:80"}}
system_prompt: be nice
prompt_guards: {input_guards: {jailbreak: {on_exception: {message: "no"}}}}
ratelimits: [{model: openai/gpt-4o, selector: {key: x-user, value: "*"}, limit: {tokens: 5, unit: minute}}]
prompt_caching: {enabled: true}
mode: llm
overrides:
  upstream_connect_timeout: 2s
  disable_signals: true
state_storage: {type: memory}
"""
    )
    assert config.unsupported == (
        "endpoints",
        "system_prompt",
        "prompt_guards",
        "mode",
    )
    assert config.state_storage is not None and config.state_storage.type == "memory"
    assert config.server.upstream_connect_timeout_s == 2.0
    assert config.server.signals is False  # overrides.disable_signals is acted on


def test_plano_trio_settings_and_overrides() -> None:
    config = load(
        MINIMAL
        + """
overrides:
  upstream_connect_timeout: 10s
  upstream_tls_ca_path: /etc/plano/ca.pem
plano_trio:
  graceful_shutdown_s: 5
  max_request_body_bytes: 1048576
  upstream_pool_max_per_host: 32
  ca_bundle: /etc/trio/ca.pem
"""
    )
    s = config.server
    assert s.graceful_shutdown_s == 5.0 and isinstance(s.graceful_shutdown_s, float)
    assert (s.max_request_body_bytes, s.upstream_pool_max_per_host) == (1048576, 32)
    assert s.upstream_connect_timeout_s == 10.0
    assert s.ca_bundle == "/etc/trio/ca.pem"  # plano_trio wins over overrides
    assert config.unsupported == ()


def test_overrides_feed_server_settings_without_plano_trio() -> None:
    config = load(MINIMAL + "overrides: {upstream_connect_timeout: 1.5s, upstream_tls_ca_path: /ca.pem}\n")
    assert (config.server.upstream_connect_timeout_s, config.server.ca_bundle) == (1.5, "/ca.pem")
    assert load(MINIMAL).server.upstream_connect_timeout_s == 5.0


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("plano_trio: {graceful_shutdown_s: -1}\n", "plano_trio.graceful_shutdown_s: must be at least 0"),
        (
            "plano_trio: {upstream_pool_max_per_host: 0}\n",
            "plano_trio.upstream_pool_max_per_host: must be at least 1",
        ),
        ("plano_trio: {max_request_body_bytes: 1.5}\n", "expected an integer, got number 1.5"),
        ("plano_trio: {ca_bundle: true}\n", "plano_trio.ca_bundle: expected a string, got boolean true"),
        (
            "overrides: {upstream_connect_timeout: fast}\n",
            "overrides.upstream_connect_timeout: invalid duration",
        ),
    ],
)
def test_settings_problems(section: str, expected: str) -> None:
    assert expected in messages(MINIMAL + section)


def test_max_loop_lag_ms_is_off_unless_set() -> None:
    assert load(MINIMAL).server.max_loop_lag_ms is None
    assert load(MINIMAL + "plano_trio: {max_loop_lag_ms: 50}\n").server.max_loop_lag_ms == 50


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "plano_trio.max_loop_lag_ms: must be at least 1, got 0"),
        ("-20", "plano_trio.max_loop_lag_ms: must be at least 1, got -20"),
        ("2.5", "plano_trio.max_loop_lag_ms: expected an integer, got number 2.5"),
        ("50ms", "plano_trio.max_loop_lag_ms: expected an integer, got string '50ms'"),
        ("true", "plano_trio.max_loop_lag_ms: expected an integer, got boolean true"),
        ("null", "plano_trio.max_loop_lag_ms: expected an integer, got null"),
    ],
)
def test_max_loop_lag_ms_problems(value: str, expected: str) -> None:
    assert expected in messages(MINIMAL + f"plano_trio: {{max_loop_lag_ms: {value}}}\n")


def test_postgres_state_storage() -> None:
    config = load(
        MINIMAL + "state_storage: {type: postgres, connection_string: 'postgresql://localhost/plano'}\n"
    )
    assert config.state_storage is not None
    assert (config.state_storage.type, config.state_storage.connection_string) == (
        "postgres",
        "postgresql://localhost/plano",
    )
    assert "state_storage" not in config.unsupported


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def test_load_config_from_file_and_errors_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "config.yaml"
    good.write_text(textwrap.dedent(MINIMAL))
    assert load_config(good, env=ENV).model_providers[0].name == "openai/gpt-4o"

    bad = tmp_path / "bad.yaml"
    bad.write_text("version: v0.4.0\nlisteners: []\nmodel_providers: [{model: nope}]\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad, env={})
    assert str(info.value).startswith(f"{bad}:3: model_providers[0].model: Invalid model name nope.")

    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.yaml")
    assert "cannot read config file" in str(info.value)

    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)


def test_find_config_file(tmp_path: Path) -> None:
    assert find_config_file(None, tmp_path) is None
    (tmp_path / "plano_config.yaml").write_text("x")
    assert find_config_file(None, tmp_path) == tmp_path / "plano_config.yaml"
    (tmp_path / "config.yaml").write_text("x")
    assert find_config_file(None, tmp_path) == tmp_path / "config.yaml"
    assert find_config_file("other.yaml", tmp_path) == tmp_path / "other.yaml"  # even if missing
    assert find_config_file(str(tmp_path / "abs.yaml"), Path("/")) == tmp_path / "abs.yaml"
    sub = tmp_path / "sub"
    sub.mkdir()
    assert find_config_file("sub", tmp_path) is None
    (sub / "plano_config.yaml").write_text("x")
    assert find_config_file("sub", tmp_path) == sub / "plano_config.yaml"


def test_config_is_frozen() -> None:
    config = load(MINIMAL)
    with pytest.raises(AttributeError):
        config.version = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------------------
# Plano's own example configs (tests/plano_configs/, copied from katanemo/plano)
# --------------------------------------------------------------------------------------

PLANO_CONFIGS = Path(__file__).parent / "plano_configs"

EXPECTED_FAILURES = {
    # Stale docs example that Plano's schema rejects as well.
    "docs_agents_filters_stale.yaml": [
        "listeners[0].router: expected one of plano_orchestrator_v1",
        "listeners[0].agents[0].filter_chain: Unknown key 'filter_chain'",
    ],
}


def dummy_env(text: str) -> dict[str, str]:
    return {name: f"dummy-{name.lower()}" for name in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text)}


@pytest.mark.parametrize("path", sorted(PLANO_CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_plano_example_configs(path: Path) -> None:
    env = dummy_env(path.read_text())
    expected = EXPECTED_FAILURES.get(path.name)
    if expected is None:
        config = load_config(path, env=env)
        assert config.model_listener is not None
        assert any(not p.internal for p in config.model_providers)
        return
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    rendered = [f"{p.path}: {p.message}" for p in info.value.problems]
    assert len(rendered) == len(expected), rendered
    for got, want in zip(rendered, expected, strict=True):
        assert got.startswith(want)


def test_model_alias_demo_resolves_every_alias() -> None:
    path = PLANO_CONFIGS / "model_alias_routing.yaml"
    config = load_config(path, env=dummy_env(path.read_text()))
    aliases = dict(config.model_aliases)
    assert aliases["coding-model"] == "us.amazon.nova-premier-v1:0"
    bedrock = provider(config, "amazon_bedrock/us.amazon.nova-premier-v1:0")
    assert (bedrock.provider_interface, bedrock.model) == ("amazon_bedrock", "us.amazon.nova-premier-v1:0")


def test_full_reference_unsupported_keys() -> None:
    path = PLANO_CONFIGS / "full_reference.yaml"
    config = load_config(path, env=dummy_env(path.read_text()))
    assert "tracing.exporters" in config.unsupported
    assert "tracing" not in config.unsupported
    assert config.tracing.random_sampling == 100 and config.tracing.endpoint == "http://localhost:4317"
    assert "listeners[0].agents" not in config.unsupported
    assert "overrides.upstream_connect_timeout" not in config.unsupported
    assert config.server.upstream_connect_timeout_s == 10.0
    assert [lst.type for lst in config.listeners] == ["agent", "model", "prompt"]


def test_broken_provider_does_not_cause_knock_on_alias_errors() -> None:
    invalid_name = one_provider("  - {model: gpt-4o}\n") + "model_aliases: {fast: {target: gpt-4o}}\n"
    assert [p.path for p in problems(invalid_name)] == ["model_providers[0].model"]
    missing_model = one_provider("  - {access_key: k}\n") + "model_aliases: {fast: {target: gpt-4o}}\n"
    assert [p.path for p in problems(missing_model)] == ["model_providers[0].model"]


# --- state_storage connection strings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conninfo", "expected"),
    [
        ("postgresql://u:hunter2@h:notaport/db", "port must be an integer from 1 to 65535"),
        ("postgresql://u:hunter2@h:70000/db", "port must be an integer from 1 to 65535"),
        ("host=h port=5432,abc password=hunter2", "port must be an integer"),
        ("host=h connect_timeout=soon password=hunter2", "connect_timeout must be an integer"),
        ("foo=bar=baz password=hunter2", 'invalid connection option "foo"'),
        ("host=h bogus=1 password=hunter2", 'invalid connection option "bogus"'),
        ("postgresql://u:hunter2@h/db?bogus=1", 'invalid URI query parameter: "bogus"'),
        ("postgresql://u:hunter2 x@h/db", 'unexpected spaces found in "…"'),
        ("postgresql://u:hunter2@[::1/db", 'matching "]" in IPv6 host address in URI: "…"'),
        ("host=h password=hunter2 x", 'missing "=" after "…"'),
    ],
)
def test_malformed_connection_string_is_a_config_problem_without_its_password(
    conninfo: str, expected: str
) -> None:
    text = MINIMAL + f"state_storage:\n  type: postgres\n  connection_string: '{conninfo}'\n"
    with pytest.raises(ConfigError) as info:
        load_config_text(text, source="c.yaml", env=ENV)
    [problem] = info.value.problems
    assert (problem.line, problem.path) == (text.count("\n"), "state_storage.connection_string")
    assert problem.message.startswith("invalid connection string: ")
    assert expected in problem.message
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "conninfo",
    [
        "postgresql://u:pw@db:5432/plano?sslmode=require",
        "host=a,b port=5432,5433 dbname=x",
        "postgresql://h1:1,h2:2/db",
        "postgresql://u@h:5432,/db",
        "",  # reported as missing, not as malformed
    ],
)
def test_well_formed_connection_strings_pass(conninfo: str) -> None:
    text = MINIMAL + f"state_storage: {{type: postgres, connection_string: '{conninfo}'}}\n"
    if conninfo:
        assert load(text).state_storage is not None
    else:
        assert "connection_string is required" in messages(text)


def test_config_does_not_import_the_state_store() -> None:
    """config/ sits below state/: the store reads the settings the config builds, never the reverse."""
    import ast

    package = Path(__file__).resolve().parent.parent / "plano_trio" / "config"
    upward: list[str] = []
    for module in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            upward += [f"{module.name}: {name}" for name in names if name.startswith("plano_trio.state")]
    assert upward == []


# --- substituted values never appear in messages -------------------------------------------------------

SECRET = "sk-live-9f8e7d6c"


@pytest.mark.parametrize(
    ("extra", "where", "expected"),
    [
        (
            "listeners: [{name: llm, type: model, port: $PORT_SECRET}]\n",
            "listeners[0].port",
            "expected an integer, got the value of $PORT_SECRET",
        ),
        (
            "listeners: [{name: llm, type: model, port: '${PORT_SECRET}'}]\n",
            "listeners[0].port",
            "expected an integer, got the value of $PORT_SECRET",
        ),
        (
            "listeners: [{name: llm, type: model, port: 'p-$PORT_SECRET-$OTHER'}]\n",
            "listeners[0].port",
            "expected an integer, got a string made with $PORT_SECRET, $OTHER",
        ),
        (
            "plano_trio: {workers: $PORT_SECRET}\n",
            "plano_trio.workers",
            "expected an integer, got the value of $PORT_SECRET",
        ),
        (
            "state_storage: {type: $PORT_SECRET}\n",
            "state_storage.type",
            "expected one of memory, postgres; got the value of $PORT_SECRET",
        ),
        (
            "listeners: [{name: llm, type: model, port: 1, timeout: $PORT_SECRET}]\n",
            "listeners[0].timeout",
            "invalid duration '$PORT_SECRET'",
        ),
        (
            "overrides: {upstream_connect_timeout: 'x$PORT_SECRET'}\n",
            "overrides.upstream_connect_timeout",
            "invalid duration 'x$PORT_SECRET'",
        ),
    ],
)
def test_a_type_error_names_the_variable_not_its_value(extra: str, where: str, expected: str) -> None:
    text = MINIMAL.replace("listeners:\n  - {name: llm, type: model, port: 12000}\n", "") + extra
    if "listeners" not in extra:
        text += "listeners: [{name: llm, type: model, port: 12000}]\n"
    env = {**ENV, "PORT_SECRET": SECRET, "OTHER": "other-secret-value"}
    with pytest.raises(ConfigError) as info:
        load_config_text(text, source="c.yaml", env=env)
    report = str(info.value)
    assert f"{where}: {expected}" in report
    assert SECRET not in report and "other-secret-value" not in report


def test_a_substituted_value_that_is_valid_is_used() -> None:
    text = MINIMAL.replace("port: 12000", "port: 12000, timeout: $T")
    config = load_config_text(text, env={**ENV, "T": "30s"})
    assert config.listeners[0].timeout_s == 30.0
