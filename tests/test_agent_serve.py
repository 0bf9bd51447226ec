"""Agent listeners served by the real server: `server.serve.serve`, next to a model listener.

`test_agent_listener` drives `AgentListenerApp` on its own; here the whole
gateway runs as `plano-trio up` runs it (one `serve()` with a model listener
and an agent listener, each on its own port, the runtime's filter client and
the orchestrator resolved from `overrides.agent_orchestration_model`), and
real SDKs talk to it: the travel-agents flow, a single-agent listener,
failures in the SDK's error shape, a client leaving, and shutdown draining
the agent listener like the model listener.  The last test forks workers
(`--workers 2`) to check agent listeners share their socket too.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple

import anthropic
import httpx
import openai
import pytest
import trio

from plano_trio.config import load_config_text
from plano_trio.config.schema import Config
from plano_trio.gateway.agent_select import orchestrator_route
from plano_trio.server.serve import serve, served_listeners
from tests.agent_fakes import FakeAgent, fake_agent
from tests.mock_provider import MockProvider
from tests.router_mock import RouterMock, router_mock
from tests.support import Gateway, in_thread
from tests.test_cli import Server

WEATHER_REPLY = "Paris is sunny, 21 C."
FLIGHT_REPLY = "AF83 leaves SFO at 15:40 for CDG."
USER = "What is the weather in Paris and which flights go from SFO to Paris?"
BOTH = '{"route": ["weather_agent", "flight_agent"]}'
ORCHESTRATOR = "openrouter/katanemo/travel-orchestrator"
"""A configured orchestrator whose model id has a slash of its own (the provider prefix is stripped once)."""
UNUSED = "http://127.0.0.1:9"


def gateway_config(
    router_url: str,
    agents: dict[str, str],
    *,
    provider_url: str = UNUSED,
    listed: str | None = None,
    timeout: str = "5s",
    grace_s: float = 2.0,
) -> str:
    """A model listener and the travel agent listener, both on port 0; the orchestrator is a configured
    provider (`overrides.agent_orchestration_model`) pointing at the router mock."""
    top = "".join(f"  - id: {name}\n    url: {url}\n" for name, url in agents.items())
    listed = listed or "".join(
        f"      - id: {name}\n        description: {name.split('_')[0]} information\n" for name in agents
    )
    return (
        "version: v0.3.0\n"
        f"agents:\n{top}"
        "model_providers:\n"
        f"  - model: openai/gpt-4o-mini\n    access_key: server-key\n    base_url: {provider_url}\n"
        "    default: true\n"
        f"  - model: {ORCHESTRATOR}\n    access_key: router-key\n    base_url: {router_url}\n"
        "listeners:\n"
        "  - type: model\n    name: llm\n    address: 127.0.0.1\n    port: 0\n"
        "  - type: agent\n    name: travel_booking_service\n    address: 127.0.0.1\n    port: 0\n"
        f"    timeout: {timeout}\n"
        "    router: plano_orchestrator_v1\n"
        f"    agents:\n{listed}"
        f"overrides:\n  agent_orchestration_model: {ORCHESTRATOR}\n"
        f"plano_trio:\n  router_timeout_s: 0.5\n  graceful_shutdown_s: {grace_s}\n"
    )


class Served(NamedTuple):
    gateways: dict[str, Gateway]
    """Each served listener's address, by listener name."""
    shutdown: trio.Event
    stopped: trio.Event
    """Set once `serve()` has returned (every listener drained)."""

    @property
    def model(self) -> Gateway:
        return self.gateways["llm"]

    @property
    def agents(self) -> Gateway:
        return self.gateways["travel_booking_service"]


