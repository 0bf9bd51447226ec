"""`plano-trio obs`: LLM calls read from a trace listener's spans, summed and drawn; and end to end, a call
the real gateway served appears with its tokens, timings and quality.

The pure part (`tracing_cli.obs`) is checked on spans written here; the command runs as a child process
against our `plano-trio trace listen`, which the gateway traces to.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from argparse import Namespace
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from plano_trio.tracing_cli.obs import (
    FLAG,
    LlmCall,
    as_json,
    llm_call,
    llm_calls,
    percentile,
    render,
    summary,
)
from plano_trio.tracing_cli.obs_command import run_obs
from plano_trio.tracing_cli.spans import AnyValue, Attribute, Span, Trace
from tests.mock_provider import MockProvider
from tests.support import in_thread, provider_config, running_gateway
from tests.test_signals_gateway import chat_body, new_id, post, signal_lines, tracing_to, until
from tests.test_trace_cli import OurListener

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SECOND = 1_000_000_000


def llm(start_s: int = 100, name: str = "POST /v1/chat/completions gpt-4o", **extra: Any) -> Span:
    base: dict[str, Any] = {
        "request_id": f"r{start_s}",
        "llm.model": "openai/gpt-4o",
        "model.requested": "gpt-4o",
        "llm.provider": "openai",
        "llm.is_streaming": True,
        "http.status_code": 200,
        "llm.usage.prompt_tokens": 1200,
        "llm.usage.completion_tokens": 100,
        "llm.time_to_first_token": 200,
        "llm.duration_ms": 1200,
    }
    base.update({k.replace("__", "."): v for k, v in extra.items()})
    return Span(
        trace_id=f"{start_s:032x}",
        span_id="cd" * 8,
        name=name,
        start_time_unix_nano=str(start_s * SECOND),
        end_time_unix_nano=str((start_s + 2) * SECOND),
        service="plano(llm)",
        attributes=tuple(Attribute(k, _value(v)) for k, v in base.items()),
    )


def _value(v: Any) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=str(v))
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=str(v))


# -- calls from spans ---------------------------------------------------------------------------------


def test_an_llm_span_becomes_a_call_with_its_signals() -> None:
    call = llm_call(
        llm(
            name=f"POST /v1/chat/completions gpt-4o -> openai/gpt-4o {FLAG}",
            **{
                "signals.quality": "poor",
                "signals.quality_score": 31.0,
                "plano.route.name": "code",
            },
        )
    )
    assert call == LlmCall(
        request_id="r100",
        trace_id=f"{100:032x}",
        start_ns=100 * SECOND,
        model="openai/gpt-4o",
        requested="gpt-4o",
        provider="openai",
        route="code",
        streaming=True,
        status=200,
        prompt_tokens=1200,
        completion_tokens=100,
        ttft_ms=200.0,
        duration_ms=1200.0,
        quality="poor",
        score=31.0,
        flagged=True,
    )
    assert call.tokens_per_s == pytest.approx(100 / 1.0)


def test_spans_without_llm_model_are_not_calls_and_calls_come_newest_first() -> None:
    outbound = Span(
        trace_id="ab" * 16, name="POST api.openai.com/v1/chat/completions", service="plano(outbound)"
    )
    traces = [Trace("a", (llm(100), outbound)), Trace("b", (llm(300),)), Trace("c", (llm(200),))]
    assert [c.start_ns // SECOND for c in llm_calls(traces)] == [300, 200, 100]
    assert llm_call(outbound) is None
    sparse = llm_call(Span(name="llm", attributes=(Attribute("llm.model", AnyValue(string_value="m")),)))
    assert sparse is not None and (sparse.quality, sparse.ttft_ms, sparse.status, sparse.flagged) == (
        None,
        None,
        None,
        False,
    )
    assert sparse.tokens_per_s is None


@pytest.mark.parametrize(
    ("values", "share", "expected"),
    [
        ([], 0.5, None),
        ([5.0], 0.95, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 3.0),
        ([float(i) for i in range(100)], 0.95, 94.0),
    ],
)
def test_percentiles_are_nearest_rank(values: list[float], share: float, expected: float | None) -> None:
    assert percentile(values, share) == expected


def test_summary_counts_bands_flags_errors_and_models() -> None:
    calls = llm_calls(
        [
            Trace("1", (llm(1, **{"signals.quality": "good", "signals.quality_score": 62.0}),)),
            Trace(
                "2", (llm(2, name=f"x {FLAG}", **{"signals.quality": "poor", "signals.quality_score": 31.0}),)
            ),
            Trace("3", (llm(3, **{"http.status_code": 429, "llm.model": "anthropic/claude"}),)),
            Trace("4", (llm(4, **{"http.status_code": 503}),)),
        ]
    )
    s = summary(calls)
    assert (s.calls, s.errors_4xx, s.errors_5xx, s.flagged, s.not_analysed) == (4, 1, 1, 1, 2)
    assert s.quality == {"excellent": 0, "good": 1, "neutral": 0, "poor": 1, "severe": 0}
    assert (s.prompt_tokens, s.completion_tokens) == (4800, 400)
    assert [(m.model, m.calls, m.flagged) for m in s.models] == [
        ("openai/gpt-4o", 3, 1),
        ("anthropic/claude", 1, 0),
    ]
    data = as_json(calls, "127.0.0.1:4317")
    assert data["summary"]["quality"]["poor"] == 1 and data["calls"][0]["request_id"] == "r4"
    json.dumps(data)  # plain data


# -- drawing ------------------------------------------------------------------------------------------


def test_the_screen_shows_totals_quality_and_recent_calls() -> None:
    calls = llm_calls(
        [
            Trace("1", (llm(1, **{"signals.quality": "good", "signals.quality_score": 62.0}),)),
            Trace(
                "2",
                (
                    llm(
                        2,
                        name=f"x {FLAG}",
                        **{
                            "signals.quality": "poor",
                            "signals.quality_score": 31.0,
                            "plano.route.name": "code",
                        },
                    ),
                ),
            ),
        ]
    )
    lines = render(calls, listener="127.0.0.1:4317", zone=UTC)
    text = "\n".join(lines)
    assert lines[0] == "plano-trio obs · LLM calls held by the trace listener at 127.0.0.1:4317"
    assert (
        "calls 2   errors 0   tokens 2.4k in · 200 out   TTFT p50 200ms p95 200ms   latency p50 1.2s p95 1.2s"
        in text
    )
    assert f"quality excellent 0 · good 1 · neutral 0 · poor 1 · severe 0 · {FLAG} 1 · not analysed 0" in text
    rows = lines[lines.index("recent · last 2") + 2 :]
    assert rows[0].startswith("00:00:02  gpt-4o→openai/gpt-4o") and rows[0].endswith(f"poor 31 {FLAG}")
    assert "  code  " in rows[0] and " 1.2k " in rows[0] and " 200ms " in rows[0]
    assert rows[1].endswith("good 62")
    assert not ANSI.search(text)


def test_colour_only_when_asked_and_hostile_names_are_escaped() -> None:
    evil = llm(1, **{"llm.model": "m\x1b[2J\nforged line", "plano.route.name": "\x1b]0;title\x07"})
    lines = render(llm_calls([Trace("1", (evil,))]), listener="x", zone=UTC)
    assert not any("\x1b" in line or "\x07" in line for line in lines)
    assert all("\n" not in line for line in lines)
    coloured = render(llm_calls([Trace("1", (llm(1),))]), listener="x", color=True, zone=UTC)
    assert any(ANSI.search(line) for line in coloured)


def test_nothing_yet_says_what_to_do() -> None:
    lines = render([], listener="127.0.0.1:4317")
    assert "calls 0" in lines[2] and "waiting for LLM calls" in lines[-1]


def test_rows_bound_the_table() -> None:
    calls = llm_calls([Trace(str(i), (llm(i),)) for i in range(1, 40)])
    lines = render(calls, listener="x", rows=5, zone=UTC)
    assert "recent · last 5" in lines and len(lines) == lines.index("recent · last 5") + 2 + 5


def test_a_listener_that_is_down_is_an_error_once(capsys: pytest.CaptureFixture[str]) -> None:
    args = Namespace(port=1, once=True, json=False, rows=None, interval=1.0)
    assert run_obs(args, io.StringIO()) == 1
    assert "no trace listener on 127.0.0.1:1" in capsys.readouterr().err


# -- end to end ---------------------------------------------------------------------------------------


def obs(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plano_trio", "obs", "--port", str(port), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )


async def test_obs_shows_the_gateways_call_with_its_quality(
    mock: MockProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "plano_trio.signals")
    listener = OurListener()
    try:
        marker = new_id("obs")
        async with running_gateway(provider_config(mock.url, tail=tracing_to(listener))) as gw:
            body = chat_body(stream=True, stream_options={"include_usage": True})
            answer = await in_thread(lambda: post(gw.v1 + "/chat/completions", body, marker))
            assert answer.status_code == 200
            await until(lambda: signal_lines(caplog, marker))
        shown = obs(listener.port, "--json")
        assert shown.returncode == 0, shown.stderr
        data = json.loads(shown.stdout)
        (call,) = [c for c in data["calls"] if c["request_id"] == marker]
        assert call["model"].endswith("gpt-4o-mini") and call["requested"] == "gpt-4o-mini"
        assert (call["streaming"], call["status"]) == (True, 200)
        assert call["quality"] == "poor" and call["score"] == 31.0 and call["flagged"] is True
        assert call["prompt_tokens"] > 0 and call["completion_tokens"] > 0 and call["ttft_ms"] is not None
        assert data["summary"]["flagged"] >= 1
        screen = obs(listener.port, "--once")
        assert screen.returncode == 0, screen.stderr
        assert f"poor 31 {FLAG}" in screen.stdout and "gpt-4o-mini" in screen.stdout
        assert not ANSI.search(screen.stdout)
    finally:
        listener.stop()


def test_live_mode_redraws_in_place_and_restores_the_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    from plano_trio.tracing_cli import obs_command, viewer
    from plano_trio.tracing_cli.spans import TracesReply

    reply = TracesReply(
        (Trace("1", (llm(1, **{"signals.quality": "good", "signals.quality_score": 62.0}),)),)
    )
    monkeypatch.setattr(viewer, "fetch_traces", lambda port, host="127.0.0.1": reply)
    draws = []

    def sleep(seconds: float) -> None:
        draws.append(seconds)
        if len(draws) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(obs_command.time, "sleep", sleep)
    out = io.StringIO()
    assert run_obs(Namespace(port=4317, once=False, json=False, rows=5, interval=0.01), out) == 0
    text = out.getvalue()
    assert text.startswith(obs_command.HIDE_CURSOR) and text.endswith(obs_command.SHOW_CURSOR)
    assert text.count(obs_command.HOME) == 2 and text.count(obs_command.CLEAR_BELOW) == 2
    assert draws == [obs_command.MIN_INTERVAL_S] * 2  # the interval has a floor
    assert "good 62" in text
