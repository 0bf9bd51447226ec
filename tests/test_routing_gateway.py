"""Preference-based routing end to end: real SDKs, the real gateway, a scripted router over a socket.

Each model is its own mock provider, so a test says exactly which model
answered; the router is `RouterMock`, which records the prompt it received.
Covers the three client APIs, the router's failures (down, slow, garbage:
each falls back to the request's own model, where Plano answers 500), the
ranked models as failover order, inline preferences, and the decision API.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anthropic
import httpx
import openai
import pytest
import trio

from tests.failover_support import hang_up, mocks, openai_error, reply
from tests.mock_provider import MockProvider
from tests.router_mock import RouterMock, router_mock
from tests.scripted_provider import scripted_provider
from tests.support import Gateway, in_thread, running_gateway

CODE = "anthropic/claude-sonnet-4-6"
GPT = "openai/gpt-4o"
MINI = "openai/gpt-4o-mini"


def routing_config(
    router_url: str,
    urls: dict[str, str],
    *,
    preferences: str | None = None,
    router_timeout_s: float = 5.0,
    extra: str = "",
) -> str:
    """Three models (each at its own URL), the router at `router_url`, code generation → CODE then GPT.

    `router_timeout_s` is generous by default (the mock answers at once; a loaded machine must not turn
    that into a fallback); tests of the fallback set it short."""
    providers = "".join(
        f"  - model: {model}\n    access_key: key-{model.partition('/')[0]}\n    base_url: {url}\n"
        + ("    default: true\n" if model == MINI else "")
        for model, url in urls.items()
    )
    prefs = (
        preferences
        if preferences is not None
        else f"""
routing_preferences:
  - name: code generation
    description: generating new code snippets
    models: [{CODE}, {GPT}]
  - name: complex reasoning
    description: deep analysis and step by step reasoning
    models: [{GPT}]
