"""Provider catalog paths, model resolution and header rules (pure tables)."""

from __future__ import annotations

import pytest

from plano_trio.apis.kind import Api
from plano_trio.config.schema import Config, Listener, ModelProvider
from plano_trio.gateway.errors import ApiError
from plano_trio.gateway.headers import client_key, downstream_headers, upstream_headers
from plano_trio.providers.catalog import spec_for, upstream_api_for
from plano_trio.providers.resolve import ModelResolver, RouteError, build_route
from plano_trio.upstream import Origin


def provider(full: str, **kw: object) -> ModelProvider:
    prefix, _, model = full.partition("/")
    fields: dict[str, object] = {"name": full, "model": model, "provider_interface": prefix}
    fields.update(kw)
    return ModelProvider(**fields)  # type: ignore[arg-type]


def config(*providers: ModelProvider, aliases: dict[str, str] | None = None) -> Config:
    return Config(
        version="v0.4.0",
        listeners=(Listener(name="llm", type="model"),),
        model_providers=providers,
        model_aliases=tuple((aliases or {}).items()),
    )


@pytest.mark.parametrize(
    ("full", "extra", "origin", "target"),
    [
        ("openai/gpt-4o", {}, Origin("https", "api.openai.com", 443), "/v1/chat/completions"),
        ("groq/llama-3", {}, Origin("https", "api.groq.com", 443), "/openai/v1/chat/completions"),
        ("mistral/m", {}, Origin("https", "api.mistral.ai", 443), "/v1/chat/completions"),
        ("deepseek/d", {}, Origin("https", "api.deepseek.com", 443), "/v1/chat/completions"),
        ("together_ai/t", {}, Origin("https", "api.together.xyz", 443), "/v1/chat/completions"),
        ("xai/grok", {}, Origin("https", "api.x.ai", 443), "/v1/chat/completions"),
        ("moonshotai/k", {}, Origin("https", "api.moonshot.ai", 443), "/v1/chat/completions"),
        ("zhipu/glm", {}, Origin("https", "open.bigmodel.cn", 443), "/api/paas/v4/chat/completions"),
        ("xiaomi/mimo", {}, Origin("https", "api.xiaomimimo.com", 443), "/v1/chat/completions"),
        ("digitalocean/x", {}, Origin("https", "inference.do-ai.run", 443), "/v1/chat/completions"),
        ("openrouter/a/b", {}, Origin("https", "openrouter.ai", 443), "/api/v1/chat/completions"),
        (
            "gemini/g",
            {},
            Origin("https", "generativelanguage.googleapis.com", 443),
            "/v1beta/openai/chat/completions",
        ),
        (
            "gemini/g",
            {"base_url": "https://proxy.example/v1beta"},
            Origin("https", "proxy.example", 443),
            "/v1beta/chat/completions",
        ),
        (
            "ollama/llama3",
            {"base_url": "http://localhost:11434"},
            Origin("http", "localhost", 11434),
            "/v1/chat/completions",
        ),
        (
            "qwen/q",
            {"base_url": "https://dashscope.example"},
            Origin("https", "dashscope.example", 443),
            "/compatible-mode/v1/chat/completions",
        ),
        (
            "azure_openai/gpt-4o",
            {"base_url": "https://r.openai.azure.com"},
            Origin("https", "r.openai.azure.com", 443),
            "/openai/deployments/gpt-4o/chat/completions?api-version=2025-01-01-preview",
        ),
        (
            "azure_openai/gpt-4o",
            {"base_url": "https://r.openai.azure.com/custom?api-version=2024-10-21"},
            Origin("https", "r.openai.azure.com", 443),
            "/custom/gpt-4o/chat/completions?api-version=2024-10-21",
        ),
        (
            "openrouter/x",
            {"base_url": "https://openrouter.ai/api/v1"},
            Origin("https", "openrouter.ai", 443),
            "/api/v1/chat/completions",
        ),
        (
            "custom/m",
            {"provider_interface": "openai", "base_url": "http://10.0.0.5:8000/serve/v1"},
            Origin("http", "10.0.0.5", 8000),
            "/serve/v1/chat/completions",
        ),
        (
            "openai/gpt-4o",
            {"base_url": "https://gw.example", "http_host": "api.openai.com"},
            Origin("https", "gw.example", 443, "api.openai.com"),
            "/v1/chat/completions",
        ),
    ],
)
def test_route_origin_and_path(full: str, extra: dict[str, object], origin: Origin, target: str) -> None:
    route = build_route(provider(full, **extra), full.partition("/")[2])
    assert route.origin == origin
    assert route.chat_target == target.encode()


