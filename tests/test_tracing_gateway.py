"""Traces end to end, read by Plano's own viewer: the issue's compatibility check, automated.

The real gateway (`serve()`) exports to our `plano-trio trace listen` (a child process); then
`planoai trace --json` (Plano's CLI, a child process, `PLANO_TRACE_PORT`) must show the spans with
brightstaff's names, services and attributes.  Each test tags its requests with an `x-request-id`
and asks the viewer for the trace holding it.  Services called by the gateway (the provider, the
router, filters, agents) are checked to have received a `traceparent` naming the span of their call.

Also: sampling at 0 % and 100 % and the client's own sampled flag; a collector that is down changes
neither the answers nor their latency, and shutdown stays bounded; keys, `Authorization` values and a
connection string's password appear in no span attribute and no log line.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trio

from tests.agent_fakes import fake_agent
from tests.failover_support import PRIMARY, mocks, provider, status_policy, unused_port
from tests.failover_support import config as failover_config
from tests.mock_provider import MockProvider
from tests.router_mock import router_mock
from tests.scripted_provider import head, scripted_provider
from tests.state_support import dsn, fresh_schema
from tests.support import in_thread, provider_config, running_gateway
from tests.test_gateway_state import MEMORY, state_config
from tests.test_routing_gateway import CODE, GPT, routing_config, three_models
from tests.test_trace_cli import OurListener, as_json, view

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"

Span = dict[str, Any]
CLAUDE = "anthropic/claude-sonnet-4-6"
"""A provider without a Responses API: its `/v1/responses` turns go through the conversation store."""
TEAM = "  span_attributes:\n    static: {team: travel}\n"
EVERY_HEADER = "  span_attributes:\n    header_prefixes: ['', x-, auth, api]\n"
"""Prefixes that match every header (`''`), so only the credential rule keeps keys out of spans."""


@pytest.fixture(scope="module")
def collector() -> Iterator[OurListener]:
    listener = OurListener()
    yield listener
    listener.stop()


_REFUSING = socket.socket()
_REFUSING.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused, the port stays ours
DEAD_COLLECTOR = f"http://127.0.0.1:{_REFUSING.getsockname()[1]}"


def tracing(collector: OurListener | None, *, sampling: int = 100, extra: str = "") -> str:
    """A `tracing` section exporting to `collector` (None: to a port where nothing listens)."""
    endpoint = f"http://127.0.0.1:{collector.port}" if collector is not None else DEAD_COLLECTOR
    return f"tracing:\n  random_sampling: {sampling}\n  opentracing_grpc_endpoint: {endpoint}\n{extra}"


def new_id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


def trace_holding(collector: OurListener, request_id: str) -> list[Span]:
    """The spans of the trace whose request span has `request_id`, as `planoai trace --json` shows them."""
    shown = as_json(view("planoai", collector.port, "--json", "any", "--where", f"request_id={request_id}"))
    traces = shown["traces"]
    assert len(traces) == 1, traces
    spans: list[Span] = traces[0]["spans"]
    return spans


def no_trace_holds(collector: OurListener, request_id: str) -> bool:
    result = view("planoai", collector.port, "--json", "any", "--where", f"request_id={request_id}")
    if result.returncode != 0:  # nothing at all carries a request_id yet
        return "Unknown --where key" in result.stderr
    return bool(json.loads(result.stdout)["traces"] == [])


def attrs(span: Span) -> dict[str, Any]:
    """A span's attributes as typed values (the viewer's JSON spells ints as strings)."""
    out: dict[str, Any] = {}
    for item in span["attributes"]:
        value = item["value"]
        if "intValue" in value:
            out[item["key"]] = int(value["intValue"])
        else:
            out[item["key"]] = next(iter(value.values()))
    return out


def only(spans: list[Span], service: str, name: str | None = None) -> Span:
    found = [s for s in spans if s["service"] == service and (name is None or s["name"] == name)]
    assert len(found) == 1, [(s["service"], s["name"]) for s in spans]
    return found[0]


def children(spans: list[Span], parent: Span, service: str | None = None) -> list[Span]:
    return [
        s
        for s in spans
        if s["parentSpanId"] == parent["spanId"] and (service is None or s["service"] == service)
    ]


def traceparent_of(headers: dict[str, str]) -> tuple[str, str]:
    version, trace_id, parent, flags = headers["traceparent"].split("-")
    assert (version, flags) == ("00", "01")
    return trace_id, parent


def post(url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    with httpx.Client(timeout=20) as client:
        return client.post(url, json=body, headers=headers)


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


# -- the LLM request ----------------------------------------------------------------------------------


async def test_planoai_shows_the_llm_request_as_plano_names_it(
    collector: OurListener, mock: MockProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "plano_trio.access")
    caplog.set_level(logging.INFO, "plano_trio.signals")
    plain, streamed = new_id("plain"), new_id("stream")
    extra = "  span_attributes:\n    static: {deployment: test}\n    header_prefixes: [x-katanemo-]\n"
    async with running_gateway(provider_config(mock.url, tail=tracing(collector, extra=extra))) as gw:
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
        first = await in_thread(
            lambda: post(
                gw.v1 + "/chat/completions",
                chat("what is the weather in Seattle today?", temperature=0.5, tools=tools),
                **{"x-request-id": plain, "traceparent": CLIENT_TRACEPARENT, "x-katanemo-user-id": "u-1"},
            )
        )
        second = await in_thread(
            lambda: post(
                gw.v1 + "/chat/completions",
                chat("hi", stream=True, stream_options={"include_usage": True}),
                **{"x-request-id": streamed},
            )
        )
        # The spans go out once the signals worker has read the conversations (off the request).
        with trio.fail_after(60):
            while sum(r.name == "plano_trio.signals" for r in caplog.records) < 2:
                await trio.sleep(0.05)
    assert first.status_code == second.status_code == 200

    spans = trace_holding(collector, plain)
    root = only(spans, "plano(llm)")
    assert (
        root["traceId"] == CLIENT_TRACE and root["parentSpanId"] == CLIENT_SPAN
    )  # the client's trace, continued
    assert root["name"] == "POST /v1/chat/completions gpt-4o-mini -> openai/gpt-4o-mini"
    a = attrs(root)
    assert {
        k: a[k] for k in a if not k.startswith(("llm.usage", "llm.duration", "llm.time", "llm.response"))
    } == {
        "component": "llm",
        "request_id": plain,
        "http.method": "POST",
        "http.path": "/v1/chat/completions",
        "http.status_code": 200,
        "service.name.override": "plano(llm)",
        "deployment": "test",
        "user.id": "u-1",
        "llm.model": "gpt-4o-mini",  # the model the provider says it ran, as brightstaff records it
        "llm.provider": "openai",
        "llm.temperature": "0.5",
        "llm.tools": "get_weather(...)",
        "llm.user_message_preview": "what is the weather in Seattle today?",
        "llm.is_streaming": False,
        "model.requested": "gpt-4o-mini",
        # Signals, as brightstaff writes them on every LLM response (one plain turn: neutral, nothing found).
        "signals.quality": "neutral",
        "signals.quality_score": 50.0,
        "signals.turn_count": 1,
        "signals.efficiency_score": 1.0,
    }
    assert a["llm.usage.prompt_tokens"] > 0 and a["llm.usage.completion_tokens"] > 0
    assert a["llm.usage.total_tokens"] == a["llm.usage.prompt_tokens"] + a["llm.usage.completion_tokens"]
    assert a["llm.response_bytes"] == len(first.content)
    assert 0 <= a["llm.time_to_first_token"] <= a["llm.duration_ms"]

    routing = only(spans, "plano(routing)", "routing")
    assert routing["parentSpanId"] == root["spanId"]
    assert attrs(routing) == {
        "component": "routing",
        "http.method": "POST",
        "http.target": "/v1/chat/completions",
        "model.requested": "gpt-4o-mini",
        "model.alias_resolved": "gpt-4o-mini",
        "route.selected_model": "none",
        "routing.determination_ms": 0,
        "service.name.override": "plano(routing)",
    }
    outbound = only(spans, "plano(outbound)")
    assert outbound["parentSpanId"] == root["spanId"]
    host = mock.url.removeprefix("http://")
    assert outbound["name"] == f"POST {host}/v1/chat/completions"
    o = attrs(outbound)
    assert (o["http.status_code"], o["upstream_cluster"], o["guid:x-request-id"]) == (
        200,
        "openai/gpt-4o-mini",
        plain,
    )
    assert "llm.model" not in o  # `planoai obs` counts a request once
    # The provider's parent is the attempt's span.
    assert traceparent_of(dict(mock.requests[0].headers)) == (CLIENT_TRACE, outbound["spanId"])

    stream_root = only(trace_holding(collector, streamed), "plano(llm)")
    s = attrs(stream_root)
    assert (
        s["llm.is_streaming"] is True and s["http.status_code"] == 200 and stream_root["parentSpanId"] == ""
    )
    assert s["llm.usage.completion_tokens"] > 0 and 0 <= s["llm.time_to_first_token"] <= s["llm.duration_ms"]

    # The access line names the same trace, and carries the fields.
    fields = next(r.fields for r in caplog.records if getattr(r, "fields", {}).get("request_id") == plain)  # type: ignore[attr-defined]
    assert fields["trace_id"] == CLIENT_TRACE
    for key in (
        "method",
        "path",
        "status",
        "model",
        "upstream",
        "provider",
        "upstream_ms",
        "ttft_ms",
        "prompt_tokens",
        "completion_tokens",
        "response_bytes",
        "request_id",
    ):
        assert key in fields, key


async def test_each_attempt_is_a_span_under_failover(collector: OurListener) -> None:
    marker = new_id("failover")
    with mocks(2) as (primary, backup):
        text = failover_config(
            provider(PRIMARY, primary.url, query="status=503", policy=status_policy("[503]"), default=True),
            provider("anthropic/claude-3-5-sonnet", backup.url),
        ) + tracing(collector)
        async with running_gateway(text) as gw:
            answer = await in_thread(
                lambda: post(
                    gw.v1 + "/chat/completions", chat("hi") | {"model": PRIMARY}, **{"x-request-id": marker}
                )
            )
        assert answer.status_code == 200
        spans = trace_holding(collector, marker)
        root = only(spans, "plano(llm)")
        attempts = sorted(children(spans, root, "plano(outbound)"), key=lambda s: int(s["startTimeUnixNano"]))
        assert [attrs(s)["http.status_code"] for s in attempts] == [503, 200]
        assert [attrs(s)["upstream_cluster"] for s in attempts] == [PRIMARY, "anthropic/claude-3-5-sonnet"]
        assert "error.message" not in attrs(attempts[1])
        assert attrs(root)["llm.provider"] == "anthropic" and attrs(root)["http.status_code"] == 200
        assert root["name"] == f"POST /v1/chat/completions {PRIMARY} -> anthropic/claude-3-5-sonnet"
        # Each provider's parent is its own attempt.
        assert traceparent_of(dict(primary.requests[0].headers))[1] == attempts[0]["spanId"]
        assert traceparent_of(dict(backup.requests[0].headers))[1] == attempts[1]["spanId"]


async def test_routing_span_names_the_route_and_is_the_routers_parent(collector: OurListener) -> None:
    marker = new_id("routed")
    async with router_mock() as router:
        router.answer = '{"route": ["code generation"]}'
        with three_models() as models:
            urls = {model: mock.url for model, mock in models.items()}
            async with running_gateway(routing_config(router.url, urls, extra=tracing(collector))) as gw:
                answer = await in_thread(
                    lambda: post(
                        gw.v1 + "/chat/completions",
                        {"model": GPT, "messages": [{"role": "user", "content": "write a python function"}]},
                        **{"x-request-id": marker},
                    )
                )
    assert answer.status_code == 200
    spans = trace_holding(collector, marker)
    root = only(spans, "plano(llm)")
    routing = only(spans, "plano(routing)", "routing")
    r = attrs(routing)
    assert (r["route.selected_model"], r["model.requested"]) == (CODE, GPT)
    assert r["routing.determination_ms"] >= 0
    assert attrs(root)["plano.route.name"] == "code generation" and root["name"].endswith(f"{GPT} -> {CODE}")
    router_headers, _ = router.requests[0]
    assert router_headers["traceparent"].decode().split("-")[2] == routing["spanId"]


# -- filters, agents, the decision API, state ---------------------------------------------------------


class EchoFilter:
    """An HTTP filter that returns the body it gets (and keeps the headers of each call)."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    async def script(self, stream: trio.SocketStream, request: bytes) -> None:
        head_bytes, _, body = request.partition(b"\r\n\r\n")
        self.headers.append(
            {
                name.strip().lower().decode(): value.strip().decode()
                for name, _, value in (line.partition(b":") for line in head_bytes.split(b"\r\n")[1:])
            }
        )
        await stream.send_all(
            head(200, ("content-type", "application/json"), ("content-length", str(len(body)))) + body
        )


