"""Prometheus metrics: brightstaff's families, what requests count, and the `/metrics` listener.

The families are checked against a table copied from Plano's source
(`crates/brightstaff/src/metrics/mod.rs`, `labels.rs`): names, types,
labels, buckets, help.  The pure rules (handler labels, error classes,
bind address, the HTTP responder, the workers' merge) are tables.  End to
end, the real gateway (`serve()`, a mock provider, a scripted router, an
agent listener) answers requests of every handler and an HTTP scrape of
`/metrics`, parsed with prometheus-client's parser, must show what was sent;
every metric of the shipped Grafana dashboard must have samples; keys and
`Authorization` values never appear.  A forked pair of workers must add up
in one scrape.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import msgspec
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

import plano_trio.server.serve as serve_module
from plano_trio.apis.openai_chat import PromptTokensDetails, Usage
from plano_trio.config import ConfigError, load_config_text
from plano_trio.gateway.context import RequestContext
from plano_trio.gateway.observe import (
    Outcome,
    observe,
    routing_service_outcome,
    started,
    upstream_error_class,
)
from plano_trio.gateway.runtime import Runtime
from plano_trio.metrics import bind_address, open_metrics_server
from plano_trio.metrics import families as fam
from plano_trio.metrics.exposition import ProcessMetrics, decode, encode, merge, render
from plano_trio.metrics.http import MAX_HEAD_BYTES, answer_for
from plano_trio.metrics.labels import (
    LabelBudget,
    handler_label,
    method_label,
    split_provider_model,
    status_class,
)
from plano_trio.metrics.record import GatewayMetrics
from plano_trio.metrics.vectors import HistogramVec
from tests.mock_provider import MockProvider
from tests.router_mock import RouterMock, router_mock
from tests.support import in_thread

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "plano-trio-dashboard.json"
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus.yml"

# --- brightstaff's families, from Plano's source -------------------------------------------------------

HTTP = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LLM = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
ROUTER = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

PLANO = {
    "brightstaff_http_requests_total": (
        "counter",
        ("handler", "method", "status_class"),
        (),
        "Total HTTP requests served by brightstaff, by handler and status class.",
    ),
    "brightstaff_http_request_duration_seconds": (
        "histogram",
        ("handler",),
        HTTP,
        "Wall-clock duration of HTTP requests served by brightstaff, by handler.",
    ),
    "brightstaff_http_in_flight_requests": (
        "gauge",
        ("handler",),
        (),
        "Number of HTTP requests currently being served by brightstaff, by handler.",
    ),
    "brightstaff_llm_upstream_requests_total": (
        "counter",
        ("provider", "model", "status_class", "error_class"),
        (),
        "LLM upstream request outcomes, by provider, model, status class and error class.",
    ),
    "brightstaff_llm_upstream_duration_seconds": (
        "histogram",
        ("provider", "model"),
        LLM,
        "Wall-clock duration of LLM upstream calls (stream close for streaming), by provider and model.",
    ),
    "brightstaff_llm_time_to_first_token_seconds": (
        "histogram",
        ("provider", "model"),
        LLM,
        "Time from request start to first streamed byte, by provider and model (streaming only).",
    ),
    "brightstaff_llm_tokens_total": (
        "counter",
        ("provider", "model", "kind"),
        (),
        "Tokens reported in the provider `usage` field, by provider, model and kind (prompt/completion).",
    ),
    "brightstaff_llm_tokens_usage_missing_total": (
        "counter",
        ("provider", "model"),
        (),
        "LLM responses that completed without a usable `usage` block (so token counts are unknown).",
    ),
    "brightstaff_router_decisions_total": (
        "counter",
        ("route", "selected_model", "fallback"),
        (),
        "Routing decisions made by the orchestrator, by route, selected model, and whether a fallback was "
        "used.",
    ),
    "brightstaff_router_decision_duration_seconds": (
        "histogram",
        ("route",),
        ROUTER,
        "Time spent in the orchestrator deciding a route, by route.",
    ),
    "brightstaff_router_skips_total": ("counter", ("reason",), (), None),
    "brightstaff_routing_service_requests_total": (
        "counter",
        ("outcome",),
        (),
        "Outcomes of /routing/* decision requests: decision_served, no_candidates, policy_error.",
    ),
    "brightstaff_session_cache_events_total": (
        "counter",
        ("outcome",),
        (),
        "Session affinity cache lookups and stores, by outcome: hit, miss, store, error (lookup failed), "
        "store_error (binding not persisted). A rising store with no hit means bindings are not surviving "
        "between turns.",
    ),
    "brightstaff_prompt_cache_requests_total": (
        "counter",
        ("provider", "model", "outcome"),
        (),
        "LLM responses with usage data, by provider, model and prompt-cache outcome (hit = cache "
        "read/creation tokens reported, miss = none). The miss rate is the silent cache-miss baseline.",
    ),
    "brightstaff_session_binding_events_total": (
        "counter",
        ("event",),
        (),
        "Session binding lifecycle events, by event (currently: refresh).",
    ),
    "brightstaff_session_switch_decisions_total": ("counter", ("decision", "reason"), (), None),
    "brightstaff_build_info": (
        "gauge",
        ("version", "git_sha"),
        (),
        "Build metadata. Always 1; labels carry version and git SHA.",
    ),
}
"""name -> (type, labels, buckets, help); help None where Plano describes none (ours is free)."""


def test_brightstaff_families_are_plano_s() -> None:
    ours = {family.name: family for family in fam.BRIGHTSTAFF}
    assert set(ours) == set(PLANO)
    for name, (kind, labels, buckets, help_text) in PLANO.items():
        family = ours[name]
        assert (family.kind, family.labels, family.buckets) == (kind, labels, buckets), name
        if help_text is not None:
            assert family.help == help_text, name
        else:
            assert family.help


def test_every_family_name_is_unique_and_ours_are_prefixed() -> None:
    names = [family.name for family in (*fam.BRIGHTSTAFF, *fam.PLANO_TRIO)]
    assert len(names) == len(set(names))
    assert all(family.name.startswith("plano_trio_") for family in fam.PLANO_TRIO)
    for family in (*fam.BRIGHTSTAFF, *fam.PLANO_TRIO):
        assert family.name.endswith("_total") == (family.kind == "counter"), family.name


def test_histogram_buckets_are_inclusive_and_cumulative() -> None:
    vec = HistogramVec(fam.Family("h_seconds", "histogram", "h", ("a",), (0.1, 1.0)))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        vec.observe(("x",), value)
    samples = {(s.name, s.labels.get("le")): s.value for s in vec.family().samples}
    assert samples[("h_seconds_bucket", "0.1")] == 2  # 0.1 itself is in le="0.1"
    assert samples[("h_seconds_bucket", "1.0")] == 4
    assert samples[("h_seconds_bucket", "+Inf")] == 5
    assert samples[("h_seconds_count", None)] == 5
    assert samples[("h_seconds_sum", None)] == pytest.approx(8.65)


# --- labels ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "method", "path", "handler"),
    [
        ("model", "POST", "/v1/chat/completions", "llm_chat"),
        ("model", "POST", "/v1/messages", "llm_chat"),
        ("model", "POST", "/v1/responses", "llm_chat"),
        ("model", "GET", "/v1/chat/completions", "not_found"),
        ("model", "POST", "/routing/v1/chat/completions", "routing_decision"),
        ("model", "POST", "/routing/v1/messages", "routing_decision"),
        ("model", "POST", "/routing/v1/responses", "routing_decision"),
        ("model", "POST", "/routing/v1/models", "not_found"),
        ("model", "GET", "/v1/models", "list_models"),
        ("model", "OPTIONS", "/v1/models", "cors_preflight"),
        ("model", "POST", "/v1/models", "not_found"),
        ("model", "GET", "/healthz", "healthz"),
        ("model", "GET", "/debug/state", "debug"),
        ("model", "GET", "/v1/responses/resp_1", "stored_responses"),
        ("model", "POST", "/agents/v1/chat/completions", "not_found"),
        ("model", "GET", "/../../etc/passwd", "not_found"),
        ("agent", "POST", "/v1/chat/completions", "agent_chat"),
        ("agent", "POST", "/agents/v1/messages", "agent_chat"),
        ("agent", "GET", "/healthz", "healthz"),
        ("agent", "GET", "/v1/models", "not_found"),
    ],
)
def test_handler_label(kind: Any, method: str, path: str, handler: str) -> None:
    assert handler_label(kind, method, path) == handler


@pytest.mark.parametrize(
    ("status", "label"),
    [
        (100, "1xx"),
        (200, "2xx"),
        (204, "2xx"),
        (302, "3xx"),
        (429, "4xx"),
        (504, "5xx"),
        (0, "other"),
        (999, "other"),
    ],
)
def test_status_class(status: int, label: str) -> None:
    assert status_class(status) == label


def test_method_and_provider_labels() -> None:
    assert method_label("POST") == "POST"
    assert method_label("BREW") == "OTHER"
    assert split_provider_model("openai/gpt-4o") == ("openai", "gpt-4o")
    assert split_provider_model("openrouter/katanemo/orch") == ("openrouter", "katanemo/orch")
    assert split_provider_model("gpt-4o") == ("unknown", "gpt-4o")


def test_label_budget_caps_distinct_values_and_length() -> None:
    budget = LabelBudget(limit=2, max_chars=5)
    assert [budget(v) for v in ("a", "b", "c", "a", "bbbbbbbb", "b")] == [
        "a",
        "b",
        "other",
        "a",
        "other",
        "b",
    ]
    assert LabelBudget(limit=9, max_chars=5)("abcdefgh") == "abcde"


# --- what one request counts ------------------------------------------------------------------------------

T0 = 100.0


def outcome(status: int, result: Any = "ok", upstream_status: int = 0, sent: float | None = T0) -> Outcome:
    return Outcome(status, result, "m", "openai/m", upstream_status=upstream_status, upstream_started=sent)


@pytest.mark.parametrize(
    ("case", "error_class"),
    [
        (outcome(200, "ok", 200), "none"),
        (outcome(429, "upstream_error", 429), "none"),  # the provider's own error: the status class tells
        (outcome(500, "upstream_error", 500), "none"),
        (outcome(502, "upstream_error", 0), "connect"),  # unreachable: the gateway's 502
        (outcome(504, "upstream_error", 0), "timeout"),  # no head in time
        (outcome(504, "timeout", 0), "timeout"),
        (outcome(503, "upstream_error", 0), "other"),
        (outcome(502, "upstream_error", 200), "parse"),  # answered, but not relayable
        (outcome(200, "upstream_error", 200), "stream"),  # started, then broke off
        (outcome(200, "timeout", 200), "stream"),
        (outcome(200, "client_disconnected", 200), "stream"),
        (outcome(0, "client_disconnected", 0), None),  # the client left first: not the provider's doing
        (outcome(503, "cut", 0), None),
    ],
)
def test_upstream_error_class(case: Outcome, error_class: str | None) -> None:
    assert upstream_error_class(case) == error_class


@pytest.mark.parametrize(
    ("case", "served"),
    [
        (Outcome(200, "ok", upstream="openai/gpt-4o"), "decision_served"),
        (Outcome(200, "ok", upstream="none"), "no_candidates"),
        (Outcome(200, "ok", upstream="none", error="router timed out"), "policy_error"),
        (Outcome(500, "error"), "policy_error"),
        (Outcome(400, "error"), None),
    ],
)
def test_routing_service_outcome(case: Outcome, served: str | None) -> None:
    assert routing_service_outcome(case) == served


def _ctx(method: str = "POST", path: str = "/v1/chat/completions", started_at: float = T0) -> RequestContext:
    return RequestContext(method, path, [], b"req", None, None, started_at)  # type: ignore[arg-type]


def test_observe_cost(caplog: pytest.LogCaptureFixture) -> None:
    """The metrics half of the observe stage, per request (access log off, as under load it may be).

    Measured on this project's machine: about 4.5 µs for a streamed Chat
    request with usage (request counter, three histograms, five counters);
    the proxied request itself costs ~680 µs of CPU, so under 1 %.
    """
    caplog.set_level(logging.WARNING, logger="plano_trio.access")
    now = time.perf_counter()
    usage = Usage(10, 5, 15, PromptTokensDetails(0))
    done = Outcome(200, "ok", "gpt-4o-mini", "openai/gpt-4o-mini", True, now, usage, None, 0, 200, now - 0.01)
    ctx = _ctx(started_at=now - 0.02)
    rounds = 20_000
    best = float("inf")
    for _ in range(5):
        begin = time.perf_counter()
        for _ in range(rounds):
            observe(ctx, done, started("model", ctx))
        best = min(best, (time.perf_counter() - begin) / rounds * 1e6)
    print(f"observe + started: {best:.2f} µs per request")
    assert best < 25  # generous for a loaded CI machine; ~4.5 µs measured


def test_one_request_counts_once_in_each_family() -> None:
    metrics = GatewayMetrics()
    metrics.request_started("llm_chat")
    metrics.request_finished("llm_chat", "POST", 200, 0.2)
    cached = Usage(100, 7, 107, PromptTokensDetails(60))
    metrics.upstream_finished("anthropic/claude", 200, "none", 0.3, 0.05, cached)
    metrics.upstream_finished("anthropic/claude", 0, "connect", 0.01, None, None)
    metrics.request_started("llm_chat")
    metrics.request_finished("llm_chat", "POST", 0, 0.1)  # the client left before any answer: not counted
    values = _values(render(ProcessMetrics(None, metrics).snapshot()).decode())
    assert (
        values[
            (
                "brightstaff_http_requests_total",
                (("handler", "llm_chat"), ("method", "POST"), ("status_class", "2xx")),
            )
        ]
        == 1
    )
    assert _sum(values, "brightstaff_http_requests_total") == 1
    assert _sum(values, "brightstaff_http_in_flight_requests") == 0
    claude = {"provider": "anthropic", "model": "claude"}
    assert (
        _sum(
            values,
            "brightstaff_llm_upstream_requests_total",
            status_class="2xx",
            error_class="none",
            **claude,
        )
        == 1
    )
    assert (
        _sum(values, "brightstaff_llm_upstream_requests_total", status_class="error", error_class="connect")
        == 1
    )
    assert _sum(values, "brightstaff_llm_tokens_total", kind="prompt", **claude) == 100
    assert _sum(values, "brightstaff_llm_tokens_total", kind="completion", **claude) == 7
    assert _sum(values, "brightstaff_llm_tokens_total", kind="cache_read", **claude) == 60
    assert _sum(values, "brightstaff_prompt_cache_requests_total", outcome="hit", **claude) == 1
    assert _sum(values, "brightstaff_llm_time_to_first_token_seconds_count", **claude) == 1
    assert _sum(values, "brightstaff_llm_upstream_duration_seconds_count", **claude) == 2
    assert _sum(values, "brightstaff_llm_tokens_usage_missing_total") == 0  # a failed call is only an outcome
    assert _sum(values, "brightstaff_build_info") == 1
    assert _sum(values, "process_cpu_seconds_total") > 0


# --- where it listens ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "env", "expected"),
    [
        (None, {}, ("0.0.0.0", 9092)),
        (None, {"METRICS_BIND_ADDRESS": "127.0.0.1:9100"}, ("127.0.0.1", 9100)),
        (None, {"METRICS_BIND_ADDRESS": "[::1]:9100"}, ("::1", 9100)),
        (None, {"METRICS_BIND_ADDRESS": "localhost:9100"}, ("0.0.0.0", 9092)),  # Plano: invalid → default
        ("127.0.0.2:9200", {"METRICS_BIND_ADDRESS": "127.0.0.1:9100"}, ("127.0.0.2", 9200)),  # config wins
        ("off", {"METRICS_BIND_ADDRESS": "127.0.0.1:9100"}, None),
        ("OFF", {}, None),
        ("", {}, None),
    ],
)
def test_bind_address(setting: str | None, env: dict[str, str], expected: tuple[str, int] | None) -> None:
    assert bind_address(setting, env) == expected


def test_invalid_environment_address_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="plano_trio.metrics"):
        bind_address(None, {"METRICS_BIND_ADDRESS": "nine"})
    assert "invalid METRICS_BIND_ADDRESS 'nine'" in caplog.text


@pytest.mark.parametrize("value", ["127.0.0.1:9092", "[::]:9092", "off", ""])
def test_config_key_accepts(value: str) -> None:
    config = load_config_text(_minimal_config(f'  metrics_bind_address: "{value}"\n'), env={})
    assert config.server.metrics_bind_address == value


@pytest.mark.parametrize("value", ["localhost:9092", "9092", "1.2.3.4:99999", "::1:9092"])
def test_config_key_refuses(value: str) -> None:
    with pytest.raises(ConfigError, match="metrics_bind_address"):
        load_config_text(_minimal_config(f'  metrics_bind_address: "{value}"\n'), env={})


def _minimal_config(ours: str) -> str:
    return (
        "version: v0.4.0\n"
        "listeners:\n  - {name: llm, type: model, address: 127.0.0.1, port: 0}\n"
        "model_providers:\n  - {model: openai/gpt-4o, access_key: k, default: true}\n"
        f"plano_trio:\n{ours}"
    )


# --- the responder --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "status", "metrics", "head_only"),
    [
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200, True, False),
        (b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", 200, True, False),
        (b"HEAD /metrics HTTP/1.1\r\n\r\n", 200, True, True),
        (b"POST /metrics HTTP/1.1\r\n\r\n", 405, False, False),
        (b"GET / HTTP/1.1\r\n\r\n", 404, False, False),
        (b"GET /metrics\r\n\r\n", 400, False, False),
        (b"\x00\x01garbage\r\n\r\n", 400, False, False),
    ],
)
def test_answer_for(head: bytes, status: int, metrics: bool, head_only: bool) -> None:
    answer = answer_for(head)
    assert (answer.status, answer.metrics, answer.head_only) == (status, metrics, head_only)


async def test_responder_bounds_what_a_client_can_send(caplog: pytest.LogCaptureFixture) -> None:
    port = _free_port()
    config = load_config_text(_minimal_config(f"  metrics_bind_address: 127.0.0.1:{port}\n"), env={})
    async with open_metrics_server(config, None) as server:
        assert server is not None and server.address == f"http://127.0.0.1:{port}/metrics"
        # A head over the bound: closed without an answer.
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * (2 * MAX_HEAD_BYTES))
        assert await _read_to_eof(stream) == b""
        # HEAD: headers only; POST: 405; elsewhere: 404.
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"HEAD /metrics HTTP/1.1\r\n\r\n")
        reply = await _read_to_eof(stream)
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(b"\r\n\r\n")
        assert b"Content-Type: text/plain; version=0.0.4; charset=utf-8" in reply
        for request, status in (
            (b"POST /metrics HTTP/1.1\r\n\r\n", b"405"),
            (b"GET /x HTTP/1.1\r\n\r\n", b"404"),
        ):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(request)
            assert (await _read_to_eof(stream)).split(b" ")[1] == status


async def test_port_taken_is_a_warning_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    holder = socket.create_server(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    config = load_config_text(_minimal_config(f"  metrics_bind_address: 127.0.0.1:{port}\n"), env={})
    try:
        with caplog.at_level(logging.WARNING, logger="plano_trio.metrics"):
            async with open_metrics_server(config, None) as server:
                assert server is None
        assert f"metrics listener not started: cannot listen on 127.0.0.1:{port}" in caplog.text
    finally:
        holder.close()


# --- the workers' merge ----------------------------------------------------------------------------------


def test_merge_adds_workers_up() -> None:
    one, two = GatewayMetrics(), GatewayMetrics()
    for metrics, count in ((one, 1), (two, 2)):
        for _ in range(count):
            metrics.request_started("llm_chat")
            metrics.request_finished("llm_chat", "POST", 200, 0.3)
    two.request_started("llm_chat")  # one still in flight on worker two
    snapshots = [ProcessMetrics(None, metrics).snapshot() for metrics in (one, two)]
    passed = [decode(encode(snapshot)) for snapshot in snapshots]  # as a peer hands it over
    values = _values(render(merge(passed)).decode())
    assert _sum(values, "brightstaff_http_requests_total") == 3
    assert _sum(values, "brightstaff_http_request_duration_seconds_bucket", le="0.5") == 3
    assert _sum(values, "brightstaff_http_request_duration_seconds_bucket", le="0.25") == 0
    assert _sum(values, "brightstaff_http_in_flight_requests") == 1
    assert _sum(values, "brightstaff_build_info") == 1  # max, not a sum
    starts = [
        _values(render(snapshot).decode())[("process_start_time_seconds", ())] for snapshot in snapshots
    ]
    assert values[("process_start_time_seconds", ())] == min(starts)


def test_a_peer_s_snapshot_survives_the_trip_and_garbage_does_not_pass() -> None:
    metrics = GatewayMetrics()
    metrics.request_started("llm_chat")
    metrics.request_finished("llm_chat", "POST", 200, 0.3)
    snapshot = ProcessMetrics(None, metrics).snapshot()
    assert render(decode(encode(snapshot))) == render(snapshot)
    for garbage in (
        b"",
        b"\x93\x01\x02\x03",
        msgspec.msgpack.encode([["x", "counter", "h", [["x", {"a": 1}, "v"]]]]),
    ):
        with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
            decode(garbage)


# --- end to end -------------------------------------------------------------------------------------------

SERVER_KEY = "sk-metrics-server-key-0123456789"
CLIENT_KEY = "client-authorization-secret-987"


class Served(NamedTuple):
    model: str
    agent: str
    metrics: str


def e2e_config(mock_url: str, router_url: str, metrics_port: int) -> str:
    return textwrap.dedent(
        f"""\
        version: v0.4.0
        listeners:
          - {{name: llm, type: model, address: 127.0.0.1, port: 0, timeout: 10s}}
          - name: agents
            type: agent
            address: 127.0.0.1
            port: 0
            agents: [{{id: mock_agent, description: any question}}]
        agents:
          - {{id: mock_agent, url: "{mock_url}"}}
        model_providers:
          - {{model: openai/gpt-4o-mini, access_key: {SERVER_KEY}, base_url: "{mock_url}", default: true}}
          - {{model: openai/gpt-4o, access_key: {SERVER_KEY}, base_url: "{mock_url}"}}
          - {{model: anthropic/claude-sonnet-4-6, access_key: {SERVER_KEY}, base_url: "{mock_url}"}}
          - {{model: openai/gpt-dead, access_key: {SERVER_KEY}, base_url: "http://127.0.0.1:9"}}
          - {{model: plano/Plano-Orchestrator, base_url: "{router_url}"}}
        routing_preferences:
          - name: code generation
            description: generating new code snippets
            models: [openai/gpt-4o]
        state_storage: {{type: memory}}
        plano_trio:
          router_timeout_s: 2
          metrics_bind_address: 127.0.0.1:{metrics_port}
        """
    )


@asynccontextmanager
async def served_with_metrics(config_text: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    """The whole gateway (`serve()`) and its `/metrics` listener for the runtime it built.

    `open_metrics_server` is opened here for the runtime `serve()` created;
    once `serve()` opens it itself, this one finds the port taken (a logged
    warning) and the scrape reaches `serve()`'s own: the test holds either way.
    """
    config = load_config_text(config_text, env={})
    runtimes: list[Any] = []

    class Recorded(Runtime):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            runtimes.append(self)

    monkeypatch.setattr(serve_module, "Runtime", Recorded)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(partial(serve_module.serve, config, shutdown=shutdown))
        try:
            async with open_metrics_server(config, runtimes[0]):
                address = config.server.metrics_bind_address
                yield Served(binds[0], binds[1], f"http://{address}/metrics")
        finally:
            shutdown.set()


@pytest.fixture
async def router() -> AsyncIterator[RouterMock]:
    async with router_mock() as mock:
        yield mock


async def test_scrape_shows_requests_of_every_handler(
    mock: MockProvider, router: RouterMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = e2e_config(mock.url, router.url, _free_port())
    async with served_with_metrics(config, monkeypatch) as served:
        before = await _scrape(served.metrics)
        routed = '{"route": ["code generation"]}'
        unrouted = '{"route": []}'
        auth = {"authorization": f"Bearer {CLIENT_KEY}"}

        def chat(client: httpx.Client, model: str, **extra: Any) -> httpx.Response:
            headers = {**auth, **extra.pop("headers", {})}
            body = {"model": model, "messages": [{"role": "user", "content": "write code"}], **extra}
            return client.post("/v1/chat/completions", json=body, headers=headers)

        def drive() -> None:
            with httpx.Client(base_url=served.model, timeout=10) as client:
                router.answer = routed  # -> openai/gpt-4o, whole and streamed
                assert chat(client, "gpt-4o-mini").status_code == 200
                streamed = chat(client, "gpt-4o-mini", stream=True, stream_options={"include_usage": True})
                assert streamed.status_code == 200 and "[DONE]" in streamed.text
                router.answer = unrouted  # the request's own model
                assert chat(client, "openai/gpt-dead").status_code == 502  # connection refused
                assert chat(client, "gpt-4o-mini", headers={"x-mock-status": "429"}).status_code == 429
                session = {"x-model-affinity": "metrics-session"}
                assert chat(client, "gpt-4o-mini", headers=session).status_code == 200  # miss, store
                assert chat(client, "gpt-4o-mini", headers=session).status_code == 200  # hit
                responses = client.post(
                    "/v1/responses",
                    json={"model": "anthropic/claude-sonnet-4-6", "input": "hello"},
                    headers=auth,
                )
                assert responses.status_code == 200  # stored by the memory state store
                assert client.get("/v1/models").status_code == 200
                assert client.options("/v1/models").status_code == 204
                assert client.get("/nowhere").status_code == 404
                assert client.get("/healthz").status_code == 200
                router.answer = routed
                decision = client.post(
                    "/routing/v1/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "code"}]},
                )
                assert decision.status_code == 200 and decision.json()["models"][0] == "openai/gpt-4o"
            with httpx.Client(base_url=served.agent, timeout=10) as client:
                answer = client.post(
                    "/v1/chat/completions",
                    json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                    headers=auth,
                )
                assert answer.status_code == 200

        await in_thread(drive)
        text = await _scrape_text(served.metrics)
    after = _values(text)

    def delta(name: str, **labels: str) -> float:
        return _sum(after, name, **labels) - _sum(before, name, **labels)

    requests = "brightstaff_http_requests_total"
    assert delta(requests, handler="llm_chat", method="POST", status_class="2xx") == 5
    assert delta(requests, handler="llm_chat", method="POST", status_class="5xx") == 1
    assert delta(requests, handler="llm_chat", method="POST", status_class="4xx") == 1
    assert delta(requests, handler="list_models", method="GET", status_class="2xx") == 1
    assert delta(requests, handler="cors_preflight", method="OPTIONS", status_class="2xx") == 1
    assert delta(requests, handler="not_found", method="GET", status_class="4xx") == 1
    assert delta(requests, handler="healthz", method="GET", status_class="2xx") == 1
    assert delta(requests, handler="routing_decision", method="POST", status_class="2xx") == 1
    assert delta(requests, handler="agent_chat", method="POST", status_class="2xx") == 1
    assert delta("brightstaff_http_request_duration_seconds_count", handler="llm_chat") == 7
    assert _sum(after, "brightstaff_http_in_flight_requests", handler="llm_chat") == 0

    upstream = "brightstaff_llm_upstream_requests_total"
    gpt4o = {"provider": "openai", "model": "gpt-4o"}
    mini = {"provider": "openai", "model": "gpt-4o-mini"}
    assert delta(upstream, status_class="2xx", error_class="none", **gpt4o) == 2
    assert delta(upstream, status_class="2xx", error_class="none", **mini) == 2
    assert delta(upstream, status_class="4xx", error_class="none", **mini) == 1
    assert (
        delta(upstream, provider="openai", model="gpt-dead", status_class="error", error_class="connect") == 1
    )
    assert delta(upstream, provider="anthropic", model="claude-sonnet-4-6", status_class="2xx") == 1
    assert delta("brightstaff_llm_upstream_duration_seconds_count", **gpt4o) == 2
    assert delta("brightstaff_llm_time_to_first_token_seconds_count", **gpt4o) == 1  # the streamed one only
    assert delta("brightstaff_llm_tokens_total", kind="prompt", **gpt4o) > 0
    assert delta("brightstaff_llm_tokens_total", kind="completion", **gpt4o) > 0
    assert delta("brightstaff_prompt_cache_requests_total", outcome="miss", **gpt4o) == 2

    decisions = "brightstaff_router_decisions_total"
    assert delta(decisions, route="llm", selected_model="openai/gpt-4o", fallback="false") == 2
    assert delta(decisions, route="llm", selected_model="none", fallback="true") == 5
    assert delta(decisions, route="routing", selected_model="openai/gpt-4o", fallback="false") == 1
    assert delta("brightstaff_router_decision_duration_seconds_count", route="llm") == 7
    assert delta("brightstaff_routing_service_requests_total", outcome="decision_served") == 1
    assert delta("brightstaff_session_cache_events_total", outcome="miss") == 1
    assert delta("brightstaff_session_cache_events_total", outcome="hit") == 1
    assert delta("brightstaff_session_cache_events_total", outcome="store") >= 2

    assert _sum(after, "plano_trio_state_entries", backend="memory") >= 1
    mock_origin = mock.url.removeprefix("http://")
    assert _sum(after, "plano_trio_upstream_connections_opened_total", origin=mock_origin) >= 1
    assert _sum(after, "plano_trio_upstream_open_connections", origin=mock_origin) >= 1
    assert _sum(after, "plano_trio_llm_requests_in_flight") == 0
    assert delta("plano_trio_router_calls_total") == 8
    assert _sum(after, "brightstaff_build_info") == 1
    assert _sum(after, "process_resident_memory_bytes") > 0

    # Keys and Authorization values never become label values (nor anything else in the scrape).
    assert SERVER_KEY not in text and CLIENT_KEY not in text

    # Every brightstaff or process metric the shipped dashboard queries has samples (those Plano's
    # dashboard reads); our own are at least exposed (failover, for one, counts nothing here).
    names = {name for name, _ in after}
    for expr in dashboard_queries():
        for metric in re.findall(r"\b((?:brightstaff|process|plano_trio)_[a-z_]+)", expr):
            if metric.startswith("plano_trio_"):
                assert f"# TYPE {metric} " in text, f"{metric} (in {expr!r}) is not exposed"
            else:
                assert metric in names, f"{metric} (in {expr!r}) has no samples"


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    assert len(exprs) >= 18
    return exprs


def test_dashboard_covers_plano_s_brightstaff_queries() -> None:
    """Every query of Plano's brightstaff dashboard that reads brightstaff's metrics is in ours, as is."""
    ours = set(dashboard_queries())
    for query in PLANO_DASHBOARD_QUERIES:
        assert query in ours, query


PLANO_DASHBOARD_QUERIES = [
    "sum by (handler) (rate(brightstaff_http_requests_total[1m]))",
    'sum(rate(brightstaff_http_requests_total{status_class="5xx"}[5m])) / '
    "clamp_min(sum(rate(brightstaff_http_requests_total[5m])), 1)",
    "histogram_quantile(0.50, sum by (le, handler) "
    "(rate(brightstaff_http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.95, sum by (le, handler) "
    "(rate(brightstaff_http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.99, sum by (le, handler) "
    "(rate(brightstaff_http_request_duration_seconds_bucket[5m])))",
    "sum by (handler) (brightstaff_http_in_flight_requests)",
    "histogram_quantile(0.95, sum by (le, provider, model) "
    "(rate(brightstaff_llm_upstream_duration_seconds_bucket[5m])))",
    'sum by (provider, error_class) (rate(brightstaff_llm_upstream_requests_total{error_class!="none"}[5m]))',
    "histogram_quantile(0.95, sum by (le, provider, model) "
    "(rate(brightstaff_llm_time_to_first_token_seconds_bucket[5m])))",
    "sum by (provider, model, kind) (rate(brightstaff_llm_tokens_total[5m]))",
    "sum by (selected_model) (increase(brightstaff_router_decisions_total[15m]))",
    'sum by (route) (rate(brightstaff_router_decisions_total{fallback="true"}[5m])) / '
    "clamp_min(sum by (route) (rate(brightstaff_router_decisions_total[5m])), 1)",
    "histogram_quantile(0.95, sum by (le, route) "
    "(rate(brightstaff_router_decision_duration_seconds_bucket[5m])))",
    'sum(rate(brightstaff_session_cache_events_total{outcome="hit"}[5m])) / '
    'clamp_min(sum(rate(brightstaff_session_cache_events_total{outcome=~"hit|miss"}[5m])), 1)',
    "sum by (outcome) (rate(brightstaff_routing_service_requests_total[5m]))",
    "sum(rate(brightstaff_http_requests_total[1m]))",
    'process_resident_memory_bytes{job="brightstaff"}',
    'rate(process_cpu_seconds_total{job="brightstaff"}[1m])',
]
"""`config/grafana/brightstaff_dashboard.json` in Plano's repository, every query but the Envoy one."""