def test_provider_without_default_host_needs_base_url() -> None:
    with pytest.raises(RouteError, match="needs a base_url"):
        build_route(provider("ollama/llama3"), "llama3")


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("openai/gpt-4o", ("openai/gpt-4o", "gpt-4o")),
        ("gpt-4o", ("openai/gpt-4o", "gpt-4o")),
        ("fast", ("openai/gpt-4o", "gpt-4o")),
        ("openai/o9-preview", ("openai/*", "o9-preview")),
        ("groq/llama-3.3", ("groq/llama-3.3", "llama-3.3")),
        ("llama-3.3", ("groq/llama-3.3", "llama-3.3")),
        ("chain", None),  # aliases are one level: chain -> fast is not followed
        ("unknown-model", None),
        ("anthropic/claude", None),
        ("openai/", None),
    ],
)
def test_resolution(requested: str, expected: tuple[str, str] | None) -> None:
    resolver = ModelResolver(
        config(
            provider("openai/gpt-4o", access_key="k"),
            provider("openai/*", access_key="k"),
            provider("groq/llama-3.3", access_key="g"),
            aliases={"fast": "gpt-4o", "chain": "fast"},
        )
    )
    route = resolver.resolve(requested)
    got = None if route is None else (route.provider.name, route.model)
    assert got == expected


def test_wildcard_route_is_cached() -> None:
    resolver = ModelResolver(config(provider("openai/*", access_key="k")))
    assert resolver.resolve("openai/a") is resolver.resolve("openai/a")


def test_listed_models_hide_internal_and_expand_wildcards_from_the_catalogue() -> None:
    cfg = config(
        provider("openai/gpt-4o", access_key="k"),
        provider("openai/*", access_key="k"),
        provider("plano/Arch-Function", name="arch-function", internal=True),
    )
    listed = ModelResolver(cfg).listed_models(cfg)
    assert listed[0] == ("openai/gpt-4o", "OpenAI")
    assert ("openai/gpt-4o-mini", "OpenAI") in listed  # from Plano's catalogue
    assert [name for name, _ in listed].count("openai/gpt-4o") == 1
    assert "arch-function" not in dict(listed)


CLIENT = [
    (b"host", b"localhost:12000"),
    (b"authorization", b"Bearer client-key"),
    (b"content-type", b"application/json"),
    (b"content-length", b"10"),
    (b"connection", b"keep-alive, x-hop"),
    (b"x-hop", b"1"),
    (b"accept-encoding", b"gzip"),
    (b"x-custom", b"kept"),
    (b"x-request-id", b"client-id"),
]


def names(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    return dict(headers)


def test_configured_key_replaces_client_credentials() -> None:
    route = build_route(
        provider("openai/gpt-4o", access_key="server-key", headers=(("X-Org", "o1"),)), "gpt-4o"
    )
    out = names(upstream_headers(CLIENT, route, b"rid"))
    assert out[b"authorization"] == b"Bearer server-key"
    assert out[b"x-org"] == b"o1"
    assert out[b"x-custom"] == b"kept"
    assert out[b"x-request-id"] == b"rid"
    assert out[b"accept-encoding"] == b"identity"
    for dropped in (b"host", b"content-length", b"connection", b"x-hop"):
        assert dropped not in out


def test_passthrough_forwards_client_key() -> None:
    route = build_route(provider("openai/gpt-4o", passthrough_auth=True), "gpt-4o")
    assert names(upstream_headers(CLIENT, route, b"r"))[b"authorization"] == b"Bearer client-key"


def test_passthrough_accepts_x_api_key_and_azure_gets_api_key_header() -> None:
    route = build_route(
        provider("azure_openai/gpt-4o", passthrough_auth=True, base_url="https://r.example"), "gpt-4o"
    )
    out = names(upstream_headers([(b"x-api-key", b"xk")], route, b"r"))
    assert out[b"api-key"] == b"xk"
    assert b"authorization" not in out and b"x-api-key" not in out


def test_passthrough_without_client_key_is_401() -> None:
    route = build_route(provider("openai/gpt-4o", passthrough_auth=True), "gpt-4o")
    with pytest.raises(ApiError) as caught:
        upstream_headers([(b"content-type", b"application/json")], route, b"r")
    assert caught.value.status == 401 and "openai/gpt-4o" in caught.value.message


def test_missing_key_names_provider() -> None:
    route = build_route(provider("openai/gpt-4o"), "gpt-4o")
    with pytest.raises(ApiError) as caught:
        upstream_headers(CLIENT, route, b"r")
    assert caught.value.status == 400 and '"openai/gpt-4o"' in caught.value.message


def test_base_url_provider_needs_no_key_and_never_sees_client_key() -> None:
    route = build_route(provider("ollama/llama3", base_url="http://127.0.0.1:11434"), "llama3")
    out = names(upstream_headers(CLIENT, route, b"r"))
    assert b"authorization" not in out


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ([(b"authorization", b"Bearer abc")], "abc"),
        ([(b"authorization", b"bearer  abc ")], "abc"),
        ([(b"authorization", b"rawkey")], "rawkey"),
        ([(b"x-api-key", b"xk")], "xk"),
        ([(b"api-key", b"ak")], "ak"),
        ([(b"authorization", b"Bearer ")], None),
        ([], None),
    ],
)
def test_client_key(headers: list[tuple[bytes, bytes]], key: str | None) -> None:
    assert client_key(headers) == key


