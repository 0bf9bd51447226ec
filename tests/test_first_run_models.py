"""Wildcard providers expand from Plano's model catalogue: `/v1/models` lists the models, bare ids resolve."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from plano_trio.config import load_config_text
from plano_trio.providers.model_catalog import CATALOGUE_KEYS, catalogue_models, parse_catalogue
from plano_trio.providers.resolve import ModelResolver
from tests.mock_provider import MockProvider
from tests.support import running_gateway

CATALOGUE = Path(__file__).resolve().parent.parent / "plano_trio" / "providers" / "provider_models.yaml"


def _config(providers: str, aliases: str = "") -> str:
    return f"""
version: v0.4.0
listeners:
  - {{name: llm, type: model, address: 127.0.0.1, port: 0}}
model_providers:
{providers}
{aliases}
"""


def test_the_shipped_catalogue_is_plano_s_file_with_every_vendor() -> None:
    document = yaml.safe_load(CATALOGUE.read_text())
    assert sum(len(v) for v in document["providers"].values()) > 350
    parsed = parse_catalogue(document)
    assert set(parsed) == set(document["providers"])
    assert set(CATALOGUE_KEYS.values()) - set(parsed) == {"groq", "together"}  # Plano maps them, lists none
    assert "gpt-4o" in catalogue_models("openai")
    assert "claude-sonnet-4-6" in catalogue_models("anthropic")
    assert catalogue_models("gemini") == catalogue_models("google")
    assert "amazon.nova-pro-v1:0" in catalogue_models("amazon_bedrock")  # prefix cut at the first `/` only
    assert catalogue_models("mistral") and catalogue_models("xai") and catalogue_models("zhipu")
    for runtime_only in ("groq", "vercel", "openrouter", "edenai", "ollama", "nobody"):
        assert catalogue_models(runtime_only) == ()


@pytest.mark.parametrize(
    "document",
    [None, [], {"providers": []}, {"providers": {"a": "not a list"}}, {"providers": {1: ["x/y"]}}],
)
def test_a_malformed_catalogue_expands_nothing(document: object) -> None:
    assert all(not models for models in parse_catalogue(document).values())


def test_catalogue_entries_skip_blank_and_duplicate_models() -> None:
    parsed = parse_catalogue({"providers": {"v": ["v/a", "v/a", "v/", "noslash", 3, "v/b/c"]}})
    assert parsed == {"v": ("a", "b/c")}


def test_bare_ids_of_catalogue_models_resolve_to_their_wildcard() -> None:
    config = load_config_text(
        _config(
            "  - {model: anthropic/*, access_key: k}\n"
            "  - {model: openai/*, access_key: k}\n"
            "  - {model: openai/gpt-4o, access_key: k, base_url: 'http://127.0.0.1:1'}\n",
            "model_aliases:\n  smart: {target: anthropic/claude-sonnet-4-6}\n",
        )
    )
    resolver = ModelResolver(config)
    configured = resolver.resolve("gpt-4o")
    assert configured is not None and configured.origin.host == "127.0.0.1"  # configured beats the catalogue
    mini = resolver.resolve("gpt-4o-mini")
    assert mini is not None and (mini.label, mini.origin.host) == ("openai/gpt-4o-mini", "api.openai.com")
    assert resolver.resolve("gpt-4o-mini") is resolver.resolve("openai/gpt-4o-mini")  # one cached route
    alias = resolver.resolve("smart")
    assert alias is not None and alias.label == "anthropic/claude-sonnet-4-6"
    assert resolver.resolve("not-in-any-catalogue") is None
    runtime_only = resolver.resolve("openai/gpt-99")  # a known prefix still takes any model at run time
    assert runtime_only is not None and runtime_only.model == "gpt-99"


def test_among_wildcards_the_first_in_config_order_serves_a_shared_bare_id() -> None:
    config = load_config_text(
        _config(
            "  - {model: azure_openai/*, access_key: k, base_url: 'https://r.openai.azure.com'}\n"
            "  - {model: openai/*, access_key: k}\n"
        )
    )
    route = ModelResolver(config).resolve("gpt-4o")
    assert route is not None and route.provider.provider_interface == "azure_openai"


def test_models_list_expands_wildcards_in_config_order_without_duplicates() -> None:
    config = load_config_text(
        _config(
            "  - {model: openai/gpt-4o, access_key: k}\n"
            "  - {model: openai/*, access_key: k}\n"
            "  - {model: groq/*, access_key: k}\n"
            "  - {model: gemini/*, access_key: k}\n"
            "  - {model: openai/*, name: openai-again, access_key: k}\n"
        )
    )
    listed = ModelResolver(config).listed_models(config)
    names = [name for name, _ in listed]
    assert len(names) == len(set(names))
    assert names[0] == "openai/gpt-4o"
    openai = [n for n in names if n.startswith("openai/")]
    gemini = [n for n in names if n.startswith("gemini/")]
    assert len(openai) == len(catalogue_models("openai"))  # gpt-4o once, as configured
    assert [n.removeprefix("gemini/") for n in gemini] == list(catalogue_models("gemini"))
    assert names.index(openai[-1]) < names.index(gemini[0])  # config order, then catalogue order
    assert not any(n.startswith("groq/") for n in names)  # no catalogue entry: runtime-only
    assert dict(listed)["gemini/gemini-2.5-pro"] == "Gemini"


async def test_models_endpoint_lists_and_serves_catalogue_models(mock: MockProvider) -> None:
    config = _config(f"  - {{model: openai/*, access_key: k, base_url: '{mock.url}'}}\n")
    async with running_gateway(config) as gateway, httpx.AsyncClient(base_url=gateway.v1) as client:
        listed = (await client.get("/models")).json()
        answer = await client.post(
            "/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        )
    ids = [entry["id"] for entry in listed["data"]]
    assert listed["object"] == "list" and "openai/gpt-4o-mini" in ids
    assert {entry["owned_by"] for entry in listed["data"]} == {"OpenAI"}
    assert answer.status_code == 200, answer.text
    assert json.loads(mock.requests[-1].body)["model"] == "gpt-4o-mini"
