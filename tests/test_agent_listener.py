"""Agent listeners: orchestration and execution, end to end over real sockets, and their pure parts.

The travel-agents flow of Plano's demo (weather + flight agents, the
orchestrator picking both) runs against `FakeAgent`s and a scripted
orchestrator (`RouterMock`); SDK clients of all three APIs talk to the
listener.  Failures (agent down, slow, garbage, 4xx; orchestrator down;
filters refusing or failing) must reach the client as clear errors in its
own shape, and a client that leaves must end the agent call.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import anthropic
import httpx
import msgspec
import openai
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from scripted_provider import head, scripted_provider

from plano_trio.apis.http import Header
from plano_trio.config.schema import ListenerAgent
from plano_trio.filters.errors import FilterFailed, FilterRejected
from plano_trio.gateway.agent_chat import (
    AgentAnswerError,
    ChatCollector,
    agent_target,
    completion_chunks,
    completion_text,
    insert_answer,
)
from plano_trio.gateway.agent_errors import chain_error, client_error
from plano_trio.gateway.agent_select import agent_routes, chosen_agents, default_agent
from plano_trio.gateway.errors import ErrorStyle
from plano_trio.router.prompt import render_routes
from plano_trio.upstream import Origin
from tests.agent_fakes import FakeAgent, fake_agent, running_agent_listener
from tests.router_mock import RouterMock, router_mock
from tests.support import Gateway, dechunked_body, in_thread, raw_exchange

WEATHER_REPLY = "Paris is sunny, 21 C."
FLIGHT_REPLY = "AF83 leaves SFO at 15:40 for CDG."
USER = "What is the weather in Paris and which flights go from SFO to Paris?"


def travel_config(
    router_url: str,
    agents: dict[str, str],
    *,
    listener_agents: str | None = None,
    timeout: str = "5s",
    router_timeout_s: float = 5.0,
    extra: str = "",
) -> str:
    """`router_timeout_s` bounds the orchestrator call: generous by default (the mock answers at once; a
    loaded machine must not turn that into a fallback), short where a test wants the fallback."""
    top = "".join(f"  - id: {name}\n    url: {url}\n" for name, url in agents.items())
    listed = (
        listener_agents
        if listener_agents is not None
        else "".join(
            f"      - id: {name}\n        description: {name.split('_')[0]} information\n" for name in agents
        )
    )
    return (
        "version: v0.3.0\n"
        f"agents:\n{top}"
        "model_providers:\n"
        "  - model: openai/gpt-4o\n    access_key: k\n    base_url: http://127.0.0.1:9\n"
        f"  - model: plano/Plano-Orchestrator\n    base_url: {router_url}\n"
        "listeners:\n"
        "  - type: agent\n    name: travel_booking_service\n    address: 127.0.0.1\n    port: 0\n"
        f"    timeout: {timeout}\n"
        "    router: plano_orchestrator_v1\n"
        f"    agents:\n{listed}"
        f"plano_trio:\n  router_timeout_s: {router_timeout_s}\n" + textwrap.dedent(extra)
    )


class Travel:
    def __init__(self, gateway: Gateway, router: RouterMock, weather: FakeAgent, flight: FakeAgent) -> None:
        self.gateway = gateway
        self.router = router
        self.weather = weather
        self.flight = flight


@asynccontextmanager
async def travel(filters: Any = None, **config: Any) -> AsyncIterator[Travel]:
    async with (
        router_mock() as router,
        fake_agent("weather_agent", WEATHER_REPLY) as weather,
        fake_agent("flight_agent", FLIGHT_REPLY) as flight,
    ):
        agents = {"weather_agent": weather.url, "flight_agent": flight.url}
        text = travel_config(router.url, agents, **config)
        async with running_agent_listener(text, filters) as gateway:
            yield Travel(gateway, router, weather, flight)


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key="client-key", max_retries=0, timeout=10)


def ant(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base, api_key="client-key", max_retries=0, timeout=10)


BOTH = '{"route": ["weather_agent", "flight_agent"]}'


# --- the travel-agents flow --------------------------------------------------------------------------------


async def test_travel_agents_flow_weather_then_flight_streamed() -> None:
    async with travel() as t:
        t.router.answer = BOTH

        def call() -> tuple[list[str], dict[str, str]]:
            with oai(t.gateway).chat.completions.with_streaming_response.create(
                model="gpt-4o",
                messages=[
                    {"role": "system", "content": "You are a travel planner."},
                    {"role": "user", "content": USER},
                ],
                stream=True,
                extra_headers={
                    "x-request-id": "travel-1",
                    "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
                },
            ) as raw:
                pieces = [c.choices[0].delta.content or "" for c in raw.parse() if c.choices]
                return pieces, dict(raw.headers)

        pieces, headers = await in_thread(call)
        assert "".join(pieces) == FLIGHT_REPLY
        assert len(pieces) > 2  # streamed, not one piece
        assert headers["x-plano-agents"] == "weather_agent,flight_agent"
        assert headers["x-request-id"] == "travel-1"
        # the weather agent got the conversation as the client sent it
        (weather,) = t.weather.requests
        assert weather.path == "/v1/chat/completions"
        assert [m["role"] for m in weather.messages] == ["system", "user"]
        assert weather.body["model"] == "gpt-4o"
        # the flight agent got the weather agent's full answer, named, just before the last user message
        (flight,) = t.flight.requests
        assert flight.messages == [
            {"role": "system", "content": "You are a travel planner."},
            {"role": "assistant", "name": "weather_agent", "content": WEATHER_REPLY},
            {"role": "user", "content": USER},
        ]
        for request, agent in ((weather, "weather_agent"), (flight, "flight_agent")):
            assert request.headers["x-request-id"] == "travel-1"
            assert request.headers["traceparent"].startswith("00-" + "a" * 32)
            assert request.headers["x-arch-upstream"] == agent
            assert request.headers["authorization"] == "Bearer client-key"  # as Plano forwards it
        # the orchestrator saw the agents as routes and the conversation without the system message
        ((router_headers, body),) = t.router.requests
        prompt = body["messages"][0]["content"]
        assert body["model"] == "Plano-Orchestrator"
        assert render_routes(agent_routes(_listed())) in prompt
        assert USER in prompt and "travel planner" not in prompt
        assert router_headers["traceparent"].startswith(b"00-" + b"a" * 32)


async def test_an_agent_stream_is_chunked_for_http11_and_close_delimited_for_http10() -> None:
    """The last agent's events take the connection's direct chunk path on HTTP/1.1 and the ASGI way for
    an HTTP/1.0 client: the same answer either way."""
    body = json.dumps({"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": USER}]})
    async with travel() as t:
        t.router.answer = BOTH
        answers = []
        for version in ("1.1", "1.0"):
            head = (
                f"POST /v1/chat/completions HTTP/{version}\r\nhost: x\r\ncontent-type: application/json\r\n"
                f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
            )
            answers.append(await raw_exchange(t.gateway, head.encode() + body.encode()))
    http11, http10 = answers
    head10, _, body10 = http10.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head10.lower()
    for events in (dechunked_body(http11), body10):
        chunks = [json.loads(line[6:]) for line in events.split(b"\n") if line.startswith(b"data: {")]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert text == FLIGHT_REPLY and len(chunks) > 2
        assert events.endswith(b"data: [DONE]\n\n")


def _listed() -> list[ListenerAgent]:
    return [
        ListenerAgent(id="weather_agent", description="weather information"),
        ListenerAgent(id="flight_agent", description="flight information"),
    ]


async def test_non_streaming_chat_client_gets_one_completion_from_a_streaming_agent() -> None:
    async with travel() as t:
        t.router.answer = BOTH
        completion = await in_thread(
            lambda: oai(t.gateway).chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": USER}]
            )
        )
        assert completion.choices[0].message.content == FLIGHT_REPLY
        assert completion.choices[0].finish_reason == "stop"


async def test_json_agents_intermediate_text_and_last_bytes_passed_through() -> None:
    async with travel() as t:
        t.router.answer = BOTH
        t.weather.mode = "json"
        t.flight.mode = "json"
        response = await in_thread(
            lambda: httpx.post(
                f"{t.gateway.v1}/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": USER}]},
                timeout=10,
            )
        )
        assert response.status_code == 200
        assert response.json() == t.flight.completion()  # the agent's own answer
        inserted = t.flight.requests[0].messages[0]
        assert inserted == {"role": "assistant", "name": "weather_agent", "content": WEATHER_REPLY}


async def test_a_whole_answer_is_streamed_to_a_streaming_client() -> None:
    async with travel() as t:
        t.router.answer = '{"route": ["flight_agent"]}'
        t.flight.mode = "json"
        pieces = await in_thread(
            lambda: [
                c.choices[0].delta.content or ""
                for c in oai(t.gateway).chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": USER}], stream=True
                )
                if c.choices
            ]
        )
        assert "".join(pieces) == FLIGHT_REPLY
        assert t.weather.requests == []


async def test_single_agent_listener_never_asks_the_orchestrator() -> None:
    async with router_mock() as router, fake_agent("flight_agent", FLIGHT_REPLY) as flight:
        text = travel_config(router.url, {"flight_agent": flight.url})
        async with running_agent_listener(text) as gw:
            completion = await in_thread(
                lambda: oai(gw).chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
                )
            )
            assert completion.choices[0].message.content == FLIGHT_REPLY
            assert router.requests == []
            assert len(flight.requests) == 1


# --- orchestrator outcomes ---------------------------------------------------------------------------------

DEFAULT_FLIGHT = (
    "      - id: weather_agent\n        description: weather information\n"
    "      - id: flight_agent\n        description: flight information\n        default: true\n"
)


@pytest.mark.parametrize(
    ("answer", "listed", "expected"),
    [
        ('{"route": []}', None, "weather_agent"),  # no default: the first agent
        ('{"route": []}', DEFAULT_FLIGHT, "flight_agent"),  # the default agent
        ('{"route": ["hotel_agent", "flight_agent"]}', None, "flight_agent"),  # unknown names skipped
        ('{"route": ["hotel_agent"]}', DEFAULT_FLIGHT, "flight_agent"),  # nothing known: the default
        ('{"route": ["flight_agent", "weather_agent"]}', None, "flight_agent,weather_agent"),  # its order
        ('{"route": ["flight_agent", "flight_agent"]}', None, "flight_agent"),  # a repeat runs once
    ],
)
async def test_orchestrator_answers_choose_the_chain(answer: str, listed: str | None, expected: str) -> None:
    async with travel(listener_agents=listed) as t:
        t.router.answer = answer
        raw = await in_thread(
            lambda: oai(t.gateway).chat.completions.with_raw_response.create(
                model="gpt-4o", messages=[{"role": "user", "content": USER}]
            )
        )
        assert raw.headers["x-plano-agents"] == expected
        assert "x-plano-agent-fallback" not in raw.headers
        ran = [name for name in expected.split(",")]
        agents = {"weather_agent": t.weather, "flight_agent": t.flight}
        for name, agent in agents.items():
            assert len(agent.requests) == (1 if name in ran else 0)


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda r: setattr(r, "status", 503), "orchestrator answered 503"),
        (lambda r: setattr(r, "delay_s", 2.0), "orchestrator timed out"),
        (lambda r: setattr(r, "raw", b"<html>nope</html>"), "orchestrator reply unreadable"),
    ],
)
async def test_a_failing_orchestrator_falls_back_to_the_default_agent(setup: Any, reason: str) -> None:
    async with travel(listener_agents=DEFAULT_FLIGHT, router_timeout_s=0.5) as t:
        setup(t.router)
        raw = await in_thread(
            lambda: oai(t.gateway).chat.completions.with_raw_response.create(
                model="gpt-4o", messages=[{"role": "user", "content": USER}]
            )
        )
        assert raw.parse().choices[0].message.content == FLIGHT_REPLY
        assert raw.headers["x-plano-agents"] == "flight_agent"
        assert raw.headers["x-plano-agent-fallback"].startswith(reason)
        assert t.weather.requests == []


# --- other client APIs ------------------------------------------------------------------------------------


async def test_anthropic_sdk_on_an_agent_listener() -> None:
    async with travel() as t:
        t.router.answer = BOTH
        message = await in_thread(
            lambda: ant(t.gateway).messages.create(
                model="gpt-4o",
                max_tokens=256,
                system="You are a travel planner.",
                messages=[{"role": "user", "content": USER}],
            )
        )
        assert message.content[0].type == "text"
        assert message.content[0].text == FLIGHT_REPLY
        # agents speak Chat: the Messages request arrived translated
        flight = t.flight.requests[0]
        assert flight.messages[0] == {"role": "system", "content": "You are a travel planner."}
        assert flight.messages[1]["name"] == "weather_agent"
        assert flight.body["max_tokens"] == 256

        def stream() -> tuple[str, str]:
            with ant(t.gateway).messages.stream(
                model="gpt-4o", max_tokens=64, messages=[{"role": "user", "content": USER}]
            ) as events:
                text = "".join(events.text_stream)
                return text, events.get_final_message().stop_reason or ""

        text, stop = await in_thread(stream)
        assert text == FLIGHT_REPLY
        assert stop == "end_turn"


async def test_responses_sdk_on_an_agent_listener() -> None:
    async with travel() as t:
        t.router.answer = BOTH
        response = await in_thread(lambda: oai(t.gateway).responses.create(model="gpt-4o", input=USER))
        assert response.output_text == FLIGHT_REPLY
        events = await in_thread(
            lambda: list(oai(t.gateway).responses.create(model="gpt-4o", input=USER, stream=True))
        )
        assert events[-1].type == "response.completed"
        deltas = "".join(getattr(e, "delta", "") for e in events if e.type == "response.output_text.delta")
        assert deltas == FLIGHT_REPLY
        assert t.flight.requests[-1].messages[-1] == {"role": "user", "content": USER}


# --- failures in the client's shape -----------------------------------------------------------------------


async def test_agent_down_is_a_502_in_the_clients_shape() -> None:
    async with router_mock() as router, fake_agent("weather_agent", WEATHER_REPLY) as weather:
        text = travel_config(router.url, {"weather_agent": weather.url, "flight_agent": "http://127.0.0.1:9"})
        async with running_agent_listener(text) as gw:
            router.answer = BOTH
            with pytest.raises(openai.APIStatusError) as caught:
                await in_thread(
                    lambda: oai(gw).chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": USER}]
                    )
                )
            error = caught.value
            assert error.status_code == 502
            body: Any = error.body
            assert body["type"] == "AgentFilterChainError"
            assert body["code"] == "agent_unreachable"
            assert body["message"] == "Agent 'flight_agent' could not be reached"
            assert "127.0.0.1:9" in body["error_chain"][1]
            assert error.response.headers["x-plano-agents"] == "weather_agent,flight_agent"

            with pytest.raises(anthropic.APIStatusError) as ant_caught:
                await in_thread(
                    lambda: ant(gw).messages.create(
                        model="gpt-4o", max_tokens=16, messages=[{"role": "user", "content": USER}]
                    )
                )
            ant_body: Any = ant_caught.value.body
            assert ant_caught.value.status_code == 502
            assert ant_body["type"] == "error"
            assert ant_body["error"]["type"] == "AgentFilterChainError"
            assert ant_body["error"]["message"] == "Agent 'flight_agent' could not be reached"


async def test_slow_agent_ends_at_the_listener_timeout_with_504() -> None:
    async with travel(timeout="0.6s") as t:
        t.router.answer = '{"route": ["weather_agent"]}'
        t.weather.delay_s = 3.0
        started = trio.current_time()
        with pytest.raises(openai.APIStatusError) as caught:
            await in_thread(
                lambda: oai(t.gateway).chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": USER}]
                )
            )
        assert trio.current_time() - started < 2.5
        assert caught.value.status_code == 504
        body: Any = caught.value.body
        assert body["message"] == "Agent 'weather_agent' did not finish within the listener timeout of 0.6s"
        assert body["type"] == "AgentFilterChainError"


async def test_stream_that_stalls_past_the_deadline_ends_with_an_in_stream_error() -> None:
    async with travel(timeout="0.8s") as t:
        t.router.answer = '{"route": ["weather_agent"]}'
        t.weather.mode = "hang"

        def call() -> list[Any]:
            got: list[Any] = []
            with pytest.raises(openai.APIError) as caught:
                for c in oai(t.gateway).chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": USER}], stream=True
                ):
                    got.append(c)
            got.append(caught.value)
            return got

        got = await in_thread(call)
        assert "did not finish within the listener timeout" in str(got[-1])
        with trio.fail_after(2):
            await t.weather.gone.wait()


@pytest.mark.parametrize(
    ("raw", "content_type", "reason"),
    [
        (b"<html>oops</html>", "text/html", "answered with a body that is not JSON"),
        (b"[1, 2]", "application/json", "answered with JSON that is not an object"),
        (b'{"choices": "many"}', "application/json", "malformed chat completion"),
        (b"", "application/json", "answered with an empty body"),
        (b"data: {not json}\n\n", "text/event-stream", "sent a broken stream"),
    ],
)
@pytest.mark.parametrize("last", [True, False])
async def test_garbage_from_an_agent_is_a_clear_502(
    raw: bytes, content_type: str, reason: str, last: bool
) -> None:
    async with travel() as t:
        t.router.answer = BOTH
        broken = t.flight if last else t.weather
        broken.mode = "raw"
        broken.raw = raw
        broken.raw_type = content_type
        response = await in_thread(
            lambda: httpx.post(
                f"{t.gateway.v1}/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": USER}]},
                timeout=10,
            )
        )
        assert response.status_code == 502
        error = response.json()["error"]
        assert error["type"] == "AgentFilterChainError"
        assert error["code"] == "agent_malformed"
        assert error["message"].startswith(f"Agent '{broken.name}' ")
        assert reason in error["message"]
        assert response.headers["x-plano-agents"] == "weather_agent,flight_agent"


@pytest.mark.parametrize("status", [400, 404, 422, 429])
async def test_agent_4xx_is_that_status_with_planos_client_error_fields(status: int) -> None:
    async with travel() as t:
        t.router.answer = BOTH
        t.weather.mode = "status"
        t.weather.status = status
        response = await in_thread(
            lambda: httpx.post(
                f"{t.gateway.v1}/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": USER}]},
                timeout=10,
            )
        )
        assert response.status_code == status
        error = response.json()["error"]
        assert error["type"] == "ClientError"
        assert error["agent"] == "weather_agent"
        assert error["status"] == status
        assert error["agent_response"] == '{"detail": "no such city"}'
        assert t.flight.requests == []  # the chain stopped


async def test_agent_5xx_is_a_502_naming_it() -> None:
    async with travel() as t:
        t.router.answer = '{"route": ["flight_agent"]}'
        t.flight.mode = "status"
        t.flight.status = 503
        t.flight.error_body = b"upstream overloaded"
        response = await in_thread(
            lambda: httpx.post(
                f"{t.gateway.base}/v1/messages",
                json={"model": "gpt-4o", "max_tokens": 8, "messages": [{"role": "user", "content": USER}]},
                timeout=10,
            )
        )
        assert response.status_code == 502
        body = response.json()
        assert body["type"] == "error"
        assert body["error"]["message"] == (
            "Server error from agent 'flight_agent' (HTTP 503): upstream overloaded"
        )


async def test_client_disconnect_cancels_the_agent_call() -> None:
    async with travel() as t:
        t.router.answer = '{"route": ["flight_agent"]}'
        t.flight.mode = "hang"

        def read_a_little_then_leave() -> bytes:
            with httpx.stream(
                "POST",
                f"{t.gateway.v1}/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": USER}], "stream": True},
                timeout=10,
            ) as response:
                return next(response.iter_raw())

        first = await in_thread(read_a_little_then_leave)
        assert first.startswith(b"data: ")
        with trio.fail_after(2):
            await t.flight.gone.wait()


async def test_client_disconnect_while_an_intermediate_agent_thinks() -> None:
    async with travel() as t:
        t.router.answer = BOTH
        t.weather.mode = "hang"

        def leave_early() -> None:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(
                    f"{t.gateway.v1}/chat/completions",
                    json={"model": "gpt-4o", "messages": [{"role": "user", "content": USER}]},
                    timeout=0.5,
                )

        await in_thread(leave_early)
        with trio.fail_after(2):
            await t.weather.gone.wait()
        assert t.flight.requests == []


# --- request edge -----------------------------------------------------------------------------------------


async def test_agent_url_with_a_path_is_called_at_that_path() -> None:
    async with router_mock() as router, fake_agent("flight_agent", FLIGHT_REPLY) as flight:
        text = travel_config(router.url, {"flight_agent": f"{flight.url}/agents/flight/chat?v=2"})
        async with running_agent_listener(text) as gw:
            await in_thread(
                lambda: oai(gw).chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
                )
            )
            assert flight.requests[0].path == "/agents/flight/chat?v=2"


async def test_routes_health_unknown_paths_and_bad_bodies() -> None:
    async with travel() as t:
        base = t.gateway.base

        def calls() -> list[httpx.Response]:
            return [
                httpx.get(f"{base}/healthz"),
                httpx.get(f"{base}/v1/models"),
                httpx.get(f"{base}/v1/chat/completions"),
                httpx.post(f"{base}/v1/chat/completions", content=b"{nope"),
                httpx.post(f"{base}/v1/chat/completions", json={"model": "m", "messages": []}),
                httpx.post(f"{base}/agents/v1/chat/completions", json={"model": "m", "messages": "x"}),
            ]

        health, models, wrong_method, bad_json, empty, not_list = await in_thread(calls)
        assert health.status_code == 200
        assert models.status_code == 404 and models.json()["error"]["code"] == "not_found"
        assert wrong_method.status_code == 405
        assert bad_json.status_code == 400 and "error" in bad_json.json()
        assert empty.status_code == 400
        assert empty.json()["error"]["message"] == "No messages in conversation history"
        assert not_list.status_code == 400
        assert t.router.requests == [] and t.weather.requests == [] and t.flight.requests == []


async def test_listener_agent_missing_from_the_agents_section() -> None:
    listed = "      - id: ghost_agent\n        description: nobody\n"
    async with router_mock() as router, fake_agent("flight_agent", FLIGHT_REPLY) as flight:
        text = travel_config(router.url, {"flight_agent": flight.url}, listener_agents=listed)
        async with running_agent_listener(text) as gw:
            response = await in_thread(
                lambda: httpx.post(
                    f"{gw.v1}/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
                )
            )
            assert response.status_code == 400
            assert response.json()["error"]["message"] == "Agent 'ghost_agent' not found in configuration"


# --- per-agent input filters ------------------------------------------------------------------------------


class ScriptedFilters:
    """A stand-in for the filter client: records each chain run and answers as scripted."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], str, Any, dict[bytes, bytes]]] = []
        self.fail: Exception | None = None
        self.reply: bytes | None = None

    async def run_chain(
        self, ids: Sequence[str], path: str, body: bytes, headers: list[Header], *, trace: object = None
    ) -> bytes:
        self.calls.append((tuple(ids), path, json.loads(body), dict(headers)))
        if self.fail is not None:
            raise self.fail
        if self.reply is not None:
            return self.reply
        decoded = json.loads(body)
        for message in decoded["messages"]:
            if message["role"] == "user":
                message["content"] = message["content"].replace("SFO", "[AIRPORT]")
        return json.dumps(decoded).encode()