def test_downstream_drops_hop_by_hop_and_adds_request_id() -> None:
    upstream = [
        (b"content-type", b"text/event-stream"),
        (b"transfer-encoding", b"chunked"),
        (b"content-length", b"5"),
        (b"x-ratelimit-remaining", b"9"),
        (b"server", b"nginx"),
    ]
    out = names(downstream_headers(upstream, b"rid"))
    assert out == {
        b"content-type": b"text/event-stream",
        b"x-ratelimit-remaining": b"9",
        b"x-request-id": b"rid",
    }


def test_spec_for_unknown_interface_is_openai_compatible() -> None:
    assert spec_for("my_vllm").path_prefix == "/v1"


@pytest.mark.parametrize(
    ("full", "extra", "api", "stream", "target"),
    [
        ("anthropic/claude-sonnet-4-6", {}, Api.MESSAGES, False, "/v1/messages"),
        (
            "anthropic/c",
            {"base_url": "https://proxy.example/anthropic/v1"},
            Api.MESSAGES,
            True,
            "/anthropic/v1/messages",
        ),
        ("openai/gpt-4o", {}, Api.RESPONSES, True, "/v1/responses"),
        ("xai/grok-4", {}, Api.RESPONSES, False, "/v1/responses"),
        (
            "amazon_bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
            {"base_url": "https://bedrock-runtime.us-east-1.amazonaws.com"},
            Api.BEDROCK,
            False,
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
        ),
        (
            "amazon_bedrock/m",
            {"base_url": "https://b.example"},
            Api.BEDROCK,
            True,
            "/model/m/converse-stream",
        ),
    ],
)
def test_targets_per_upstream_api(
    full: str, extra: dict[str, object], api: Api, stream: bool, target: str
) -> None:
    route = build_route(provider(full, **extra), full.partition("/")[2])
    assert route.target(api, stream=stream) == target.encode()


@pytest.mark.parametrize(
    ("interface", "client", "upstream"),
    [
        ("openai", Api.CHAT, Api.CHAT),
        ("openai", Api.MESSAGES, Api.CHAT),
        ("openai", Api.RESPONSES, Api.RESPONSES),
        ("xai", Api.RESPONSES, Api.RESPONSES),
        ("groq", Api.RESPONSES, Api.CHAT),
        ("anthropic", Api.CHAT, Api.MESSAGES),
        ("anthropic", Api.MESSAGES, Api.MESSAGES),
        ("anthropic", Api.RESPONSES, Api.MESSAGES),
        ("amazon_bedrock", Api.CHAT, Api.BEDROCK),
        ("amazon_bedrock", Api.MESSAGES, Api.BEDROCK),
        ("amazon_bedrock", Api.RESPONSES, Api.BEDROCK),
        ("vercel", Api.MESSAGES, Api.MESSAGES),
        ("vercel", Api.CHAT, Api.CHAT),
        ("gemini", Api.MESSAGES, Api.CHAT),
    ],
)
def test_upstream_api_matrix(interface: str, client: Api, upstream: Api) -> None:
    assert upstream_api_for(client, spec_for(interface)) is upstream


def test_anthropic_native_auth_headers() -> None:
    route = build_route(provider("anthropic/claude", access_key="ak"), "claude")
    assert dict(route.static_headers) == {b"x-api-key": b"ak", b"anthropic-version": b"2023-06-01"}