async def test_filter_calls_are_spans_and_the_filters_parents(
    collector: OurListener, mock: MockProvider
) -> None:
    marker = new_id("filtered")
    guard = EchoFilter()
    async with scripted_provider(guard.script) as served:
        filters = f"filters:\n  - id: guard\n    url: {served.url}\n    type: http\n"
        listener = "    input_filters: [guard]\n    output_filters: [guard]\n"
        text = provider_config(mock.url, listener_extra=listener, tail=filters + tracing(collector))
        async with running_gateway(text) as gw:
            answer = await in_thread(
                lambda: post(gw.v1 + "/chat/completions", chat("hi"), **{"x-request-id": marker})
            )
    assert answer.status_code == 200
    spans = trace_holding(collector, marker)
    root = only(spans, "plano(llm)")
    calls = sorted(children(spans, root, "plano(filter)"), key=lambda s: int(s["startTimeUnixNano"]))
    assert [s["name"] for s in calls] == ["execute_raw_filter (guard)"] * 2  # the request, then the answer
    first = attrs(calls[0])
    assert (first["agent_id"], first["filter_name"], first["agent_url"]) == ("guard", "guard", served.url)
    assert first["bytes_len"] > 0 and first["service.name.override"] == "plano(filter)"
    assert [traceparent_of(h)[1] for h in guard.headers] == [s["spanId"] for s in calls]