FILTERED = (
    "      - id: weather_agent\n        description: weather information\n"
    "      - id: flight_agent\n        description: flight information\n"
    "        input_filters: [pii_mask]\n"
)
FILTER_SECTION = "filters:\n  - id: pii_mask\n    url: http://127.0.0.1:9\n    type: http\n"


async def test_input_filters_rewrite_what_that_agent_sees() -> None:
    filters = ScriptedFilters()
    async with travel(filters, listener_agents=FILTERED, extra=FILTER_SECTION) as t:
        t.router.answer = BOTH
        await in_thread(
            lambda: oai(t.gateway).chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": USER}],
                extra_headers={"x-request-id": "f-1"},
            )
        )
        ((ids, path, body, headers),) = filters.calls
        assert ids == ("pii_mask",)
        assert path == "/v1/chat/completions"
        assert body["model"] == "gpt-4o"
        assert body["messages"][0]["name"] == "weather_agent"  # the conversation as it stands for this agent
        assert headers[b"x-request-id"] == b"f-1"
        assert t.flight.requests[0].messages[-1]["content"] == USER.replace("SFO", "[AIRPORT]")
        assert t.weather.requests[0].messages[-1]["content"] == USER  # unfiltered agent


@pytest.mark.parametrize(
    ("fail", "status", "type_", "check"),
    [
        (FilterRejected("pii_mask", 403, b'{"detail": "blocked"}'), 403, "ClientError", "agent_response"),
        (
            FilterFailed("pii_mask", "filter 'pii_mask' unreachable"),
            502,
            "AgentFilterChainError",
            "error_chain",
        ),
    ],
)
async def test_filter_rejection_and_failure(fail: Exception, status: int, type_: str, check: str) -> None:
    filters = ScriptedFilters()
    filters.fail = fail
    async with travel(filters, listener_agents=FILTERED, extra=FILTER_SECTION) as t:
        t.router.answer = '{"route": ["flight_agent"]}'
        response = await in_thread(
            lambda: httpx.post(
                f"{t.gateway.v1}/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": USER}]},
            )
        )
        assert response.status_code == status
        error = response.json()["error"]
        assert error["type"] == type_
        assert check in error
        if status == 403:
            assert error["agent"] == "pii_mask"
            assert error["agent_response"] == '{"detail": "blocked"}'
        assert t.flight.requests == []


