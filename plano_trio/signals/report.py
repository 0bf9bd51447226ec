"""What an analysis yields, how it is scored, and how it is written onto a span, all as Plano does.

The taxonomy has three layers and seven categories; a signal's type is its
dotted path (`interaction.misalignment.correction`).  A category's severity
buckets its count: 0 none, 1-2 mild, 3-4 moderate, 5+ severe.

Score (`assess`): explicit escalation or quit, or severe disengagement or
stagnation, makes the conversation `severe` with score 0.  Otherwise from
50: satisfaction adds 20 x 0.6 / 0.8 / 0.95 for 1 / 2 / 3+ signals;
disengagement takes 10 per severity level; misalignment on more than 30%
of user turns takes 15; more than two stagnation signals take 8 per
severity level; each failure takes 8, each loop 5, each exhaustion 3.
Clamped to 0-100, then banded: excellent >= 75 (unreachable: 69 is the
most a conversation scores), good >= 60, neutral >= 40, poor >= 25, else
severe.  A conversation is *concerning* (Plano appends 🚩
to the span name) when poor or severe, or with any disengagement, more than
two stagnation signals, any failure or any loop.

Numbers are Plano's single-precision values (see `floats`), so the span
carries the same doubles Plano exports.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from .floats import above, f32, json_f32

FLAG_MARKER = "\U0001f6a9"
"""Appended (after a space) to the span name of a concerning conversation."""

AttributeValue = str | int | float | bool
MetadataValue = str | int | float | list[str]


class F32(float):
    """A metadata number Plano holds as an `f32`: written in serde_json's short single-precision form."""


class SignalType(enum.Enum):
    """The 25 leaf signal types; the value is the dotted name Plano emits."""

    MISALIGNMENT_CORRECTION = "interaction.misalignment.correction"
    MISALIGNMENT_REPHRASE = "interaction.misalignment.rephrase"
    MISALIGNMENT_CLARIFICATION = "interaction.misalignment.clarification"
    STAGNATION_DRAGGING = "interaction.stagnation.dragging"
    STAGNATION_REPETITION = "interaction.stagnation.repetition"
    DISENGAGEMENT_ESCALATION = "interaction.disengagement.escalation"
    DISENGAGEMENT_QUIT = "interaction.disengagement.quit"
    DISENGAGEMENT_NEGATIVE_STANCE = "interaction.disengagement.negative_stance"
    SATISFACTION_GRATITUDE = "interaction.satisfaction.gratitude"
    SATISFACTION_CONFIRMATION = "interaction.satisfaction.confirmation"
    SATISFACTION_SUCCESS = "interaction.satisfaction.success"
    FAILURE_INVALID_ARGS = "execution.failure.invalid_args"
    FAILURE_BAD_QUERY = "execution.failure.bad_query"
    FAILURE_TOOL_NOT_FOUND = "execution.failure.tool_not_found"
    FAILURE_AUTH_MISUSE = "execution.failure.auth_misuse"
    FAILURE_STATE_ERROR = "execution.failure.state_error"
    LOOPS_RETRY = "execution.loops.retry"
    LOOPS_PARAMETER_DRIFT = "execution.loops.parameter_drift"
    LOOPS_OSCILLATION = "execution.loops.oscillation"
    EXHAUSTION_API_ERROR = "environment.exhaustion.api_error"
    EXHAUSTION_TIMEOUT = "environment.exhaustion.timeout"
    EXHAUSTION_RATE_LIMIT = "environment.exhaustion.rate_limit"
    EXHAUSTION_NETWORK = "environment.exhaustion.network"
    EXHAUSTION_MALFORMED = "environment.exhaustion.malformed_response"
    EXHAUSTION_CONTEXT_OVERFLOW = "environment.exhaustion.context_overflow"

    @property
    def layer(self) -> str:
        return self.value.split(".", 1)[0]

    @property
    def category(self) -> str:
        return self.value.split(".", 2)[1]


class Quality(enum.Enum):
    EXCELLENT = "excellent"
    GOOD = "good"
    NEUTRAL = "neutral"
    POOR = "poor"
    SEVERE = "severe"