@asynccontextmanager
async def serving(config: Config) -> AsyncIterator[Served]:
    """`serve(config)` in this trio loop until the block ends (or a test sets `shutdown` itself)."""
    shutdown = trio.Event()
    stopped = trio.Event()

    async def run(task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve(config, shutdown=shutdown, task_status=task_status)
        finally:
            stopped.set()

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(run)
        names = [listener.name for listener in served_listeners(config)]
        assert len(binds) == len(names)  # one 127.0.0.1 address per listener, in config order
        try:
            yield Served(
                {name: Gateway(bind) for name, bind in zip(names, binds, strict=True)}, shutdown, stopped
            )
        finally:
            shutdown.set()


class Travel(NamedTuple):
    served: Served
    router: RouterMock
    weather: FakeAgent
    flight: FakeAgent


@asynccontextmanager
async def travel(**options: Any) -> AsyncIterator[Travel]:
    async with (
        router_mock() as router,
        fake_agent("weather_agent", WEATHER_REPLY) as weather,
        fake_agent("flight_agent", FLIGHT_REPLY) as flight,
    ):
        text = gateway_config(
            router.url, {"weather_agent": weather.url, "flight_agent": flight.url}, **options
        )
        async with serving(load_config_text(text, env={})) as served:
            yield Travel(served, router, weather, flight)


@asynccontextmanager
async def single_agent(**options: Any) -> AsyncIterator[Travel]:
    """The listener has only the flight agent (the weather agent is declared but not listed)."""
    listed = "      - id: flight_agent\n        description: flight information\n"
    async with travel(listed=listed, **options) as t:
        yield t


def oai(gw: Gateway, timeout: float = 10) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key="client-key", max_retries=0, timeout=timeout)


def ant(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base, api_key="client-key", max_retries=0, timeout=10)


# --- the travel-agents flow -------------------------------------------------------------------------------


async def test_travel_agents_flow_beside_a_model_listener(mock: MockProvider) -> None:
    async with travel(provider_url=mock.url) as t:
        t.router.answer = BOTH
        gw = t.served.agents

        def chat_stream() -> tuple[list[str], dict[str, str]]:
            with oai(gw).chat.completions.with_streaming_response.create(
                model="gpt-4o",
                messages=[
                    {"role": "system", "content": "You are a travel planner."},
                    {"role": "user", "content": USER},
                ],
                stream=True,
            ) as raw:
                return [c.choices[0].delta.content or "" for c in raw.parse() if c.choices], dict(raw.headers)

        pieces, headers = await in_thread(chat_stream)
        assert "".join(pieces) == FLIGHT_REPLY
        assert len(pieces) > 2  # the last agent's answer streams back, not one piece
        assert headers["x-plano-agents"] == "weather_agent,flight_agent"
        # the weather agent's whole answer reached the flight agent, named, before the last user message
        assert t.flight.requests[0].messages == [
            {"role": "system", "content": "You are a travel planner."},
            {"role": "assistant", "name": "weather_agent", "content": WEATHER_REPLY},
            {"role": "user", "content": USER},
        ]
        # the orchestrator call went to the configured provider, with its key and its model id
        ((router_headers, body),) = t.router.requests
        assert body["model"] == "katanemo/travel-orchestrator"
        assert router_headers["authorization"] == b"Bearer router-key"
        assert "weather_agent" in body["messages"][0]["content"]

        def messages_stream() -> tuple[str, str]:
            with ant(gw).messages.stream(
                model="gpt-4o", max_tokens=64, messages=[{"role": "user", "content": USER}]
            ) as events:
                return "".join(events.text_stream), events.get_final_message().stop_reason or ""

        assert await in_thread(messages_stream) == (FLIGHT_REPLY, "end_turn")

        # the model listener beside it is untouched: its own provider, no agents
        completion = await in_thread(
            lambda: oai(t.served.model).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "reply with exactly: model here"}]
            )
        )
        assert completion.choices[0].message.content == "model here"
        assert len(t.flight.requests) == 2 and len(t.router.requests) == 2

        health = await in_thread(lambda: httpx.get(f"{gw.base}/healthz", timeout=5))
        assert health.status_code == 200