async def test_filter_answer_without_messages_is_a_502() -> None:
    filters = ScriptedFilters()
    filters.reply = b'{"model": "gpt-4o"}'
    async with travel(filters, listener_agents=FILTERED, extra=FILTER_SECTION) as t:
        t.router.answer = '{"route": ["flight_agent"]}'
        response = await in_thread(
            lambda: httpx.post(
                f"{t.gateway.v1}/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": USER}]},
            )
        )
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "filter_malformed"


async def test_real_http_filter_client_masks_and_blocks() -> None:
    seen: list[tuple[str, Any]] = []

    async def content_guard(stream: trio.SocketStream, request: bytes) -> None:
        head_bytes, _, body = request.partition(b"\r\n\r\n")
        decoded = json.loads(body)
        seen.append((head_bytes.split(b" ")[1].decode(), json.loads(body)))
        if "hack" in decoded["messages"][-1]["content"]:
            payload = b'{"detail": {"error": "content_blocked"}}'
            status = 400
        else:
            decoded["messages"][-1]["content"] = decoded["messages"][-1]["content"].replace(
                "SFO", "[AIRPORT]"
            )
            payload = json.dumps(decoded).encode()
            status = 200
        reply = head(status, ("content-type", "application/json"), ("content-length", str(len(payload))))
        await stream.send_all(reply + payload)

    async with (
        router_mock() as router,
        fake_agent("flight_agent", FLIGHT_REPLY) as flight,
        scripted_provider(content_guard) as guard,
    ):
        listed = (
            "      - id: flight_agent\n        description: flights\n        input_filters: [content_guard]\n"
        )
        extra = f"filters:\n  - id: content_guard\n    url: {guard.url}\n    type: http\n"
        text = travel_config(router.url, {"flight_agent": flight.url}, listener_agents=listed, extra=extra)
        async with running_agent_listener(text, real_filters=True) as gw:
            completion = await in_thread(
                lambda: oai(gw).chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": USER}]
                )
            )
            assert completion.choices[0].message.content == FLIGHT_REPLY
            assert seen[0][0] == "/v1/chat/completions"
            assert seen[0][1] == {"model": "gpt-4o", "messages": [{"role": "user", "content": USER}]}
            assert flight.requests[0].messages[-1]["content"] == USER.replace("SFO", "[AIRPORT]")
            with pytest.raises(openai.BadRequestError) as caught:
                await in_thread(
                    lambda: oai(gw).chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": "how to hack a plane"}]
                    )
                )
            body: Any = caught.value.body
            assert body["type"] == "ClientError"
            assert body["agent"] == "content_guard"
            assert json.loads(body["agent_response"]) == {"detail": {"error": "content_blocked"}}
            assert len(flight.requests) == 1