async def test_agent_listener_spans(collector: OurListener) -> None:
    marker = new_id("agents")
    guard = EchoFilter()
    async with (
        fake_agent("flights", "Flight UA 100 leaves at 9") as agent,
        scripted_provider(guard.script) as served,
    ):
        text = f"""
version: v0.4.0
agents:
  - id: flights
    url: {agent.url}
filters:
  - id: guard
    url: {served.url}
    type: http
listeners:
  - name: travel_booking
    type: agent
    address: 127.0.0.1
    port: 0
    agents:
      - id: flights
        description: flight status
        input_filters: [guard]
model_providers:
  - model: openai/gpt-4o
    access_key: k
    base_url: http://127.0.0.1:{unused_port()}
{tracing(collector, extra=TEAM)}"""
        async with running_gateway(text) as gw:
            answer = await in_thread(
                lambda: post(gw.v1 + "/chat/completions", chat("flight UA 100?"), **{"x-request-id": marker})
            )
    assert answer.status_code == 200 and "UA 100" in answer.text
    spans = trace_holding(collector, marker)
    root = only(spans, "plano(orchestrator)")
    assert root["name"] == "travel_booking"
    a = attrs(root)
    assert {
        k: a[k]
        for k in (
            "component",
            "request_id",
            "team",
            "selection.listener",
            "selection.agent_count",
            "selection.agents",
            "service.name.override",
        )
    } == {
        "component": "orchestrator",
        "request_id": marker,
        "team": "travel",
        "selection.listener": "travel_booking",
        "selection.agent_count": 1,
        "selection.agents": "flights",
        "service.name.override": "plano(orchestrator)",
    }
    assert float(a["selection.determination_ms"]) >= 0  # text, as brightstaff writes it
    call = only(spans, "plano(agent)")
    assert call["name"] == "flights /v1/chat/completions" and call["parentSpanId"] == root["spanId"]
    assert attrs(call) == {
        "agent_id": "flights",
        "message_count": 1,
        "team": "travel",
        "service.name.override": "plano(agent)",
    }
    guard_span = only(spans, "plano(filter)")
    assert guard_span["name"] == "execute_raw_filter (guard)" and guard_span["parentSpanId"] == root["spanId"]
    assert traceparent_of(agent.requests[0].headers)[1] == call["spanId"]
    assert traceparent_of(guard.headers[0])[1] == guard_span["spanId"]