def test_prometheus_scrape_config_uses_the_dashboard_s_job_name() -> None:
    text = SCRAPE_CONFIG.read_text()
    assert "job_name: brightstaff" in text  # the dashboard's process panels select job="brightstaff"
    assert "metrics_path: /metrics" in text and ":9092" in text


# --- several workers ----------------------------------------------------------------------------------------

WORKERS_SCRIPT = """
import os, signal, sys, trio
from plano_trio.config import load_config_text
from plano_trio.metrics import open_metrics_server, share_with_workers
from plano_trio.metrics.record import GATEWAY

config = load_config_text(sys.argv[1], env={})
group = share_with_workers(config)
children = []
for index in range(2):
    pid = os.fork()
    if pid == 0:
        for _ in range(index + 1):  # worker 0 served one request, worker 1 two
            GATEWAY.request_started("llm_chat")
            GATEWAY.request_finished("llm_chat", "POST", 200, 0.1)

        async def main():
            async with open_metrics_server(config, None) as server:
                os.write(1, f"ready {os.getpid()} {server.address}\\n".encode())  # one write: whole lines
                await trio.sleep_forever()

        trio.run(main)
        os._exit(0)
    children.append(pid)
signal.signal(signal.SIGTERM, lambda *_: [os.kill(pid, signal.SIGKILL) for pid in children])
for pid in children:
    os.waitpid(pid, 0)
group.close()
"""