def render_metadata(metadata: Mapping[str, MetadataValue]) -> str:
    """Compact JSON in the given key order, as serde_json writes Plano's metadata objects."""
    members = []
    for key, value in metadata.items():
        if isinstance(value, F32):
            text = json_f32(value)
        elif isinstance(value, list):
            text = "[" + ",".join(json.dumps(item, ensure_ascii=False) for item in value) + "]"
        else:
            text = json.dumps(value, ensure_ascii=False)
        members.append(f"{json.dumps(key, ensure_ascii=False)}:{text}")
    return "{" + ",".join(members) + "}"


@dataclass(frozen=True, slots=True)
class Signal:
    """One detected signal: where, what it matched, how sure, and the detector's details (JSON text)."""

    type: SignalType
    message_index: int
    """Index into the analysed messages (see `analyzer` for which list each detector counts in)."""
    snippet: str
    confidence: float
    """Already single precision (what the span carries)."""
    metadata: str
    """A JSON object, exactly the `signal.metadata` event attribute."""

    @staticmethod
    def make(
        kind: SignalType,
        index: int,
        snippet: str,
        metadata: Mapping[str, MetadataValue],
        confidence: float = 1.0,
    ) -> Signal:
        return Signal(kind, index, snippet, f32(confidence), render_metadata(metadata))

    def event(self) -> tuple[str, dict[str, AttributeValue]]:
        """The span event Plano adds for this signal: `signal.<type>` with its attributes."""
        attributes: dict[str, AttributeValue] = {
            "signal.type": self.type.value,
            "signal.message_index": self.message_index,
            "signal.confidence": self.confidence,
        }
        if self.snippet:
            attributes["signal.snippet"] = self.snippet
        attributes["signal.metadata"] = self.metadata
        return f"signal.{self.type.value}", attributes


def severity(count: int) -> int:
    """0 none, 1 mild (1-2), 2 moderate (3-4), 3 severe (5+)."""
    if count == 0:
        return 0
    if count <= 2:
        return 1
    if count <= 4:
        return 2
    return 3


@dataclass(frozen=True, slots=True)
class SignalGroup:
    """The signals of one category, in detection order."""

    category: str
    signals: tuple[Signal, ...] = ()

    @property
    def count(self) -> int:
        return len(self.signals)

    @property
    def severity(self) -> int:
        return severity(len(self.signals))

    def has(self, *kinds: SignalType) -> bool:
        return any(signal.type in kinds for signal in self.signals)


@dataclass(frozen=True, slots=True)
class TurnMetrics:
    """Turn counts of the analysed window; a turn is a user message."""

    total_turns: int
    user_turns: int
    assistant_turns: int
    is_dragging: bool
    efficiency_score: float
    """1.0 up to the baseline of 5 turns, then 1 / (1 + 0.25 x excess) (single precision)."""