"""
    )
    return (
        "version: v0.4.0\n"
        "listeners:\n"
        "  - {name: llm, type: model, address: 127.0.0.1, port: 0, timeout: 10s}\n"
        "model_providers:\n"
        f"{providers}"
        "  - model: plano/Plano-Orchestrator\n"
        f"    base_url: {router_url}\n"
        f"{prefs}"
        "plano_trio:\n"
        f"  router_timeout_s: {router_timeout_s}\n" + textwrap.dedent(extra)
    )


class Setup:
    def __init__(self, gateway: Gateway, router: RouterMock, models: dict[str, MockProvider]) -> None:
        self.gateway = gateway
        self.router = router
        self.models = models

    def answered_by(self) -> list[str]:
        """Which models received a request, in config order."""
        return [model for model, mock in self.models.items() if mock.requests]


@contextmanager
def three_models() -> Iterator[dict[str, MockProvider]]:
    with mocks(3) as (code, gpt, mini):
        yield {CODE: code, GPT: gpt, MINI: mini}


@asynccontextmanager
async def routed(**options: Any) -> AsyncIterator[Setup]:
    with three_models() as models:
        async with router_mock() as router:
            urls = {model: f"{mock.url}/v1" for model, mock in models.items()}
            async with running_gateway(routing_config(router.url, urls, **options)) as gateway:
                yield Setup(gateway, router, models)


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key="client-key", max_retries=0, timeout=10)


def ant(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base, api_key="client-key", max_retries=0, timeout=10)


USER = "write a sorting algorithm in Python"
EXPECTED_ROUTES = (
    '{"name": "code generation", "description": "generating new code snippets", '
    '"parameters": {"type": "object", "properties": {}, "required": []}}\n'
    '{"name": "complex reasoning", "description": "deep analysis and step by step reasoning", '
    '"parameters": {"type": "object", "properties": {}, "required": []}}'
)
EXPECTED_CONVERSATION = (
    '[\n    {\n        "role": "user",\n        "content": "write a sorting algorithm in Python"\n    }\n]'
)


# --- the proxy path, three client APIs -------------------------------------------------------------------


async def test_openai_sdk_reaches_the_model_the_router_picked() -> None:
    async with routed() as s:
        s.router.answer = '{"route": ["code generation"]}'
        raw = await in_thread(
            lambda: oai(s.gateway).chat.completions.with_raw_response.create(
                model=MINI, messages=[{"role": "user", "content": USER}]
            )
        )
        completion = raw.parse()
        assert completion.choices[0].message.content
        assert s.answered_by() == [CODE]
        assert s.models[CODE].requests[0].path.endswith("/messages")  # Anthropic's wire format
        assert raw.headers["x-plano-route"] == "code generation"
        assert raw.headers["x-plano-model"] == CODE
        # Plano's router request: its model, temperature 0.01, one user message with the exact prompt
        ((_, body),) = s.router.requests
        assert body["model"] == "Plano-Orchestrator"
        assert body["temperature"] == 0.01
        prompt = body["messages"][0]["content"]
        assert f"<routes>\n{EXPECTED_ROUTES}\n</routes>" in prompt
        assert f"<conversation>\n{EXPECTED_CONVERSATION}\n</conversation>" in prompt


async def test_anthropic_sdk_is_routed_too() -> None:
    async with routed() as s:
        s.router.answer = "{'route': ['complex reasoning']}"  # single quotes, as Plano tolerates
        message = await in_thread(
            lambda: ant(s.gateway).messages.create(
                model=MINI,
                max_tokens=64,
                messages=[{"role": "user", "content": "prove that sqrt 2 is irrational"}],
            )
        )
        assert message.content
        assert s.answered_by() == [GPT]
        assert "prove that sqrt 2 is irrational" in s.router.prompts[0]


async def test_responses_clients_are_routed_and_streams_work() -> None:
    async with routed() as s:
        s.router.answer = '{"route": ["code generation"]}'
        events = await in_thread(
            lambda: list(oai(s.gateway).responses.create(model=MINI, input=USER, stream=True))
        )
        assert events[-1].type == "response.completed"
        assert s.answered_by() == [CODE]
        assert EXPECTED_CONVERSATION in s.router.prompts[0]


async def test_no_route_uses_the_requests_own_model() -> None:
    async with routed() as s:
        s.router.answer = '{"route": []}'
        raw = await in_thread(
            lambda: oai(s.gateway).chat.completions.with_raw_response.create(
                model=MINI, messages=[{"role": "user", "content": "hi"}]
            )
        )
        assert s.answered_by() == [MINI]
        assert raw.headers["x-plano-route"] == "none"
        assert "x-plano-routing-fallback" not in raw.headers


# --- the router fails: fall back, never 500 --------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda r: setattr(r, "status", 500), "router answered 500"),
        (lambda r: setattr(r, "status", 404), "router answered 404"),
        (lambda r: setattr(r, "delay_s", 3.0), "router timed out"),
        (lambda r: setattr(r, "raw", b"<html>not json</html>"), "router reply unreadable"),
        (lambda r: setattr(r, "answer", "I think you want code generation"), "router reply unreadable"),
    ],
)
async def test_a_failing_router_falls_back_to_the_requests_model(setup: Any, reason: str) -> None:
    async with routed(router_timeout_s=0.5) as s:
        setup(s.router)
        started = trio.current_time()
        raw = await in_thread(
            lambda: oai(s.gateway).chat.completions.with_raw_response.create(
                model=MINI, messages=[{"role": "user", "content": USER}]
            )
        )
        assert trio.current_time() - started < 2.5  # bounded by router_timeout_s (0.5 s), not the router
        assert raw.parse().choices[0].message.content
        assert s.answered_by() == [MINI]
        assert raw.headers["x-plano-route"] == "none"
        assert raw.headers["x-plano-routing-fallback"].startswith(reason)


async def test_a_router_nobody_listens_on_falls_back() -> None:
    with three_models() as models:
        urls = {model: f"{mock.url}/v1" for model, mock in models.items()}
        async with running_gateway(routing_config("http://127.0.0.1:9", urls)) as gateway:
            raw = await in_thread(
                lambda: oai(gateway).chat.completions.with_raw_response.create(
                    model=MINI, messages=[{"role": "user", "content": USER}]
                )
            )
            assert raw.headers["x-plano-routing-fallback"].startswith("router unreachable")
            assert models[MINI].requests


# --- the ranked models are the failover order ------------------------------------------------------------


@pytest.mark.parametrize("failure", [reply(503, openai_error(503)), reply(429, openai_error(429)), hang_up])
async def test_the_next_ranked_model_answers_when_the_first_fails(failure: Any) -> None:
    with mocks(2) as (gpt, mini):
        async with router_mock() as router, scripted_provider(failure) as broken:
            router.answer = '{"route": ["code generation"]}'
            urls = {CODE: f"{broken.url}/v1", GPT: f"{gpt.url}/v1", MINI: f"{mini.url}/v1"}
            async with running_gateway(routing_config(router.url, urls)) as gateway:
                raw = await in_thread(
                    lambda: oai(gateway).chat.completions.with_raw_response.create(
                        model=MINI, messages=[{"role": "user", "content": USER}]
                    )
                )
                assert raw.parse().choices[0].message.content
                assert len(broken.requests) == 1
                assert len(gpt.requests) == 1 and not mini.requests
                assert raw.headers["x-plano-model"] == GPT
                assert raw.headers["x-plano-attempts"] == "2"
                assert raw.headers["x-plano-route"] == "code generation"


async def test_a_client_error_of_the_first_model_is_not_failed_over() -> None:
    with mocks(2) as (gpt, mini):
        async with router_mock() as router, scripted_provider(reply(400, openai_error(400, "bad"))) as broken:
            router.answer = '{"route": ["code generation"]}'
            urls = {CODE: f"{broken.url}/v1", GPT: f"{gpt.url}/v1", MINI: f"{mini.url}/v1"}
            async with running_gateway(routing_config(router.url, urls)) as gateway:
                async with httpx.AsyncClient() as client:
                    response = await client.post(
                        f"{gateway.v1}/chat/completions",
                        json={"model": MINI, "messages": [{"role": "user", "content": USER}]},
                    )
                assert response.status_code == 400
                assert not gpt.requests


# --- inline preferences ----------------------------------------------------------------------------------


async def test_inline_preferences_override_the_config_and_never_go_upstream() -> None:
    async with routed(preferences="") as s:
        s.router.answer = '{"route": ["quick"]}'
        body = {
            "model": MINI,
            "messages": [{"role": "user", "content": "hi"}],
            "routing_preferences": [{"name": "quick", "description": "small talk", "models": [GPT]}],
        }
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{s.gateway.v1}/chat/completions", json=body)
        assert response.status_code == 200, response.text
        assert s.answered_by() == [GPT]
        assert "routing_preferences" not in json.loads(s.models[GPT].requests[0].body)
        assert '"name": "quick"' in s.router.prompts[0]


async def test_without_preferences_the_router_is_never_called() -> None:
    async with routed(preferences="") as s:
        await in_thread(
            lambda: oai(s.gateway).chat.completions.create(
                model=MINI, messages=[{"role": "user", "content": "hi"}]
            )
        )
        assert not s.router.requests
        assert s.answered_by() == [MINI]


async def test_malformed_inline_preferences_are_a_400() -> None:
    async with routed() as s:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{s.gateway.v1}/chat/completions",
                json={
                    "model": MINI,
                    "messages": [{"role": "user", "content": "x"}],
                    "routing_preferences": 7,
                },
            )
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "routing_preferences"


# --- the decision API ------------------------------------------------------------------------------------


async def decide(gw: Gateway, path: str, body: Any, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        if isinstance(body, bytes):
            return await client.post(f"{gw.base}/routing{path}", content=body, headers=headers)
        return await client.post(f"{gw.base}/routing{path}", json=body, headers=headers)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": MINI, "messages": [{"role": "user", "content": USER}]}),
        ("/v1/messages", {"model": MINI, "max_tokens": 9, "messages": [{"role": "user", "content": USER}]}),
        ("/v1/responses", {"model": MINI, "input": USER}),
    ],
)
async def test_decision_api_answers_as_plano(path: str, body: dict[str, Any]) -> None:
    async with routed() as s:
        s.router.answer = '{"route": ["code generation"]}'
        trace = "0af7651916cd43dd8448eb211c80319c"
        response = await decide(s.gateway, path, body, traceparent=f"00-{trace}-b7ad6b7169203331-01")
        assert response.status_code == 200
        assert response.json() == {
            "models": [CODE, GPT],
            "route": "code generation",
            "trace_id": trace,
            "pinned": False,
            "switched": False,
        }
        assert not any(mock.requests for mock in s.models.values())  # decided, not proxied
        assert EXPECTED_CONVERSATION in s.router.prompts[0]


async def test_decision_api_no_route_and_router_failure() -> None:
    async with routed() as s:
        s.router.answer = '{"route": []}'
        answer = (
            await decide(
                s.gateway,
                "/v1/chat/completions",
                {"model": MINI, "messages": [{"role": "user", "content": "hi"}]},
            )
        ).json()
        assert answer["models"] == ["none"] and answer["route"] is None and len(answer["trace_id"]) == 32
        s.router.status = 503
        answer = (
            await decide(
                s.gateway,
                "/v1/chat/completions",
                {"model": MINI, "messages": [{"role": "user", "content": "hi"}]},
            )
        ).json()
        assert answer["models"] == ["none"] and answer["route"] is None
        assert answer["fallback_reason"].startswith("router answered 503")


@pytest.mark.parametrize(
    "body", [b"{not json", b"[]", b'{"model": "x"}', b'{"model": 5, "messages": []}', b""]
)
async def test_decision_api_rejects_bad_requests_as_plano(body: bytes) -> None:
    async with routed() as s:
        response = await decide(s.gateway, "/v1/chat/completions", body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "InvalidRequest"
        assert error["message"] == "Invalid request"
        assert error["details"]["reason"]


async def test_a_responses_turn_is_routed_on_the_whole_stored_conversation() -> None:
    """As Plano: the stored turns are merged in before the router is asked, so it sees the conversation."""
    async with routed(extra="state_storage: {type: memory}\n") as s:
        s.router.answer = '{"route": ["code generation"]}'
        client = oai(s.gateway)
        first = await in_thread(lambda: client.responses.create(model=CODE, input=USER))
        second = await in_thread(
            lambda: client.responses.create(
                model=CODE, input="now make it faster", previous_response_id=first.id
            )
        )
        assert second.status == "completed"
        prompt = s.router.prompts[-1]
        assert USER in prompt and "now make it faster" in prompt  # both turns, not only the new one
        sent = s.models[CODE].requests[-1].json
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]


async def test_a_responses_turn_routed_to_a_native_provider_leaves_our_state_alone() -> None:
    """Loaded for the router, the stored history is not sent to a provider with its own Responses API."""
    async with routed(extra="state_storage: {type: memory}\n") as s:
        s.router.answer = '{"route": ["code generation"]}'
        client = oai(s.gateway)
        first = await in_thread(lambda: client.responses.create(model=CODE, input=USER))
        s.router.answer = '{"route": ["complex reasoning"]}'  # -> openai/gpt-4o, native Responses
        await in_thread(
            lambda: client.responses.create(
                model=CODE, input="think it through", previous_response_id=first.id
            )
        )
        assert "think it through" in s.router.prompts[-1] and USER in s.router.prompts[-1]
        sent = s.models[GPT].requests[-1].json
        assert sent["previous_response_id"] == first.id  # passed through as the client sent it
        assert sent["input"] == "think it through"


async def test_a_turn_of_a_native_responses_model_is_not_looked_up_in_our_store() -> None:
    """The client's model has its own Responses API: its previous_response_id is the provider's, not ours."""
    async with routed(extra="state_storage: {type: memory}\n") as s:
        s.router.answer = '{"route": ["complex reasoning"]}'  # -> openai/gpt-4o
        answer = await in_thread(
            lambda: oai(s.gateway).responses.create(
                model=MINI, input="think it through", previous_response_id="resp_from_openai"
            )
        )
        assert answer.status == "completed"  # not a 409 from our store
        assert s.models[GPT].requests[-1].json["previous_response_id"] == "resp_from_openai"