async def test_single_agent_listener_never_calls_the_orchestrator() -> None:
    async with single_agent() as t:
        t.flight.mode = "json"
        completion = await in_thread(
            lambda: oai(t.served.agents).chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": USER}]
            )
        )
        assert completion.choices[0].message.content == FLIGHT_REPLY
        pieces = await in_thread(
            lambda: [
                c.choices[0].delta.content or ""
                for c in oai(t.served.agents).chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": USER}], stream=True
                )
                if c.choices
            ]
        )
        assert "".join(pieces) == FLIGHT_REPLY
        assert t.router.requests == []
        assert t.weather.requests == []
        assert len(t.flight.requests) == 2


ROUTE_CASES = [
    # (providers besides `openai/*`, agent_orchestration_model, the provider that serves it)
    ("  - model: plano/Plano-Orchestrator\n    base_url: http://r:1\n", None, "plano/Plano-Orchestrator"),
    # not served by a declared provider: Plano's hosted orchestrator (the internal provider)
    ("", None, "plano/orchestrator"),
    ("", "openai/gpt-4o", "plano/orchestrator"),  # a wildcard provider does not count
    # the first provider in config order whose model id matches, whatever its prefix
    (
        "  - model: groq/gpt-4o\n    access_key: g\n  - model: openrouter/gpt-4o\n    access_key: o\n",
        "openai/gpt-4o",
        "groq/gpt-4o",
    ),
    (
        "  - model: openrouter/acme/orc-1\n    access_key: o\n",
        "openrouter/acme/orc-1",
        "openrouter/acme/orc-1",
    ),
]


@pytest.mark.parametrize(("providers", "model", "expected"), ROUTE_CASES)
def test_orchestrator_route_is_planos_provider_lookup(
    providers: str, model: str | None, expected: str
) -> None:
    text = (
        "version: v0.3.0\nlisteners: [{type: model, name: llm, port: 0}]\n"
        "model_providers:\n  - model: openai/*\n    access_key: k\n"
        + providers
        + ("" if model is None else f"overrides:\n  agent_orchestration_model: {model}\n")
        + "model_aliases:\n  Plano-Orchestrator: {target: openai/gpt-4o}\n"  # aliases play no part
    )
    config = load_config_text(text, env={})
    route = orchestrator_route(config.model_providers, config.routing.orchestrator_model)
    assert not isinstance(route, str), route
    assert (route.provider.name, route.model) == (expected, config.routing.orchestrator_model)
    if expected == "plano/orchestrator":
        assert route.origin.host == "archfc.katanemo.dev"


# --- failures in the SDK's own shape ----------------------------------------------------------------------


def _break(t: Travel, kind: str) -> None:
    if kind == "slow":
        t.flight.delay_s = 3.0
    elif kind == "garbage":
        t.flight.mode = "raw"
        t.flight.raw = b"<html>oops</html>"
        t.flight.raw_type = "text/html"


EXPECTED = {
    "down": (502, "Agent 'flight_agent' could not be reached"),
    "slow": (504, "Agent 'flight_agent' did not finish within the listener timeout of 0.6s"),
    "garbage": (502, "Agent 'flight_agent' answered with a body that is not JSON"),
}


@pytest.mark.parametrize("kind", ["down", "slow", "garbage"])
@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
async def test_failing_agent_is_a_clear_error_in_the_sdks_shape(kind: str, sdk: str) -> None:
    async with router_mock() as router, fake_agent("flight_agent", FLIGHT_REPLY) as flight:
        url = UNUSED if kind == "down" else flight.url
        text = gateway_config(router.url, {"flight_agent": url}, timeout="0.6s")
        async with serving(load_config_text(text, env={})) as served:
            _break(Travel(served, router, flight, flight), kind)
            status, message = EXPECTED[kind]
            started = trio.current_time()
            if sdk == "openai":
                with pytest.raises(openai.APIStatusError) as caught:
                    await in_thread(
                        lambda: oai(served.agents).chat.completions.create(
                            model="gpt-4o", messages=[{"role": "user", "content": USER}], stream=True
                        )
                    )
                body: Any = caught.value.body
                assert (caught.value.status_code, body["type"]) == (status, "AgentFilterChainError")
                assert body["message"] == message
            else:
                with pytest.raises(anthropic.APIStatusError) as ant_caught:
                    await in_thread(
                        lambda: ant(served.agents).messages.create(
                            model="gpt-4o", max_tokens=16, messages=[{"role": "user", "content": USER}]
                        )
                    )
                ant_body: Any = ant_caught.value.body
                assert (ant_caught.value.status_code, ant_body["type"]) == (status, "error")
                assert ant_body["error"]["type"] == "AgentFilterChainError"
                assert ant_body["error"]["message"] == message
            assert trio.current_time() - started < 2.5