@dataclass(frozen=True, slots=True)
class SignalReport:
    """Plano's `SignalReport`: seven category groups, the score and its band, the turn metrics."""

    misalignment: SignalGroup
    stagnation: SignalGroup
    disengagement: SignalGroup
    satisfaction: SignalGroup
    failure: SignalGroup
    loops: SignalGroup
    exhaustion: SignalGroup
    quality: Quality
    quality_score: float
    turns: TurnMetrics

    def groups(self) -> tuple[tuple[str, SignalGroup], ...]:
        """Each group with its attribute prefix, in Plano's order (which is also the events' order)."""
        return (
            ("signals.interaction.misalignment", self.misalignment),
            ("signals.interaction.stagnation", self.stagnation),
            ("signals.interaction.disengagement", self.disengagement),
            ("signals.interaction.satisfaction", self.satisfaction),
            ("signals.execution.failure", self.failure),
            ("signals.execution.loops", self.loops),
            ("signals.environment.exhaustion", self.exhaustion),
        )

    def signals(self) -> Iterator[Signal]:
        for _, group in self.groups():
            yield from group.signals

    def types(self) -> dict[str, int]:
        """Count per signal type name, for tests and logs."""
        counts: dict[str, int] = {}
        for signal in self.signals():
            counts[signal.type.value] = counts.get(signal.type.value, 0) + 1
        return counts

    @property
    def misalignment_ratio(self) -> float:
        """Misalignment signals per user turn (single precision, as Plano divides)."""
        return f32(self.misalignment.count / max(self.turns.user_turns, 1))

    @property
    def concerning(self) -> bool:
        """Whether Plano flags the span with 🚩."""
        return (
            self.quality in (Quality.POOR, Quality.SEVERE)
            or self.disengagement.count > 0
            or self.stagnation.count > 2
            or self.failure.count > 0
            or self.loops.count > 0
        )

    def span_attributes(self) -> dict[str, AttributeValue]:
        """The attributes Plano sets on the LLM span: four totals, then count and severity per category."""
        attributes: dict[str, AttributeValue] = {
            "signals.quality": self.quality.value,
            "signals.quality_score": self.quality_score,
            "signals.turn_count": self.turns.total_turns,
            "signals.efficiency_score": self.turns.efficiency_score,
        }
        for prefix, group in self.groups():
            if group.count:
                attributes[f"{prefix}.count"] = group.count
                attributes[f"{prefix}.severity"] = group.severity
        return attributes

    def span_events(self) -> list[tuple[str, dict[str, AttributeValue]]]:
        """One `signal.<type>` event per signal, in Plano's order."""
        return [signal.event() for signal in self.signals()]

    def span_name(self, name: str) -> str:
        """`name` with the 🚩 marker when the conversation is concerning."""
        return f"{name} {FLAG_MARKER}" if self.concerning else name

    @property
    def summary(self) -> str:
        """Plano's one-line summary: quality, turns, every category by layer, then the alerts."""
        turns = self.turns
        parts = [
            f"Overall Quality: {self.quality.value}",
            f"Turns: {turns.total_turns} (efficiency: {f32(turns.efficiency_score * 100.0):.1f}%)",
            "Interaction \u2014 "
            + ", ".join(
                _summary_group(name, group)
                for name, group in (
                    ("misalignment", self.misalignment),
                    ("stagnation", self.stagnation),
                    ("disengagement", self.disengagement),
                    ("satisfaction", self.satisfaction),
                )
            ),
            f"Execution \u2014 {_summary_group('failure', self.failure)}, "
            + _summary_group("loops", self.loops),
            f"Environment \u2014 {_summary_group('exhaustion', self.exhaustion)}",
        ]
        ratio = self.misalignment_ratio
        if self.misalignment.count and above(ratio, 0.3):
            parts.append(f"High misalignment rate: {f32(ratio * 100.0):.1f}% of user turns")
        if self.stagnation.count > 2:
            parts.append(f"Looping detected: {self.stagnation.count} repetitions")
        escalations = sum(
            signal.type is SignalType.DISENGAGEMENT_ESCALATION for signal in self.disengagement.signals
        )
        if escalations:
            parts.append(f"Escalation requested: {escalations}")
        return " | ".join(parts)


def _summary_group(name: str, group: SignalGroup) -> str:
    return f"{name}: {group.count} (sev {group.severity})" if group.count else f"{name}: 0"


_SATISFACTION_WEIGHT = {1: 0.6, 2: 0.8}


def assess(
    interaction: Sequence[SignalGroup],
    execution: Sequence[SignalGroup],
    exhaustion: SignalGroup,
    user_turns: int,
) -> tuple[Quality, float]:
    """The quality band and score of the groups (misalignment, stagnation, disengagement, satisfaction)."""
    misalignment, stagnation, disengagement, satisfaction = interaction
    failure, loops = execution
    if (
        disengagement.has(SignalType.DISENGAGEMENT_ESCALATION, SignalType.DISENGAGEMENT_QUIT)
        or disengagement.severity >= 3
        or stagnation.severity >= 3
    ):
        return Quality.SEVERE, 0.0
    score = 50.0
    if satisfaction.count:
        score = f32(score + f32(20.0 * f32(_SATISFACTION_WEIGHT.get(satisfaction.count, 0.95))))
    if disengagement.count:
        score -= disengagement.severity * 10.0
    ratio = f32(misalignment.count / max(user_turns, 1))
    if misalignment.severity > 0 and above(ratio, 0.3):
        score -= 15.0
    if stagnation.count > 2:
        score -= stagnation.severity * 8.0
    score -= failure.count * 8.0
    score -= loops.count * 5.0
    score -= exhaustion.count * 3.0
    score = f32(min(max(score, 0.0), 100.0))
    return band(score), score


def band(score: float) -> Quality:
    """The quality band of a score.

    As Plano scores, nothing adds more than 19 to the starting 50, so
    `excellent` (75) is never reached; the band is kept for parity.
    """
    if score >= 75.0:
        return Quality.EXCELLENT
    if score >= 60.0:
        return Quality.GOOD
    if score >= 40.0:
        return Quality.NEUTRAL
    if score >= 25.0:
        return Quality.POOR
    return Quality.SEVERE