async def test_decision_api_span_and_its_trace_id(collector: OurListener) -> None:
    marker = new_id("decision")
    async with router_mock() as router:
        router.answer = '{"route": ["complex reasoning"]}'
        with three_models() as models:
            urls = {model: mock.url for model, mock in models.items()}
            async with running_gateway(routing_config(router.url, urls, extra=tracing(collector))) as gw:
                answer = await in_thread(
                    lambda: post(
                        gw.base + "/routing/v1/chat/completions",
                        {"model": GPT, "messages": [{"role": "user", "content": "think it through"}]},
                        **{"x-request-id": marker},
                    )
                )
    assert answer.status_code == 200
    spans = trace_holding(collector, marker)
    root = only(spans, "plano(routing)", "routing_decision")
    a = attrs(root)
    assert (a["component"], a["http.path"], a["route.selected_model"]) == (
        "routing",
        "/routing/v1/chat/completions",
        GPT,
    )
    assert answer.json()["trace_id"] == root["traceId"]  # the decision names the trace it was recorded in


async def test_state_load_and_store_are_spans(collector: OurListener, mock: MockProvider) -> None:
    first, second = new_id("turn1"), new_id("turn2")
    async with running_gateway(state_config(mock.url, MEMORY + tracing(collector))) as gw:
        one = await in_thread(
            lambda: post(gw.v1 + "/responses", {"model": CLAUDE, "input": "hello"}, **{"x-request-id": first})
        )
        response_id = one.json()["id"]
        two = await in_thread(
            lambda: post(
                gw.v1 + "/responses",
                {"model": CLAUDE, "input": "and again", "previous_response_id": response_id},
                **{"x-request-id": second},
            )
        )
    assert one.status_code == two.status_code == 200
    spans = trace_holding(collector, second)
    root = only(spans, "plano(llm)")
    load = only(spans, "plano", "load_conversation_state")
    store = only(spans, "plano", "store_conversation_state")
    assert load["parentSpanId"] == store["parentSpanId"] == root["spanId"]
    assert attrs(load)["plano_trio.state.previous_response_id"] == response_id
    assert attrs(load)["plano_trio.state.input_items"] == 3  # the stored turn (input, output) and this input
    assert attrs(store)["plano_trio.state.response_id"] == two.json()["id"]
    assert attrs(root)["llm.user_message_preview"] == "and again"


