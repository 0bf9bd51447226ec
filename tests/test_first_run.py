"""Zero-config: `plano-trio up` in a directory without a config serves Plano's default config."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from planoai.defaults import synthesize_default_config

from plano_trio.apis.kind import Api
from plano_trio.config import load_config_text
from plano_trio.config.defaults import PROVIDER_DEFAULTS, SOURCE, zero_config
from plano_trio.providers.resolve import ModelResolver
from tests.test_cli import Server, run_cli

SECRET = "sk-zero-config-secret-4242"
KEY_VARS = [p.env_var for p in PROVIDER_DEFAULTS]


def test_the_default_is_planoai_s_own_but_for_gemini_s_path() -> None:
    env = {"OPENAI_API_KEY": SECRET, "GROQ_API_KEY": "g", "EDENAI_API_KEY": ""}
    ours = yaml.safe_load(zero_config(env, 12345).text)
    plano = synthesize_default_config(env, listener_port=12345)  # planoai's module, installed as the oracle
    for entry in plano["model_providers"]:
        if entry["name"] == "gemini":
            assert entry["base_url"] == "https://generativelanguage.googleapis.com/v1beta"
            entry["base_url"] += "/openai"  # Plano's path lands on /v1beta/chat/completions, a 404 at Google
    assert ours == plano


def test_keyed_providers_come_first_and_nothing_is_default() -> None:
    synthesized = zero_config({"ANTHROPIC_API_KEY": SECRET, "DO_API_KEY": "d"})
    assert synthesized.keyed == ("anthropic", "digitalocean")
    assert synthesized.passthrough[:2] == ("openai", "gemini")
    assert SECRET not in synthesized.text and SECRET not in synthesized.summary
    assert "$ANTHROPIC_API_KEY" in synthesized.text
    config = load_config_text(
        synthesized.text, source=SOURCE, env={"ANTHROPIC_API_KEY": SECRET, "DO_API_KEY": "d"}
    )
    providers = {p.name: p for p in config.model_providers if not p.internal}
    assert list(providers)[:2] == ["anthropic", "digitalocean"]
    assert providers["anthropic"].access_key == SECRET and not providers["anthropic"].passthrough_auth
    assert providers["openai"].passthrough_auth and providers["openai"].access_key is None
    assert all(p.is_wildcard and not p.default for p in providers.values())
    assert config.tracing.random_sampling == 100 and config.tracing.endpoint == "http://localhost:4317"
    listener = config.model_listener
    assert listener is not None and (listener.address, listener.port) == ("0.0.0.0", 12000)


def test_every_default_provider_routes_where_plano_sends_it() -> None:
    config = load_config_text(zero_config({}).text, env={})
    resolver = ModelResolver(config)
    expected = {
        "openai/x": "https://api.openai.com/v1/chat/completions",
        "anthropic/x": "https://api.anthropic.com/v1/messages",
        "gemini/x": "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions",
        "groq/x": "https://api.groq.com/openai/v1/chat/completions",
        "deepseek/x": "https://api.deepseek.com/v1/chat/completions",
        "mistral/x": "https://api.mistral.ai/v1/chat/completions",
        "digitalocean/x": "https://inference.do-ai.run/v1/chat/completions",
        "vercel/x": "https://ai-gateway.vercel.sh/v1/chat/completions",
        "openrouter/x": "https://openrouter.ai/api/v1/chat/completions",
        "edenai/x": "https://api.edenai.run/v3/chat/completions",
    }
    for model, url in expected.items():
        route = resolver.resolve(model)
        assert route is not None, model
        api = route.upstream_api(Api.CHAT)
        got = f"{route.origin.scheme}://{route.origin.host}{route.target(api).decode()}"
        assert got == url, model
    bare = resolver.resolve("gpt-4o-mini")  # no default, yet a bare id resolves through the catalogue
    assert bare is not None and bare.label == "openai/gpt-4o-mini"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only OpenAI's key is set (the child gateway inherits `os.environ`)."""
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def _post(url: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.usefixtures("environment")
@pytest.mark.parametrize("where", ["cwd", "directory argument"])
def test_up_without_a_config_serves_the_default(tmp_path: Path, where: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    args, cwd = (
        (["--listener-port", "0"], empty)
        if where == "cwd"
        else ([str(empty), "--listener-port", "0"], tmp_path)
    )
    server = Server(args, cwd)
    try:
        with urllib.request.urlopen(f"{server.base}/v1/models", timeout=5) as response:
            models = [entry["id"] for entry in json.loads(response.read())["data"]]
        status, error = _post(  # pass-through provider, no key sent: refused here, before any network
            f"{server.base}/v1/chat/completions",
            {"model": "anthropic/claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]},
        )
    finally:
        assert server.stop() == 0
    assert server.port not in (None, 12000)  # --listener-port applies to the synthesized listener
    assert {"openai/gpt-4o-mini", "anthropic/claude-sonnet-4-6", "gemini/gemini-2.5-pro"} <= set(models)
    assert status == 401 and "passthrough_auth" in str(error)
    logs = "".join(server.lines)
    assert "zero-config default" in logs
    assert "keys from the environment: openai;" in logs
    assert "client's own key passed through: anthropic, gemini, groq" in logs
    assert SECRET not in logs


def test_a_named_config_that_does_not_exist_is_an_error_not_zero_config(tmp_path: Path) -> None:
    result = run_cli("up", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert result.returncode == 1
    assert "missing.yaml" in result.stderr and "zero-config" not in result.stderr
