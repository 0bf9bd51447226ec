"""Scoring, quality bands, the 🚩 rule, and what goes on the span, as Plano writes them."""

from __future__ import annotations

import pytest

from plano_trio.signals import (
    FLAG_MARKER,
    Quality,
    Signal,
    SignalGroup,
    SignalReport,
    SignalType,
    TurnMetrics,
)
from plano_trio.signals.floats import at_least, f32, json_f32
from plano_trio.signals.report import F32, MetadataValue, assess, band, render_metadata, severity

T = SignalType


def group(category: str, *kinds: SignalType) -> SignalGroup:
    return SignalGroup(category, tuple(Signal.make(kind, index, "x", {}) for index, kind in enumerate(kinds)))


def score(
    *,
    misalignment: int = 0,
    stagnation: int = 0,
    disengagement: tuple[SignalType, ...] = (),
    satisfaction: int = 0,
    failure: int = 0,
    loops: int = 0,
    exhaustion: int = 0,
    user_turns: int = 10,
) -> tuple[str, float]:
    quality, value = assess(
        (
            group("misalignment", *[T.MISALIGNMENT_CORRECTION] * misalignment),
            group("stagnation", *[T.STAGNATION_REPETITION] * stagnation),
            group("disengagement", *disengagement),
            group("satisfaction", *[T.SATISFACTION_GRATITUDE] * satisfaction),
        ),
        (group("failure", *[T.FAILURE_INVALID_ARGS] * failure), group("loops", *[T.LOOPS_RETRY] * loops)),
        group("exhaustion", *[T.EXHAUSTION_TIMEOUT] * exhaustion),
        user_turns,
    )
    return quality.value, value


NEGATIVE = T.DISENGAGEMENT_NEGATIVE_STANCE

SCORES: list[tuple[str, dict[str, object], tuple[str, float]]] = [
    ("nothing: neutral 50", {}, ("neutral", 50.0)),
    ("one satisfaction: +12", {"satisfaction": 1}, ("good", 62.0)),
    ("two: +16", {"satisfaction": 2}, ("good", 66.0)),
    ("three or more: +19", {"satisfaction": 7}, ("good", 69.0)),
    ("excellent needs 75", {"satisfaction": 3, "exhaustion": 0, "user_turns": 1}, ("good", 69.0)),
    ("negative stance: -10 per severity", {"disengagement": (NEGATIVE,)}, ("neutral", 40.0)),
    ("three negative stances: severity 2", {"disengagement": (NEGATIVE,) * 3}, ("poor", 30.0)),
    ("five: severity 3 is severe", {"disengagement": (NEGATIVE,) * 5}, ("severe", 0.0)),
    (
        "escalation is severe",
        {"disengagement": (T.DISENGAGEMENT_ESCALATION,), "satisfaction": 3},
        ("severe", 0.0),
    ),
    ("quit is severe", {"disengagement": (T.DISENGAGEMENT_QUIT,)}, ("severe", 0.0)),
    ("misalignment on 30% of turns: no penalty", {"misalignment": 3, "user_turns": 10}, ("neutral", 50.0)),
    ("on more than 30%: -15", {"misalignment": 4, "user_turns": 10}, ("poor", 35.0)),
    ("no user turn counts as one", {"misalignment": 1, "user_turns": 0}, ("poor", 35.0)),
    ("two stagnation signals: no penalty", {"stagnation": 2}, ("neutral", 50.0)),
    ("three: -8 per severity (2)", {"stagnation": 3}, ("poor", 34.0)),
    ("five: severe", {"stagnation": 5}, ("severe", 0.0)),
    ("failures: -8 each", {"failure": 2}, ("poor", 34.0)),
    ("loops: -5 each", {"loops": 2}, ("neutral", 40.0)),
    ("exhaustion: -3 each", {"exhaustion": 4}, ("poor", 38.0)),
    ("clamped at 0", {"failure": 9}, ("severe", 0.0)),
    (
        "25 is poor",
        {"failure": 3, "satisfaction": 0, "loops": 0, "exhaustion": 0, "misalignment": 0},
        ("poor", 26.0),
    ),
    ("25 is still poor", {"failure": 2, "exhaustion": 3}, ("poor", 25.0)),
    ("below 25 is severe", {"failure": 2, "exhaustion": 4}, ("severe", 22.0)),
]


@pytest.mark.parametrize(
    ("counts", "expected"), [case[1:] for case in SCORES], ids=[case[0] for case in SCORES]
)
def test_score_rules(counts: dict[str, object], expected: tuple[str, float]) -> None:
    assert score(**counts) == expected  # type: ignore[arg-type]


BANDS = [(100.0, "excellent"), (75.0, "excellent"), (74.9, "good"), (60.0, "good"), (59.9, "neutral")]
BANDS += [(40.0, "neutral"), (39.9, "poor"), (25.0, "poor"), (24.9, "severe"), (0.0, "severe")]


@pytest.mark.parametrize(("value", "quality"), BANDS)
def test_quality_bands(value: float, quality: str) -> None:
    assert band(value).value == quality


def test_excellent_is_out_of_reach() -> None:
    """Plano's best score: three or more satisfaction signals and nothing else, 50 + 19."""
    assert score(satisfaction=3) == ("good", 69.0)


