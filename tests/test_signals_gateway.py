"""Signals end to end: the real gateway analyses each finished LLM conversation in its worker process and
the request's span goes out with the result, as Plano writes it.

The gateway (`serve()`) traces to our `plano-trio trace listen` (a child process), read back with
`planoai trace --json` (Plano's own viewer); span events, which no viewer's JSON carries, are read from
the OTLP/HTTP requests a small receiver in this process takes.  Metrics are read from the process's
`GATEWAY` record, the log lines from `caplog`.  The worker is found among this process's children
(`/proc`) when a test needs to pause or kill it.

The conversation (`CONVERSATION`) holds a correction ("No, I meant Paris, not Rome"), a tool failing
twice on the same bad argument and a "Thanks, that worked!".  Plano's rules give: misalignment 1
(correction), satisfaction 1 (success: one signal per message, and "that worked" is matched first),
failure 2 (invalid_args); score 50 + 20 x 0.6 (one satisfaction) - 15 (misalignment on 1 of 3 user
turns, over 30%) - 2 x 8 (failures) = 31, so `poor`; any failure makes it concerning: 🚩.
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from plano_trio.metrics.record import GATEWAY
from tests.mock_provider import MockProvider
from tests.support import in_thread, provider_config, running_gateway
from tests.test_trace_cli import OurListener, as_json, view

Span = dict[str, Any]
FLAG = "\U0001f6a9"

CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You book travel."},
    {"role": "user", "content": "Find flights to Paris"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "search", "arguments": '{"city": 5}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "Error: invalid argument: city must be a string"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c2", "type": "function", "function": {"name": "search", "arguments": '{"city": 5}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "c2", "content": "Error: invalid argument: city must be a string"},
    {"role": "assistant", "content": "I found flights to Rome."},
    {"role": "user", "content": "No, I meant Paris, not Rome"},
    {"role": "assistant", "content": "Here are flights to Paris."},
    {"role": "user", "content": "Thanks, that worked!"},
]
EXPECTED = {
    "signals.quality": "poor",
    "signals.quality_score": 31.0,
    "signals.turn_count": 3,
    "signals.efficiency_score": 1.0,
    "signals.interaction.misalignment.count": 1,
    "signals.interaction.misalignment.severity": 1,
    "signals.interaction.satisfaction.count": 1,
    "signals.interaction.satisfaction.severity": 1,
    "signals.execution.failure.count": 2,
    "signals.execution.failure.severity": 1,
}
EXPECTED_TYPES = {
    "interaction.misalignment.correction": 1,
    "interaction.satisfaction.success": 1,
    "execution.failure.invalid_args": 2,
}
EXPECTED_EVENTS = [
    ("signal.interaction.misalignment.correction", 6, "no, i meant"),
    ("signal.interaction.satisfaction.success", 8, "that worked"),
    ("signal.execution.failure.invalid_args", 2, "Error: invalid argument: city must be a string"),
    ("signal.execution.failure.invalid_args", 4, "Error: invalid argument: city must be a string"),
]
"""(name, `signal.message_index`, `signal.snippet`): indexes count the ShareGPT rows (system dropped)."""

WORKER_MODULE = b"plano_trio.signals.worker"


@pytest.fixture(scope="module")
def collector() -> Iterator[OurListener]:
    listener = OurListener()
    yield listener
    listener.stop()


def tracing_to(collector: OurListener) -> str:
    return (
        f"tracing:\n  random_sampling: 100\n  opentracing_grpc_endpoint: http://127.0.0.1:{collector.port}\n"
    )


def new_id(label: str) -> str:
    return f"{label}-{os.urandom(5).hex()}"


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": CONVERSATION, **extra}


def post(url: str, body: dict[str, Any], request_id: str, timeout: float = 20) -> httpx.Response:
    with httpx.Client(timeout=timeout) as client:
        return client.post(url, json=body, headers={"x-request-id": request_id})


def llm_span(collector: OurListener, request_id: str) -> Span:
    shown = as_json(view("planoai", collector.port, "--json", "any", "--where", f"request_id={request_id}"))
    (trace,) = shown["traces"]
    (span,) = [s for s in trace["spans"] if s["service"] == "plano(llm)"]
    return dict(span)


def attrs(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in span["attributes"]:
        value = item["value"]
        out[item["key"]] = int(value["intValue"]) if "intValue" in value else next(iter(value.values()))
    return out


def signal_lines(caplog: pytest.LogCaptureFixture, request_id: str) -> list[dict[str, Any]]:
    return [
        dict(r.fields)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "plano_trio.signals" and getattr(r, "fields", {}).get("request_id") == request_id
    ]


def access_line(caplog: pytest.LogCaptureFixture, request_id: str) -> bool:
    return any(
        r.name == "plano_trio.access" and getattr(r, "fields", {}).get("request_id") == request_id
        for r in caplog.records
    )


async def until(check: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await trio.sleep(0.05)


def worker_pids() -> list[int]:
    """This process's children running the signals worker."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == me and WORKER_MODULE in cmdline:
            found.append(int(entry.name))
    return found