async def test_client_leaving_cancels_the_agent_call() -> None:
    async with single_agent() as t:
        t.flight.mode = "hang"

        def read_one_chunk_then_leave() -> str:
            stream = oai(t.served.agents).chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": USER}], stream=True
            )
            first = next(iter(stream))
            stream.close()
            return first.choices[0].delta.role or ""

        assert await in_thread(read_one_chunk_then_leave) == "assistant"
        with trio.fail_after(2):
            await t.flight.gone.wait()


# --- shutdown ---------------------------------------------------------------------------------------------


async def test_shutdown_drains_an_agent_request_in_flight_and_refuses_new_ones() -> None:
    async with single_agent() as t:
        t.flight.delay_s = 0.8
        answers: list[str] = []

        async def ask() -> None:
            completion = await in_thread(
                lambda: oai(t.served.agents).chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": USER}]
                )
            )
            answers.append(completion.choices[0].message.content or "")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            while not t.flight.requests:  # the agent has the request
                await trio.sleep(0.02)
            t.served.shutdown.set()
            await trio.sleep(0.1)
            with pytest.raises(httpx.ConnectError):  # listening sockets closed at once
                await in_thread(lambda: httpx.get(f"{t.served.agents.base}/healthz", timeout=2))
        assert answers == [FLIGHT_REPLY]
        with trio.fail_after(3):
            await t.served.stopped.wait()


async def test_shutdown_grace_end_cuts_a_hung_agent_stream_with_an_error_event() -> None:
    async with single_agent(grace_s=1.0) as t:
        t.flight.mode = "hang"
        got: list[Any] = []

        def stream() -> None:
            with pytest.raises(openai.APIError) as caught:
                for chunk in oai(t.served.agents).chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": USER}], stream=True
                ):
                    got.append(chunk)
            got.append(caught.value)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(in_thread, stream)
            while not t.flight.requests:
                await trio.sleep(0.02)
            await trio.sleep(0.1)
            started = trio.current_time()
            t.served.shutdown.set()
            with trio.fail_after(3):
                await t.served.stopped.wait()
            assert trio.current_time() - started < 2.0
        assert "shutting down" in str(got[-1])
        with trio.fail_after(2):
            await t.flight.gone.wait()


# --- Plano's travel-agents demo, in shape -----------------------------------------------------------------

DEMO_SHAPE = """\
version: v0.3.0

agents:
  - id: weather_agent
    url: {weather}
  - id: flight_agent
    url: {flight}

model_providers:
  - model: openai/gpt-4o
    access_key: $OPENAI_API_KEY
    default: true
  - model: openai/gpt-4o-mini
    access_key: $OPENAI_API_KEY # a cheaper model the agents may use themselves
  - model: plano/Plano-Orchestrator
    base_url: {router}

listeners:
  - type: agent
    name: travel_booking_service
    port: {port}
    router: plano_orchestrator_v1
    agents:
      - id: weather_agent
        description: |

          Answers questions about the weather: current conditions and forecasts for a city.

          Capabilities:
            * Current temperature and conditions
            * Multi-day forecasts
            * Answers only the weather part of a mixed travel question
      - id: flight_agent
        description: |

          Answers questions about flights between two airports: schedules, status, gates, delays.

          Capabilities:
            * Flights between two cities (resolves city names to airport codes)
            * Answers only the flight part of a mixed travel question
{model_listener}
tracing:
  random_sampling: 100
  span_attributes:
    header_prefixes:
      - x-acme-
"""