# -- sampling ----------------------------------------------------------------------------------------


async def test_sampling_at_zero_and_the_clients_own_flag(collector: OurListener, mock: MockProvider) -> None:
    off, unsampled, sampled = new_id("off"), new_id("unsampled"), new_id("sampled")
    async with running_gateway(provider_config(mock.url, tail=tracing(collector, sampling=0))) as gw:
        await in_thread(
            lambda: post(
                gw.v1 + "/chat/completions",
                chat("hi"),
                **{"x-request-id": off, "traceparent": CLIENT_TRACEPARENT},
            )
        )
    # Tracing off: the client's context goes to the provider unchanged.
    assert dict(mock.requests[-1].headers)["traceparent"] == CLIENT_TRACEPARENT
    not_sampled = CLIENT_TRACEPARENT[:-2] + "00"
    async with running_gateway(provider_config(mock.url, tail=tracing(collector, sampling=100))) as gw:
        await in_thread(
            lambda: post(
                gw.v1 + "/chat/completions",
                chat("hi"),
                **{"x-request-id": unsampled, "traceparent": not_sampled},
            )
        )
        assert dict(mock.requests[-1].headers)["traceparent"] == not_sampled
        await in_thread(lambda: post(gw.v1 + "/chat/completions", chat("hi"), **{"x-request-id": sampled}))
    assert no_trace_holds(collector, off) and no_trace_holds(collector, unsampled)
    assert only(trace_holding(collector, sampled), "plano(llm)")


# -- a collector that is down -------------------------------------------------------------------------