def counter(vector: Any, *key: str) -> float:
    return float(vector.values.get(key, 0.0))


class Counts:
    """The signals metrics at one moment, to compare before and after."""

    def __init__(self) -> None:
        self.poor = counter(GATEWAY.signals_quality, "poor")
        self.invalid_args = counter(GATEWAY.signals, "execution.failure.invalid_args")
        self.concerning = counter(GATEWAY.signals_concerning)
        self.queue_full = counter(GATEWAY.signal_skips, "queue_full")
        self.worker_failed = counter(GATEWAY.signal_failures, "worker_failed")
        self.error = counter(GATEWAY.signal_failures, "error")


class OtlpHttpReceiver:
    """Takes OTLP/HTTP export requests and keeps the spans (with their events), for the event checks."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        received = self.spans

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        received.extend(scope.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the span, the metrics, the log line --------------------------------------------------------------


async def test_the_span_shows_the_conversations_signals_as_plano_writes_them(
    collector: OurListener, mock: MockProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "plano_trio")
    plain, streamed = new_id("signals"), new_id("signals-stream")
    before = Counts()
    async with running_gateway(provider_config(mock.url, tail=tracing_to(collector))) as gw:
        first = await in_thread(lambda: post(gw.v1 + "/chat/completions", chat_body(), plain))
        second = await in_thread(lambda: post(gw.v1 + "/chat/completions", chat_body(stream=True), streamed))
        assert first.status_code == second.status_code == 200
        await until(lambda: signal_lines(caplog, plain) and signal_lines(caplog, streamed))
    after = Counts()
    for request_id in (plain, streamed):
        span = llm_span(collector, request_id)
        assert span["name"] == f"POST /v1/chat/completions gpt-4o-mini -> openai/gpt-4o-mini {FLAG}"
        shown = attrs(span)
        assert {key: shown.get(key) for key in EXPECTED} == EXPECTED
        assert not {key for key in shown if key.startswith("signals.")} - set(EXPECTED)
        (line,) = signal_lines(caplog, request_id)
        assert line["quality"] == "poor" and line["score"] == 31.0 and line["concerning"] is True
        assert line["trace_id"] == span["traceId"] and line["turns"] == 3
        assert dict(item.split(":") for item in line["types"].split(",")) == {
            k: str(v) for k, v in EXPECTED_TYPES.items()
        }
        assert line["analysis_ms"] > 0
    assert after.poor - before.poor == 2
    assert after.invalid_args - before.invalid_args == 4
    assert after.concerning - before.concerning == 2
    access = [r for r in caplog.records if r.name == "plano_trio.access"]
    signals = [r for r in caplog.records if r.name == "plano_trio.signals"]
    assert access[0].created <= signals[0].created  # the access line is never held back for the analysis


async def test_span_events_carry_each_signal(mock: MockProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = OtlpHttpReceiver()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
        marker = new_id("events")
        tail = "tracing:\n  random_sampling: 100\n"
        async with running_gateway(provider_config(mock.url, tail=tail)) as gw:
            answer = await in_thread(lambda: post(gw.v1 + "/chat/completions", chat_body(), marker))
            assert answer.status_code == 200

            def exported() -> list[Any]:
                return [
                    s
                    for s in receiver.spans
                    if any(a.key == "request_id" and a.value.string_value == marker for a in s.attributes)
                ]

            await until(exported)
    finally:
        receiver.stop()
    (span,) = exported()
    assert span.name.endswith(f" {FLAG}")
    events = [e for e in span.events if e.name.startswith("signal.")]
    seen = []
    for event in events:
        values = {a.key: a.value for a in event.attributes}
        seen.append(
            (event.name, values["signal.message_index"].int_value, values["signal.snippet"].string_value)
        )
        assert values["signal.type"].string_value == event.name.removeprefix("signal.")
        assert json.loads(values["signal.metadata"].string_value)
        assert span.start_time_unix_nano <= event.time_unix_nano <= span.end_time_unix_nano
    assert seen == EXPECTED_EVENTS
    invalid = {a.key: a.value for a in events[2].attributes}
    assert invalid["signal.confidence"].double_value == pytest.approx(0.9, abs=1e-6)  # Plano's f32 0.9
    assert json.loads(invalid["signal.metadata"].string_value) == {
        "tool_name": "search",
        "call_index": 1,
        "error_type": "invalid_args",
        "matched": "invalid argument",
    }
    names = [e.name for e in span.events]
    assert names[: len(names) - len(events)] == ["llm.time_to_first_token"]  # the stages' events come first


async def test_every_client_api_is_analysed_untraced_too(
    mock: MockProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """Tracing off: the analysis still runs (metrics and the log line).  An Anthropic Messages request
    with the same turns (tool results inside a user message, as Anthropic sends them) reads the same."""
    caplog.set_level(logging.INFO, "plano_trio.signals")
    messages_body = {
        "model": "gpt-4o-mini",
        "max_tokens": 50,
        "messages": [
            {"role": "user", "content": "Find flights to Paris"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "c1", "name": "search", "input": {"city": 5}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "c1", "content": "Error: invalid argument: city"}
                ],
            },
            {"role": "assistant", "content": "I found flights to Rome."},
            {"role": "user", "content": "No, I meant Paris, not Rome"},
        ],
    }
    responses_body = {"model": "gpt-4o-mini", "input": "Thanks, that worked!"}
    ids = [new_id("chat"), new_id("messages"), new_id("responses")]
    async with running_gateway(provider_config(mock.url)) as gw:

        def run() -> list[int]:
            return [
                post(gw.v1 + "/chat/completions", chat_body(), ids[0]).status_code,
                post(gw.v1 + "/messages", messages_body, ids[1]).status_code,
                post(gw.v1 + "/responses", responses_body, ids[2]).status_code,
            ]

        assert await in_thread(run) == [200, 200, 200]
        await until(lambda: all(signal_lines(caplog, i) for i in ids))
    chat_line, messages_line, responses_line = (signal_lines(caplog, i)[0] for i in ids)
    assert "trace_id" not in chat_line and chat_line["quality"] == "poor"
    assert messages_line["types"] == "interaction.misalignment.correction:1,execution.failure.invalid_args:1"
    assert responses_line["types"] == "interaction.satisfaction.success:1"


# -- off, full, crashed ---------------------------------------------------------------------------------


async def test_disable_signals_turns_it_all_off(
    collector: OurListener, mock: MockProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "plano_trio")
    marker = new_id("off")
    before = Counts()
    tail = "overrides:\n  disable_signals: true\n" + tracing_to(collector)
    async with running_gateway(provider_config(mock.url, tail=tail)) as gw:
        answer = await in_thread(lambda: post(gw.v1 + "/chat/completions", chat_body(), marker))
        assert answer.status_code == 200
        assert worker_pids() == []  # no worker process at all
    span = llm_span(collector, marker)
    assert FLAG not in span["name"]
    assert not [key for key in attrs(span) if key.startswith("signals.")]
    assert not signal_lines(caplog, marker)
    assert Counts().__dict__ == before.__dict__


async def test_a_full_queue_skips_and_counts_and_the_request_is_unaffected(
    collector: OurListener, mock: MockProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """One slot; the worker paused (SIGSTOP) with a conversation in it: the next requests are answered
    at once and their analyses skipped; their spans go out at once, without signals."""
    caplog.set_level(logging.INFO, "plano_trio")
    warm, held, skipped = new_id("warm"), new_id("held"), [new_id("skipped") for _ in range(3)]
    tail = "plano_trio:\n  signals_queue_size: 1\n" + tracing_to(collector)
    async with running_gateway(provider_config(mock.url, tail=tail)) as gw:
        assert (
            await in_thread(lambda: post(gw.v1 + "/chat/completions", chat_body(), warm))
        ).status_code == 200
        await until(lambda: signal_lines(caplog, warm))
        (pid,) = worker_pids()
        os.kill(pid, signal.SIGSTOP)
        try:
            before = Counts()
            assert (
                await in_thread(lambda: post(gw.v1 + "/chat/completions", chat_body(), held))
            ).status_code == 200
            for marker in skipped:
                started = time.perf_counter()
                answer = await in_thread(lambda m=marker: post(gw.v1 + "/chat/completions", chat_body(), m))  # type: ignore[misc]
                assert answer.status_code == 200 and time.perf_counter() - started < 2.0
            # The stage runs once the answer is sent: the client may see it end a moment before.
            await until(lambda: Counts().queue_full - before.queue_full >= 3, timeout=10)
            middle = Counts()
        finally:
            os.kill(pid, signal.SIGCONT)
        await until(lambda: signal_lines(caplog, held))
    assert middle.queue_full - before.queue_full == 3
    for marker in skipped:
        span = llm_span(collector, marker)
        assert FLAG not in span["name"] and "signals.quality" not in attrs(span)
        assert not signal_lines(caplog, marker)
    assert attrs(llm_span(collector, held))["signals.quality"] == "poor"


async def test_a_worker_that_dies_is_counted_and_replaced(
    collector: OurListener, mock: MockProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """Killed holding a conversation: that analysis fails (`worker_failed`), its span goes out without
    signals, the gateway answers throughout, and the next conversation is analysed by a new worker."""
    caplog.set_level(logging.INFO, "plano_trio")
    warm, lost, later = new_id("warm"), new_id("lost"), new_id("later")
    async with running_gateway(provider_config(mock.url, tail=tracing_to(collector))) as gw:
        assert (
            await in_thread(lambda: post(gw.v1 + "/chat/completions", chat_body(), warm))
        ).status_code == 200
        await until(lambda: signal_lines(caplog, warm))
        (pid,) = worker_pids()
        os.kill(pid, signal.SIGSTOP)
        before = Counts()
        assert (
            await in_thread(lambda: post(gw.v1 + "/chat/completions", chat_body(), lost))
        ).status_code == 200
        await until(lambda: access_line(caplog, lost))  # the signals stage runs right after the access line
        os.kill(pid, signal.SIGKILL)
        await until(lambda: Counts().worker_failed - before.worker_failed == 1)
        assert (
            await in_thread(lambda: post(gw.v1 + "/chat/completions", chat_body(), later))
        ).status_code == 200
        await until(lambda: signal_lines(caplog, later))
        (replacement,) = worker_pids()
        assert replacement != pid
    assert not signal_lines(caplog, lost)
    lost_span = llm_span(collector, lost)
    assert "signals.quality" not in attrs(lost_span) and attrs(lost_span)["http.status_code"] == 200
    assert attrs(llm_span(collector, later))["signals.quality"] == "poor"
    assert "signals: the analysis worker exited" in caplog.text


async def test_a_stream_the_provider_broke_off_is_not_analysed(
    mock: MockProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """Plano analyses a response when its stream completes; one cut short is not."""
    caplog.set_level(logging.INFO, "plano_trio.signals")
    cut, whole = new_id("cut"), new_id("whole")
    async with running_gateway(provider_config(mock.url)) as gw:

        def run() -> None:
            with httpx.Client(timeout=20) as client:
                for marker, extra in ((cut, {"x-mock-drop-after": "1"}), (whole, {})):
                    with client.stream(
                        "POST",
                        gw.v1 + "/chat/completions",
                        json=chat_body(stream=True),
                        headers={"x-request-id": marker, **extra},
                    ) as answer:
                        answer.read()

        await in_thread(run)
        await until(lambda: signal_lines(caplog, whole))
    assert not signal_lines(caplog, cut)
