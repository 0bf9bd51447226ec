"""`plano-trio obs` without the I/O: the LLM calls in a trace listener's answer, summed up and drawn as text.

An LLM call is a span carrying `llm.model` (brightstaff's LLM request span, as `planoai obs` counts
them; our upstream-attempt spans carry no `llm.model`, so a call counts once).  From its attributes:
the model (resolved, and requested when it differs), route, streaming, the provider's status, tokens,
time to first token, duration, and the conversation's signals (`signals.quality`,
`signals.quality_score`, and the 🚩 Plano appends to a concerning call's span name).

What is drawn (`render`), top to bottom: a title line; the totals (calls, errors, tokens, TTFT and
latency percentiles); the quality bands with the flagged count; one line per model (top few); the
most recent calls, newest first, one row each.  `summary` and `as_json` give the same numbers as data
(`--json`).  Percentiles are nearest-rank, as `planoai obs` computes them.

Every string from a span goes through `render.printable` (a span is sender-controlled); widths are
fixed per column and long names are cut with "…".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from plano_trio.tracing_cli.render import BOLD, CYAN, DIM, GREEN, RED, YELLOW, Painter, printable
from plano_trio.tracing_cli.spans import Span, Trace

FLAG = "\U0001f6a9"
QUALITIES = ("excellent", "good", "neutral", "poor", "severe")
QUALITY_COLORS = {"excellent": GREEN, "good": GREEN, "neutral": "", "poor": YELLOW, "severe": RED}
MODEL_ROWS = 5


@dataclass(frozen=True, slots=True)
class LlmCall:
    """One LLM request, as its span tells it (None: the span did not say)."""

    request_id: str
    trace_id: str
    start_ns: int
    model: str
    requested: str | None
    provider: str | None
    route: str | None
    streaming: bool | None
    status: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    ttft_ms: float | None
    duration_ms: float | None
    quality: str | None
    """`signals.quality` (None: not analysed: signals off, skipped, or not a completed answer)."""
    score: float | None
    flagged: bool
    """Plano's 🚩: the span name ends with it."""

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens per second after the first token (as `planoai obs` computes it)."""
        if self.duration_ms is None or not self.completion_tokens:
            return None
        generating = self.duration_ms - (self.ttft_ms or 0.0)
        return self.completion_tokens * 1000.0 / generating if generating > 0 else None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(float(text))
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _bool(text: str | None) -> bool | None:
    return None if text is None else text in ("True", "true")


def llm_call(span: Span) -> LlmCall | None:
    """The span as an LLM call, or None when it is not one (no `llm.model`)."""
    a = span.attribute_texts()
    model = a.get("llm.model")
    if not model:
        return None
    return LlmCall(
        request_id=a.get("request_id", ""),
        trace_id=span.trace_id,
        start_ns=span.start_ns,
        model=model,
        requested=a.get("model.requested"),
        provider=a.get("llm.provider"),
        route=a.get("plano.route.name"),
        streaming=_bool(a.get("llm.is_streaming")),
        status=_int(a.get("http.status_code")),
        prompt_tokens=_int(a.get("llm.usage.prompt_tokens")),
        completion_tokens=_int(a.get("llm.usage.completion_tokens")),
        ttft_ms=_float(a.get("llm.time_to_first_token")),
        duration_ms=_float(a.get("llm.duration_ms")),
        quality=a.get("signals.quality"),
        score=_float(a.get("signals.quality_score")),
        flagged=span.name.endswith(f" {FLAG}"),
    )


def llm_calls(traces: Iterable[Trace]) -> list[LlmCall]:
    """Every LLM call in the traces, newest first."""
    calls = [call for trace in traces for span in trace.spans if (call := llm_call(span)) is not None]
    calls.sort(key=lambda call: call.start_ns, reverse=True)
    return calls


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (`share` in 0..1), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * (len(ordered) - 1))))]


@dataclass(frozen=True, slots=True)
class ModelLine:
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    flagged: int


@dataclass(frozen=True, slots=True)
class Summary:
    calls: int
    errors_4xx: int
    errors_5xx: int
    prompt_tokens: int
    completion_tokens: int
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    quality: dict[str, int]
    """Calls per quality band, every band present."""
    not_analysed: int
    flagged: int
    models: list[ModelLine]
    """Per model, most calls first."""


def summary(calls: Sequence[LlmCall]) -> Summary:
    ttfts = [c.ttft_ms for c in calls if c.ttft_ms is not None]
    latencies = [c.duration_ms for c in calls if c.duration_ms is not None]
    bands = Counter(c.quality for c in calls if c.quality is not None)
    per_model: dict[str, list[LlmCall]] = {}
    for call in calls:
        per_model.setdefault(call.model, []).append(call)
    models = [
        ModelLine(
            model,
            len(group),
            sum(c.prompt_tokens or 0 for c in group),
            sum(c.completion_tokens or 0 for c in group),
            sum(c.flagged for c in group),
        )
        for model, group in per_model.items()
    ]
    models.sort(key=lambda line: (-line.calls, line.model))
    return Summary(
        calls=len(calls),
        errors_4xx=sum(1 for c in calls if c.status is not None and 400 <= c.status < 500),
        errors_5xx=sum(1 for c in calls if c.status is not None and c.status >= 500),
        prompt_tokens=sum(c.prompt_tokens or 0 for c in calls),
        completion_tokens=sum(c.completion_tokens or 0 for c in calls),
        ttft_p50_ms=percentile(ttfts, 0.5),
        ttft_p95_ms=percentile(ttfts, 0.95),
        latency_p50_ms=percentile(latencies, 0.5),
        latency_p95_ms=percentile(latencies, 0.95),
        quality={band: bands.get(band, 0) for band in QUALITIES},
        not_analysed=sum(1 for c in calls if c.quality is None),
        flagged=sum(c.flagged for c in calls),
        models=models,
    )


def as_json(calls: Sequence[LlmCall], listener: str) -> dict[str, Any]:
    """What `--json` prints: the listener, the summary and every call (newest first)."""
    return {
        "listener": listener,
        "summary": asdict(summary(calls)),
        "calls": [{**asdict(call), "tokens_per_s": call.tokens_per_s} for call in calls],
    }


# -- text -------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}ms" if value < 1000 else f"{value / 1000:.1f}s"


def _tokens(value: int | None) -> str:
    if value is None:
        return "—"
    if value < 1000:
        return str(value)
    return f"{value / 1000:.1f}k" if value < 1_000_000 else f"{value / 1_000_000:.1f}M"


def _cut(text: str, width: int) -> str:
    text = printable(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _status(code: int | None, paint: Painter) -> str:
    if code is None:
        return paint("—", DIM)
    if 200 <= code < 300:
        return paint("ok", GREEN)
    return paint(str(code), RED if code >= 500 else YELLOW)


def _quality(call: LlmCall, paint: Painter) -> str:
    if call.quality is None:
        return paint("—", DIM)
    text = (
        f"{printable(call.quality)} {call.score:.0f}" if call.score is not None else printable(call.quality)
    )
    shown = paint(text, QUALITY_COLORS.get(call.quality, ""))
    return f"{shown} {FLAG}" if call.flagged else shown


def _clock(start_ns: int, zone: tzinfo | None) -> str:
    if start_ns <= 0:
        return "--:--:--"
    return datetime.fromtimestamp(start_ns / 1e9, tz=UTC).astimezone(zone).strftime("%H:%M:%S")


COLUMNS = (("time", 8, "<"), ("model", 30, "<"), ("route", 14, "<"), ("in", 6, ">"), ("out", 6, ">"))
TIMING = (("tok/s", 6, ">"), ("TTFT", 7, ">"), ("lat", 7, ">"), ("status", 6, "<"))


def _row(cells: Sequence[tuple[str, str, int, str]]) -> str:
    """Cells of (plain text, painted text, width, alignment), padded by their plain width."""
    out = []
    for plain, painted, width, align in cells:
        pad = " " * max(0, width - len(plain))
        out.append(painted + pad if align == "<" else pad + painted)
    return "  ".join(out)


def render(
    calls: Sequence[LlmCall],
    *,
    listener: str,
    rows: int = 15,
    color: bool = False,
    zone: tzinfo | None = None,
    now_ns: int = 0,
) -> list[str]:
    """The screen: title, totals, quality, models, then the `rows` most recent calls (newest first)."""
    paint = Painter(color)
    s = summary(calls)
    title = f"{paint('plano-trio obs', BOLD)} · LLM calls held by the trace listener at {printable(listener)}"
    if now_ns:
        title += paint(f" · {_clock(now_ns, zone)}", DIM)
    lines = [title, ""]
    errors = s.errors_4xx + s.errors_5xx
    totals = [
        f"calls {paint(str(s.calls), BOLD)}",
        f"errors {paint(str(errors), RED if errors else '')}"
        + (f" ({s.errors_4xx} 4xx · {s.errors_5xx} 5xx)" if errors else ""),
        f"tokens {_tokens(s.prompt_tokens)} in · {paint(_tokens(s.completion_tokens), GREEN)} out",
        f"TTFT p50 {_ms(s.ttft_p50_ms)} p95 {_ms(s.ttft_p95_ms)}",
        f"latency p50 {_ms(s.latency_p50_ms)} p95 {_ms(s.latency_p95_ms)}",
    ]
    lines.append("   ".join(totals))
    bands = " · ".join(
        paint(f"{band} {s.quality[band]}", QUALITY_COLORS[band] if s.quality[band] else DIM)
        for band in QUALITIES
    )
    lines.append(f"quality {bands} · {FLAG} {s.flagged} · not analysed {s.not_analysed}")
    for line in s.models[:MODEL_ROWS]:
        flagged = f" · {FLAG} {line.flagged}" if line.flagged else ""
        lines.append(
            f"  {paint(_cut(line.model, 40), CYAN)}  {line.calls} calls · {_tokens(line.prompt_tokens)} in · "
            f"{_tokens(line.completion_tokens)} out{flagged}"
        )
    lines.append("")
    if not calls:
        lines.append(
            paint(
                "waiting for LLM calls… (the gateway traces to this listener with random_sampling > 0)", DIM
            )
        )
        return lines
    recent = calls[:rows]
    lines.append(paint(f"recent · last {len(recent)}", DIM))
    header = [(name, paint(name, DIM), width, align) for name, width, align in (*COLUMNS, *TIMING)]
    header.append(("quality", paint("quality", DIM), 0, "<"))
    lines.append(_row(header))
    for call in recent:
        model = (
            call.model
            if not call.requested or call.requested == call.model
            else f"{call.requested}→{call.model}"
        )
        tps = call.tokens_per_s
        cells = [
            _clock(call.start_ns, zone),
            _cut(model, 30),
            _cut(call.route or "—", 14),
            _tokens(call.prompt_tokens),
            _tokens(call.completion_tokens),
            f"{tps:.1f}" if tps is not None else "—",
            _ms(call.ttft_ms),
            _ms(call.duration_ms),
        ]
        painted = [
            (text, paint(text, CYAN) if name == "model" else text, width, align)
            for text, (name, width, align) in zip(cells, (*COLUMNS, *TIMING), strict=False)
        ]
        status_plain = (
            "ok" if call.status is not None and 200 <= call.status < 300 else str(call.status or "—")
        )
        painted.append((status_plain, _status(call.status, paint), TIMING[-1][1], "<"))
        painted.append(("", _quality(call, paint), 0, "<"))
        lines.append(_row(painted))
    return lines
