"""Inbound keys (`plano_trio.inbound_auth`) through the real gateway and the OpenAI and Anthropic SDKs:
401 in each SDK's shape, per-key models, `/v1/models` per key, passthrough providers, per-key rate
limits, agent listeners, and keys that never reach a provider, an agent or a log line."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from plano_trio.apis.kind import Api
from plano_trio.auth import KeyTable, fingerprint, presented_credentials, without_inbound_credentials
from plano_trio.config import ConfigError, load_config_text
from plano_trio.config.access_settings import InboundAuthSettings, InboundKey, digest_of
from plano_trio.ratelimit.tokens import count_tokens, input_text
from tests.agent_fakes import fake_agent
from tests.mock_provider import MockProvider
from tests.router_mock import router_mock
from tests.support import Gateway, in_thread, provider_config, running_gateway
from tests.test_agent_serve import FLIGHT_REPLY, USER, gateway_config, serving

ALL_KEY = "sk-gw-all-0123456789abcdef"
FAST_KEY = "sk-gw-fast-0123456789abcdef"
HASHED_KEY = "sk-gw-hashed-0123456789abcdef"
LIMITED_KEY = "sk-gw-limited-0123456789abcdef"
WRONG_KEY = "sk-gw-wrong-0123456789abcdef"
ENV = {"ALL_KEY": ALL_KEY, "FAST_KEY": FAST_KEY}
MESSAGES = [{"role": "user", "content": "reply with exactly: pong"}]
CHAT_COST = count_tokens("gpt-4o-mini", input_text(Api.CHAT, {"messages": MESSAGES}))


def auth_config(mock_url: str, keys_file: Path | None = None) -> str:
    hashed = hashlib.sha256(HASHED_KEY.encode()).hexdigest()
    file_line = f"    keys_file: {keys_file}\n" if keys_file else ""
    return provider_config(
        mock_url,
        extra_providers=f"  - model: anthropic/claude-sonnet-4-6\n    access_key: ant-server-key\n"
        f"    base_url: {mock_url}\n",
        tail=f"""plano_trio:
  inbound_auth:
    keys:
      - {{name: everything, key: $ALL_KEY}}
      - {{name: fast-only, key: $FAST_KEY, models: [fast, groq/*]}}
      - {{name: hashed, key_sha256: "{hashed}", models: [openai/gpt-4o-mini]}}
      - {{name: limited, key: {LIMITED_KEY}, rate_limit: {{tokens: {CHAT_COST}, unit: hour}}}}
{file_line}""",
    )


def oai(gw: Gateway, key: str, headers: dict[str, str] | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0, timeout=10, default_headers=headers)


def ant(gw: Gateway, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base, api_key=key, max_retries=0, timeout=10)


async def chat(gw: Gateway, key: str, model: str = "openai/gpt-4o-mini", **headers: str) -> str:
    completion = await in_thread(
        lambda: oai(gw, key, headers).chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
    )
    return completion.choices[0].message.content or ""


async def get(gw: Gateway, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return await in_thread(lambda: httpx.get(gw.base + path, headers=headers, timeout=10))


async def test_openai_sdk_401_shapes(mock: MockProvider) -> None:
    async with running_gateway(auth_config(mock.url), ENV) as gw:
        with pytest.raises(openai.AuthenticationError) as wrong:
            await chat(gw, WRONG_KEY)
        missing = await in_thread(
            lambda: httpx.post(f"{gw.v1}/chat/completions", json={"model": "fast", "messages": MESSAGES})
        )
        assert await chat(gw, ALL_KEY) == "pong"
    assert wrong.value.status_code == 401
    assert wrong.value.body == {
        "message": "Incorrect API key provided",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert wrong.value.response.headers["www-authenticate"].startswith("Bearer")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "missing_api_key"
    assert len(mock.requests) == 1  # only the accepted request reached the provider


async def test_anthropic_sdk_401_shape_and_x_api_key(mock: MockProvider) -> None:
    def ask(key: str) -> anthropic.types.Message:
        return ant(gw, key).messages.create(
            model="anthropic/claude-sonnet-4-6",
            max_tokens=16,
            messages=MESSAGES,  # type: ignore[arg-type]
        )

    async with running_gateway(auth_config(mock.url), ENV) as gw:
        with pytest.raises(anthropic.AuthenticationError) as wrong:
            await in_thread(lambda: ask(WRONG_KEY))
        answer = await in_thread(lambda: ask(ALL_KEY))  # the Anthropic SDK sends x-api-key
    assert wrong.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Incorrect API key provided"},
    }
    assert answer.content[0].text == "pong"  # type: ignore[union-attr]
    seen = mock.requests[-1]
    assert seen.headers["x-api-key"] == "ant-server-key"
    assert ALL_KEY not in json.dumps(seen.headers)


async def test_inbound_key_never_reaches_the_provider(mock: MockProvider) -> None:
    async with running_gateway(auth_config(mock.url), ENV) as gw:
        await chat(gw, ALL_KEY)
        await chat(gw, HASHED_KEY)  # a key known only by its SHA-256
    for seen in mock.requests:
        assert seen.headers["authorization"] == "Bearer server-key"
        dumped = json.dumps(seen.headers)
        assert ALL_KEY not in dumped and HASHED_KEY not in dumped


async def test_open_paths_and_models_per_key(mock: MockProvider) -> None:
    async with running_gateway(auth_config(mock.url), ENV) as gw:
        health = await get(gw, "/healthz")
        preflight = await in_thread(lambda: httpx.options(f"{gw.v1}/models", timeout=10))
        anonymous = await get(gw, "/v1/models")
        debug = await get(gw, "/debug/access")
        everything = await in_thread(lambda: [m.id for m in oai(gw, ALL_KEY).models.list()])
        fast_only = await in_thread(lambda: [m.id for m in oai(gw, FAST_KEY).models.list()])
        hashed = await in_thread(lambda: [m.id for m in oai(gw, HASHED_KEY).models.list()])
    assert health.status_code == 200 and preflight.status_code == 204
    assert anonymous.status_code == 401 and debug.status_code == 401
    assert {"openai/gpt-4o-mini", "groq/llama-3.3-70b", "anthropic/claude-sonnet-4-6"} <= set(everything)
    assert fast_only == ["groq/llama-3.3-70b", "fast"]  # granted the alias only, not its target
    assert hashed == ["openai/gpt-4o-mini"]


@pytest.mark.parametrize("model", ["fast", "openai/gpt-4o-mini", "gpt-4o-mini"])
async def test_allowed_models_by_any_name(mock: MockProvider, model: str) -> None:
    async with running_gateway(auth_config(mock.url), ENV) as gw:
        key = HASHED_KEY if model != "fast" else FAST_KEY
        assert await chat(gw, key, model) == "pong"


async def test_forbidden_model_is_403_in_both_shapes(mock: MockProvider) -> None:
    async with running_gateway(auth_config(mock.url), ENV) as gw:
        with pytest.raises(openai.PermissionDeniedError) as chat_error:
            await chat(gw, FAST_KEY, "anthropic/claude-sonnet-4-6")
        with pytest.raises(anthropic.PermissionDeniedError) as messages_error:
            await in_thread(
                lambda: ant(gw, HASHED_KEY).messages.create(
                    model="openai/gpt-4.1",  # served (openai/*), but not granted to this key
                    max_tokens=16,
                    messages=MESSAGES,  # type: ignore[arg-type]
                )
            )
    assert chat_error.value.status_code == 403
    assert chat_error.value.body == {
        "message": "The API key 'fast-only' may not use model 'anthropic/claude-sonnet-4-6'",
        "type": "permission_error",
        "param": "model",
        "code": "model_not_allowed",
    }
    assert messages_error.value.body == {
        "type": "error",
        "error": {
            "type": "permission_error",
            "message": "The API key 'hashed' may not use model 'openai/gpt-4.1'",
        },
    }
    assert mock.requests == []


async def test_passthrough_provider_needs_the_upstream_header(mock: MockProvider) -> None:
    async with running_gateway(auth_config(mock.url), ENV) as gw:
        with pytest.raises(openai.AuthenticationError) as missing:
            await chat(gw, FAST_KEY, "groq/llama-3.3-70b")
        answer = await chat(
            gw, FAST_KEY, "groq/llama-3.3-70b", **{"x-plano-upstream-authorization": "Bearer groq-user-key"}
        )
    assert missing.value.body["code"] == "missing_upstream_api_key"  # type: ignore[index]
    assert "x-plano-upstream-authorization" in missing.value.message
    assert answer == "pong"
    seen = mock.requests[-1]
    assert seen.headers["authorization"] == "Bearer groq-user-key"
    assert FAST_KEY not in json.dumps(seen.headers)
    assert "x-plano-upstream-authorization" not in seen.headers


async def test_per_key_rate_limit(mock: MockProvider) -> None:
    async with running_gateway(auth_config(mock.url), ENV) as gw:
        await chat(gw, LIMITED_KEY)
        with pytest.raises(openai.RateLimitError) as refused:
            await chat(gw, LIMITED_KEY)
        await chat(gw, ALL_KEY)  # other keys have no such limit
    assert refused.value.body["message"] == f"exceeded limit key=limited, tokens_used={CHAT_COST}"  # type: ignore[index]
    assert int(refused.value.response.headers["retry-after"]) > 3000


async def test_keys_file(mock: MockProvider, tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("- {name: from-file, key: $FILE_KEY, models: [fast]}\n")
    env = {**ENV, "FILE_KEY": "sk-file-0123456789abcdef"}
    async with running_gateway(auth_config(mock.url, keys), env) as gw:
        assert await chat(gw, "sk-file-0123456789abcdef", "fast") == "pong"


async def test_keys_never_logged(mock: MockProvider, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_gateway(auth_config(mock.url), ENV) as gw:
        await chat(gw, ALL_KEY)
        for key, model in ((WRONG_KEY, "fast"), (FAST_KEY, "anthropic/claude-sonnet-4-6")):
            with pytest.raises(openai.APIStatusError):
                await chat(gw, key, model)
        await chat(gw, LIMITED_KEY)
        with pytest.raises(openai.RateLimitError):
            await chat(gw, LIMITED_KEY)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for key in (ALL_KEY, WRONG_KEY, FAST_KEY, LIMITED_KEY):
        assert key not in logged
    assert hashlib.sha256(WRONG_KEY.encode()).hexdigest()[:8] in logged  # refused: named by fingerprint


def test_config_never_holds_or_echoes_a_key() -> None:
    config = load_config_text(auth_config("http://127.0.0.1:9"), env=ENV)
    assert config.inbound_auth is not None
    assert ALL_KEY not in repr(config) and ALL_KEY.encode() not in repr(config).encode()
    bad = provider_config(
        "http://127.0.0.1:9",
        tail="plano_trio:\n  inbound_auth:\n    keys:\n"
        "      - {name: a, key: $ALL_KEY}\n      - {name: b, key: $ALL_KEY}\n"
        "      - {name: c, key_sha256: nothex}\n      - {name: d}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(bad, env=ENV)
    text = str(caught.value)
    assert ALL_KEY not in text
    assert "key 'b' is the same key as another entry" in text
    assert "key 'c': must be 64 hex digits" in text
    assert "key 'd': give exactly one of key or key_sha256" in text
    empty = provider_config("http://127.0.0.1:9", tail="plano_trio:\n  inbound_auth: {keys: []}\n")
    with pytest.raises(ConfigError, match="no keys"):
        load_config_text(empty, env={})


def test_passthrough_provider_warns() -> None:
    config = load_config_text(auth_config("http://127.0.0.1:9"), env=ENV)
    assert any("x-plano-upstream-authorization" in w and "groq" in w for w in config.warnings)


async def test_agent_listener_asks_for_a_key_and_never_forwards_it() -> None:
    listed = "      - id: flight_agent\n        description: flight information\n"
    async with router_mock() as router, fake_agent("flight_agent", FLIGHT_REPLY) as flight:
        text = gateway_config(router.url, {"flight_agent": flight.url}, listed=listed)
        text += "  inbound_auth:\n    keys: [{name: agents, key: $ALL_KEY}]\n"
        flight.mode = "json"
        async with serving(load_config_text(text, env=ENV)) as served:
            gw = served.agents
            with pytest.raises(openai.AuthenticationError):
                await in_thread(
                    lambda: oai(gw, WRONG_KEY).chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": USER}]
                    )
                )
            completion = await in_thread(
                lambda: oai(
                    gw, ALL_KEY, {"x-plano-upstream-authorization": "Bearer for-agents"}
                ).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": USER}])
            )
    assert completion.choices[0].message.content == FLIGHT_REPLY
    (seen,) = flight.requests
    assert ALL_KEY not in json.dumps(seen.headers)
    assert seen.headers.get("authorization") == "Bearer for-agents"


async def test_upstream_header_is_not_forwarded_without_inbound_keys(mock: MockProvider) -> None:
    async with running_gateway(provider_config(mock.url)) as gw:
        answer = await chat(
            gw, "sk-provider", "groq/llama-3.3-70b", **{"x-plano-upstream-authorization": "x"}
        )
    assert answer == "pong"
    seen = mock.requests[-1]
    assert seen.headers["authorization"] == "Bearer sk-provider"  # passthrough as Plano
    assert "x-plano-upstream-authorization" not in seen.headers


# --- the pure core: finding a key, the headers after the check ------------------------------------------


def _table() -> KeyTable:
    keys = (
        InboundKey(name="a", digest=digest_of("key-a"), models=("fast", "groq/*")),
        InboundKey(name="b", digest=digest_of("key-b")),
    )
    return KeyTable(InboundAuthSettings(keys=keys))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"authorization", b"Bearer key-a")], [b"key-a"]),
        ([(b"authorization", b"bearer  key-a ")], [b"key-a"]),
        ([(b"authorization", b"key-a")], [b"key-a"]),  # no scheme: the whole value, as Plano's passthrough
        ([(b"x-api-key", b"key-b"), (b"authorization", b"Bearer key-a")], [b"key-a", b"key-b"]),
        ([(b"api-key", b"key-b")], [b"key-b"]),
        ([(b"authorization", b"Bearer "), (b"x-api-key", b"  ")], []),
        ([(b"x-other", b"key-a")], []),
    ],
)
def test_presented_credentials(headers: list[tuple[bytes, bytes]], expected: list[bytes]) -> None:
    assert presented_credentials(headers) == expected


def test_key_table_finds_by_digest_only() -> None:
    table = _table()
    found = table.find(b"key-a")
    assert found is not None and found.name == "a"
    assert table.find(b"key-b") is not None
    for wrong in (b"key-", b"key-a ", b"KEY-A", b"", digest_of("key-a"), digest_of("key-a").hex().encode()):
        assert table.find(wrong) is None


def test_may_use() -> None:
    a = _table().find(b"key-a")
    b = _table().find(b"key-b")
    assert a is not None and b is not None
    assert (
        a.may_use(["fast"]) and a.may_use(["x", "groq/llama"]) and not a.may_use(["openai/gpt-4o", "gpt-4o"])
    )
    assert not a.may_use(["groq"]) and not a.may_use([])
    assert b.may_use(["anything"]) and not b.restricted


def test_headers_after_the_check() -> None:
    headers = [
        (b"authorization", b"Bearer gateway-key"),
        (b"x-api-key", b"gateway-key"),
        (b"api-key", b"gateway-key"),
        (b"x-plano-upstream-authorization", b"Bearer provider-key"),
        (b"content-type", b"application/json"),
    ]
    assert without_inbound_credentials(headers) == [
        (b"authorization", b"Bearer provider-key"),
        (b"content-type", b"application/json"),
    ]
    assert fingerprint(b"gateway-key") == hashlib.sha256(b"gateway-key").hexdigest()[:8]