def test_severity_buckets() -> None:
    assert [severity(count) for count in range(7)] == [0, 1, 1, 2, 2, 3, 3]


def report(*groups: SignalGroup, quality: Quality = Quality.NEUTRAL) -> SignalReport:
    by_category = {g.category: g for g in groups}
    return SignalReport(
        **{name: by_category.get(name, SignalGroup(name)) for name in CATEGORIES},
        quality=quality,
        quality_score=50.0,
        turns=TurnMetrics(3, 3, 2, False, 1.0),
    )


CATEGORIES = ("misalignment", "stagnation", "disengagement", "satisfaction", "failure", "loops", "exhaustion")

CONCERNING: list[tuple[str, SignalReport, bool]] = [
    ("clean", report(), False),
    ("poor", report(quality=Quality.POOR), True),
    ("severe", report(quality=Quality.SEVERE), True),
    ("any disengagement", report(group("disengagement", NEGATIVE)), True),
    ("two stagnation signals", report(group("stagnation", *[T.STAGNATION_REPETITION] * 2)), False),
    ("three", report(group("stagnation", *[T.STAGNATION_REPETITION] * 3)), True),
    ("any failure", report(group("failure", T.FAILURE_STATE_ERROR)), True),
    ("any loop", report(group("loops", T.LOOPS_RETRY)), True),
    ("misalignment alone", report(group("misalignment", T.MISALIGNMENT_CORRECTION)), False),
    ("exhaustion alone", report(group("exhaustion", T.EXHAUSTION_TIMEOUT)), False),
]


@pytest.mark.parametrize(("subject", "expected"), [c[1:] for c in CONCERNING], ids=[c[0] for c in CONCERNING])
def test_concerning_rule_and_flag(subject: SignalReport, expected: bool) -> None:
    assert subject.concerning is expected
    assert subject.span_name("POST /v1/chat/completions") == (
        f"POST /v1/chat/completions {FLAG_MARKER}" if expected else "POST /v1/chat/completions"
    )


def test_span_attributes_names_and_types() -> None:
    subject = report(
        group("failure", T.FAILURE_STATE_ERROR), group("satisfaction", *[T.SATISFACTION_SUCCESS] * 3)
    )
    assert subject.span_attributes() == {
        "signals.quality": "neutral",
        "signals.quality_score": 50.0,
        "signals.turn_count": 3,
        "signals.efficiency_score": 1.0,
        "signals.interaction.satisfaction.count": 3,
        "signals.interaction.satisfaction.severity": 2,
        "signals.execution.failure.count": 1,
        "signals.execution.failure.severity": 1,
    }
    name, attributes = subject.span_events()[0]
    assert name == "signal.interaction.satisfaction.success"
    assert attributes == {
        "signal.type": "interaction.satisfaction.success",
        "signal.message_index": 0,
        "signal.confidence": 1.0,
        "signal.snippet": "x",
        "signal.metadata": "{}",
    }


def test_empty_snippet_is_left_out_of_the_event() -> None:
    signal = Signal.make(T.LOOPS_RETRY, 4, "", {"loop_type": "retry"}, confidence=0.95)
    assert signal.event() == (
        "signal.execution.loops.retry",
        {
            "signal.type": "execution.loops.retry",
            "signal.message_index": 4,
            "signal.confidence": 0.949999988079071,
            "signal.metadata": '{"loop_type":"retry"}',
        },
    )


def test_type_layers_and_categories() -> None:
    assert len(SignalType) == 25
    assert (T.EXHAUSTION_MALFORMED.layer, T.EXHAUSTION_MALFORMED.category) == ("environment", "exhaustion")
    assert T.EXHAUSTION_MALFORMED.value == "environment.exhaustion.malformed_response"
    assert {kind.category for kind in SignalType} == set(CATEGORIES)


# -- single precision --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.8, "0.800000011920929"),
        (4 / 9, "0.4444444477558136"),
        (1.0, "1.0"),
        (0.95, "0.949999988079071"),
        (1e-4, "0.00009999999747378752"),
        (1e-5, "9.999999747378752e-6"),
        (1e-7, "1.0000000116860974e-7"),
        (123456.0, "123456.0"),
        (1e16, "1.0000000272564224e16"),
        (3e20, "3.000000060122632e20"),
    ],
)
def test_metadata_floats_are_widened_f32_in_serde_layout(value: float, text: str) -> None:
    """Values printed by serde_json 1.0 for `json!({"a": value as f32})`."""
    assert json_f32(value) == text


def test_threshold_comparisons_are_single_precision() -> None:
    just_below = 0.65 - 1e-9  # a different double, the same float
    assert just_below < 0.65 and f32(just_below) == f32(0.65)
    assert at_least(just_below, 0.65)
    assert not at_least(0.649, 0.65)
    assert at_least(13 / 20, 0.65)


def test_metadata_keeps_key_order_and_writes_text_as_serde_json() -> None:
    metadata: dict[str, MetadataValue] = {
        "b": 'caf\u00e9 "q" \n',
        "a": 2,
        "f": F32(0.5),
        "pattern": ["A", "B"],
    }
    assert render_metadata(metadata) == '{"b":"caf\u00e9 \\"q\\" \\n","a":2,"f":0.5,"pattern":["A","B"]}'