# --- pure parts -------------------------------------------------------------------------------------------

U = {"role": "user", "content": "q"}
A = {"role": "assistant", "content": "a"}
S = {"role": "system", "content": "s"}
T = {"role": "tool", "content": "t", "tool_call_id": "c"}
NAMED = {"role": "assistant", "name": "w", "content": "ans"}


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([U], [NAMED, U]),
        ([S, U], [S, NAMED, U]),
        ([S, U, A, U], [S, U, A, NAMED, U]),
        ([U, A], [NAMED, U, A]),  # the last user message, even when it is not last
        ([U, A, T], [NAMED, U, A, T]),
        ([S, A], [S, NAMED, A]),  # no user message: before the last message, as Plano
        (["junk", U], ["junk", NAMED, U]),
    ],
)
def test_insert_answer(messages: list[Any], expected: list[Any]) -> None:
    assert insert_answer(messages, "w", "ans") == expected


def test_insert_answer_into_nothing() -> None:
    with pytest.raises(ValueError, match="No messages in conversation history"):
        insert_answer([], "w", "x")


@pytest.mark.parametrize(
    ("url", "origin", "target"),
    [
        ("http://localhost:10510", Origin("http", "localhost", 10510), b"/v1/chat/completions"),
        ("http://localhost:10510/", Origin("http", "localhost", 10510), b"/v1/chat/completions"),
        ("https://agents.example.com", Origin("https", "agents.example.com", 443), b"/v1/chat/completions"),
        ("http://h/weather/v1/chat/completions", Origin("http", "h", 80), b"/weather/v1/chat/completions"),
        ("http://h:8/a?x=1", Origin("http", "h", 8), b"/a?x=1"),
        ("http://[::1]:9/", Origin("http", "::1", 9), b"/v1/chat/completions"),
    ],
)
def test_agent_target(url: str, origin: Origin, target: bytes) -> None:
    assert agent_target(url) == (origin, target)