def test_one_scrape_adds_up_every_worker() -> None:
    port = _free_port()
    config = _minimal_config(f"  metrics_bind_address: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKERS_SCRIPT, config],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        ready = [proc.stdout.readline() for _ in range(2)]
        assert all(line.startswith("ready") for line in ready), ready
        pids = {line.split()[1] for line in ready}
        assert len(pids) == 2
        for _ in range(8):  # whichever worker takes the scrape, it shows both
            values = _values(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
            assert _sum(values, "brightstaff_http_requests_total", handler="llm_chat") == 3
            assert _sum(values, "brightstaff_http_request_duration_seconds_count") == 3
            assert values[("plano_trio_metrics_workers_missing", ())] == 0
            assert _sum(values, "brightstaff_build_info") == 1
            assert _sum(values, "process_resident_memory_bytes") > 0
    finally:
        proc.terminate()  # the parent stops its workers and removes the peers' directory
        try:
            proc.wait(timeout=10)
        finally:
            with contextlib.suppress(ProcessLookupError):  # anything left of the group
                os.killpg(proc.pid, signal.SIGKILL)


# --- helpers ------------------------------------------------------------------------------------------------

Values = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _values(text: str) -> Values:
    """Every sample of an exposition: (sample name, sorted labels) -> value."""
    out: Values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _sum(values: Values, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in values.items() if n == name and wanted <= set(got))


async def _scrape_text(url: str) -> str:
    response = await in_thread(lambda: httpx.get(url, timeout=5))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return response.text


async def _scrape(url: str) -> Values:
    return _values(await _scrape_text(url))


async def _read_to_eof(stream: trio.SocketStream) -> bytes:
    """What the server sent before closing (a close with our bytes unread is a reset: nothing sent)."""
    data = b""
    with trio.fail_after(10):
        try:
            while chunk := await stream.receive_some():
                data += chunk
        except trio.BrokenResourceError:
            pass
    await stream.aclose()
    return data


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