async def test_a_dead_collector_changes_nothing_for_requests(
    mock: MockProvider, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two gateways at once, tracing off and tracing to a port nobody listens on, asked in turn (so the
    machine's drift hits both alike)."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")  # export (and fail) all the time, not every 5 s
    latency: dict[bool, list[float]] = {False: [], True: []}
    async with running_gateway(provider_config(mock.url)) as off:
        async with running_gateway(provider_config(mock.url, tail=tracing(None))) as down:

            def run() -> tuple[dict[str, int], dict[str, int]]:
                with httpx.Client(timeout=20) as client:
                    for turn in range(120):
                        traced = turn % 2 == 1
                        started = time.perf_counter()
                        answer = client.post(
                            (down if traced else off).v1 + "/chat/completions", json=chat("hi")
                        )
                        latency[traced].append(time.perf_counter() - started)
                        assert answer.status_code == 200
                    # A span goes to the exporter once its conversation's signals are analysed (off the
                    # request, in the signals worker): give the last ones a moment.
                    deadline = time.monotonic() + 10
                    while True:
                        stats = [client.get(gw.base + "/debug/tracing").json() for gw in (off, down)]
                        if stats[1]["emitted"] + stats[1]["dropped"] >= 180 or time.monotonic() > deadline:
                            return stats[0], stats[1]
                        time.sleep(0.05)

            off_stats, down_stats = await in_thread(run)
            closing = time.perf_counter()
        shutdown_s = time.perf_counter() - closing
    assert off_stats == {}  # tracing off: nothing counted at all
    assert down_stats["emitted"] + down_stats["dropped"] == 180  # three spans per request, all accounted for
    assert down_stats["exported"] == 0
    assert shutdown_s < 3.0  # the flush gives up on a dead collector
    assert re.search(r"tracing: 0 spans exported, [1-9]\d* failed to export, 0 dropped", caplog.text)
    median_off, median_down = statistics.median(latency[False][5:]), statistics.median(latency[True][5:])
    assert median_down < median_off * 1.25 + 0.001, (median_off, median_down)


# -- secrets ------------------------------------------------------------------------------------------

PROVIDER_KEY = "sk-provider-SECRET-4c1d"
CLIENT_KEY = "sk-client-SECRET-9e2f"
PG_PASSWORD = "pg-SECRET-pass-77a1"


async def test_no_key_authorization_or_password_in_any_span_or_log_line(
    collector: OurListener, mock: MockProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    markers = [new_id("secret") for _ in range(5)]
    async with fresh_schema() as schema:
        text = f"""
version: v0.4.0
listeners:
  - {{name: llm, type: model, address: 127.0.0.1, port: 0, timeout: 10s}}
model_providers:
  - model: openai/gpt-4o-mini
    access_key: {PROVIDER_KEY}
    base_url: {mock.url}
    default: true
  - model: groq/llama-3.3-70b
    passthrough_auth: true
    base_url: {mock.url}/openai/v1
  - model: {CLAUDE}
    access_key: {PROVIDER_KEY}
    base_url: {mock.url}
state_storage:
  type: postgres
  connection_string: "{dsn(schema, password=PG_PASSWORD)}"
{tracing(collector, extra=EVERY_HEADER)}"""
        secrets = {"authorization": f"Bearer {CLIENT_KEY}", "x-api-key": CLIENT_KEY, "api-key": CLIENT_KEY}
        async with running_gateway(text) as gw:

            def run() -> list[int]:
                statuses = []
                with httpx.Client(timeout=20) as client:
                    for marker, (path, body) in zip(
                        markers,
                        [
                            ("/chat/completions", chat("hi")),
                            ("/chat/completions", chat("hi") | {"model": "groq/llama-3.3-70b"}),
                            ("/chat/completions", chat("hi", stream=True)),
                            ("/responses", {"model": CLAUDE, "input": "hello"}),
                            ("/chat/completions", chat("hi") | {"model": "nope/unknown"}),
                        ],
                        strict=True,
                    ):
                        answer = client.post(
                            gw.v1 + path, json=body, headers={**secrets, "x-request-id": marker}
                        )
                        statuses.append(answer.status_code)
                return statuses

            assert await in_thread(run) == [200, 200, 200, 200, 400]
    everything = as_json(view("planoai", collector.port, "--json", "any", "--limit", "1000"))
    ours = [t for t in everything["traces"] if any(attrs(s).get("request_id") in markers for s in t["spans"])]
    assert len(ours) == len(markers)
    shown = json.dumps(ours)
    assert "user.agent" in shown  # the catch-all prefix did copy headers...
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    for secret in (PROVIDER_KEY, CLIENT_KEY, PG_PASSWORD):
        assert secret not in shown, secret  # ...but never a credential
        assert secret not in logged, secret


async def test_otlp_http_when_the_environment_says_so(
    mock: MockProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = OurListener("--http-port", "0")
    try:
        assert receiver.http_url is not None
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_url.removesuffix("/v1/traces"))
        marker = new_id("http")
        # The gRPC endpoint in the config is not used: the environment asked for OTLP/HTTP.
        async with running_gateway(provider_config(mock.url, tail=tracing(None))) as gw:
            answer = await in_thread(
                lambda: post(gw.v1 + "/chat/completions", chat("hi"), **{"x-request-id": marker})
            )
        assert answer.status_code == 200
        assert attrs(only(trace_holding(receiver, marker), "plano(llm)"))["request_id"] == marker
    finally:
        receiver.stop()