@pytest.mark.parametrize("url", ["localhost:10510", "ftp://h/x", "http://", "http://h:99999", "http://h/é"])
def test_agent_target_refuses_unusable_urls(url: str) -> None:
    with pytest.raises(ValueError):
        agent_target(url)


def test_default_and_chosen_agents() -> None:
    a, b, c = (ListenerAgent(id=x, description=x) for x in "abc")
    b_default = ListenerAgent(id="b", description="b", default=True)
    assert default_agent([a, b, c]) is a
    assert default_agent([a, b_default, c]) is b_default
    assert chosen_agents(["c", "x", "a", "c"], [a, b, c]) == (c, a)
    assert chosen_agents([], [a, b]) == ()
    assert [p.name for p in agent_routes([a, b])] == ["a", "b"]


def test_collector_folds_a_stream_with_tool_calls_and_usage() -> None:
    collector = ChatCollector()
    base = {"id": "x", "model": "m", "created": 3}
    collector.feed({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]})
    collector.feed({**base, "choices": [{"index": 0, "delta": {"content": "lo"}}]})
    collector.feed(
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a"'}}
                        ]
                    },
                }
            ],
        }
    )
    collector.feed(
        {
            **base,
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}}
            ],
        }
    )
    collector.feed({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    collector.feed(
        {**base, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    )
    assert collector.text == "Hello"
    completion = collector.completion("fallback")
    assert completion["model"] == "m"
    assert completion["choices"][0] == {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": "Hello",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
            ],
        },
        "finish_reason": "tool_calls",
    }
    assert completion["usage"]["total_tokens"] == 3
    with pytest.raises(AgentAnswerError, match="broke off its stream with an error: down"):
        collector.feed({"error": {"message": "down"}})


def test_completion_round_trips_through_chunks() -> None:
    completion = {
        "id": "c",
        "model": "m",
        "created": 1,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi there"}, "finish_reason": "length"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    chunks = completion_chunks(completion, "m", include_usage=True)
    collector = ChatCollector()
    for item in chunks:
        collector.feed(item)
    folded = collector.completion("m")
    assert folded["choices"][0]["message"]["content"] == "hi there"
    assert folded["choices"][0]["finish_reason"] == "length"
    assert folded["usage"]["total_tokens"] == 3
    assert len(completion_chunks(completion, "m", include_usage=False)) == 2
    assert completion_text(completion) == "hi there"


def test_error_bodies_keep_planos_fields_in_both_shapes() -> None:
    refused = client_error("weather_agent", 404, b"nope")
    assert json.loads(refused.body(ErrorStyle.OPENAI)) == {
        "error": {
            "message": "Agent 'weather_agent' answered 404",
            "type": "ClientError",
            "param": None,
            "code": "agent_client_error",
            "agent": "weather_agent",
            "status": 404,
            "agent_response": "nope",
        }
    }
    failed = chain_error(502, "Agent 'x' could not be reached", "agent_unreachable", "connect refused")
    body = json.loads(failed.body(ErrorStyle.ANTHROPIC))
    assert body["type"] == "error"
    assert body["error"]["type"] == "AgentFilterChainError"
    assert body["error"]["error_chain"] == ["Agent 'x' could not be reached", "connect refused"]
    assert json.loads(failed.with_headers(((b"a", b"b"),)).body())["error"]["debug_info"]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_chunkish = st.fixed_dictionaries(
    {},
    optional={
        "id": _json_values,
        "choices": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "index": st.integers(0, 2) | _json_values,
                    "delta": st.fixed_dictionaries(
                        {},
                        optional={"content": _json_values, "tool_calls": _json_values},
                    )
                    | _json_values,
                    "finish_reason": _json_values,
                },
            )
            | _json_values,
            max_size=3,
        )
        | _json_values,
        "usage": _json_values,
        "error": st.none() | _json_values,
    },
)


@given(st.lists(_chunkish, max_size=5))
def test_collector_reads_hostile_chunks_with_typed_errors_only(chunks: list[Any]) -> None:
    collector = ChatCollector()
    for item in chunks:
        with suppress(AgentAnswerError):
            collector.feed(item)
    msgspec.json.encode(collector.completion("m"))


@given(_json_values)
def test_completion_text_and_chunks_read_hostile_json_with_typed_errors_only(value: Any) -> None:
    for read in (completion_text, lambda v: completion_chunks(v, "m", True)):
        with suppress(AgentAnswerError):
            read(value)