def test_demo_shape_loads_with_no_warnings_for_its_agent_parts() -> None:
    text = DEMO_SHAPE.format(
        weather="http://localhost:10510",
        flight="http://localhost:10520",
        router=UNUSED,
        port=8001,
        model_listener="",
    )
    config = load_config_text(text, env={"OPENAI_API_KEY": "k"})
    agent_parts = ("agents", "listeners", "overrides", "model_providers")
    assert [key for key in config.unsupported if key.startswith(agent_parts)] == []
    assert [w for w in config.warnings if "agent" in str(w)] == []
    # as Plano's CLI, a model listener is added when the file declares none
    assert [(lst.type, lst.port) for lst in config.listeners] == [("agent", 8001), ("model", 12000)]
    (agent_listener,) = [lst for lst in config.listeners if lst.type == "agent"]
    assert agent_listener.timeout_s == 30.0  # Plano's agent-listener default
    assert [a.id for a in agent_listener.agents] == ["weather_agent", "flight_agent"]
    assert [a.id for a in config.agents] == ["weather_agent", "flight_agent"]


async def test_demo_shape_serves_the_travel_flow() -> None:
    async with (
        router_mock() as router,
        fake_agent("weather_agent", WEATHER_REPLY) as weather,
        fake_agent("flight_agent", FLIGHT_REPLY) as flight,
    ):
        # port 0 instead of 8001 and a model listener of our own instead of the default 0.0.0.0:12000
        text = DEMO_SHAPE.format(
            weather=weather.url,
            flight=flight.url,
            router=router.url,
            port=0,
            model_listener="  - {type: model, name: llm, address: 127.0.0.1, port: 0}\n",
        )
        config = load_config_text(text, env={"OPENAI_API_KEY": "k"})
        router.answer = BOTH
        async with serving(config) as served:
            pieces = await in_thread(
                lambda: [
                    c.choices[0].delta.content or ""
                    for c in oai(served.gateways["travel_booking_service"]).chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": USER}], stream=True
                    )
                    if c.choices
                ]
            )
        assert "".join(pieces) == FLIGHT_REPLY
        assert router.requests[0][1]["model"] == "Plano-Orchestrator"
        assert flight.requests[0].messages[0] == {
            "role": "assistant",
            "name": "weather_agent",
            "content": WEATHER_REPLY,
        }


# --- several workers --------------------------------------------------------------------------------------

AGENT_LISTEN_RE = re.compile(r"listener 'agents' \(agent: mock_agent\) on http://[\d.]+:(\d+)")


def test_workers_share_the_agent_listeners_socket(mock: MockProvider, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            version: v0.3.0
            agents:
              - id: mock_agent
                url: {mock.url}
            model_providers:
              - model: openai/gpt-4o-mini
                access_key: server-key
                base_url: {mock.url}
            listeners:
              - type: agent
                name: agents
                address: 127.0.0.1
                port: 0
                agents: [{{id: mock_agent, description: any question}}]
              - {{type: model, name: llm, address: 127.0.0.1, port: 0}}
            """
        )
    )
    server = Server([str(config), "--workers", "2", "--log-format", "json"], tmp_path)
    try:
        deadline = time.monotonic() + 10
        while (
            len(ports := AGENT_LISTEN_RE.findall("".join(server.lines))) < 2 and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert len(set(ports)) == 1 and len(ports) == 2, server.lines  # both workers, one shared socket
        body = json.dumps(
            {"model": "gpt-4o", "messages": [{"role": "user", "content": "reply with exactly: a"}]}
        )
        answers = []
        for _ in range(8):
            request = urllib.request.Request(
                f"http://127.0.0.1:{ports[0]}/v1/chat/completions",
                data=body.encode(),
                headers={"content-type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                answers.append(json.loads(response.read())["choices"][0]["message"]["content"])
        assert answers == ["a"] * 8
    finally:
        assert server.stop() == 0
