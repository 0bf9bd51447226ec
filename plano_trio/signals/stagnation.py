"""Stagnation: a conversation taking too many turns (dragging), or saying the same thing again (repetition).

Dragging counts user messages in the analysed window (empty ones too).
Up to the 5-turn baseline the efficiency is 1.0, beyond it
1 / (1 + 0.25 x excess); below 0.5 (from the tenth user turn) the
conversation is dragging, one signal at the window's last message.

Repetition compares each human or assistant message of five or more
tokens with the last two earlier messages of the same role (only those of
five or more tokens): character-trigram Jaccard >= 0.95 is an exact
repetition, >= 0.85 a near duplicate; the first hit is the message's one
signal.  User messages opening with a positive word ("yes", "thanks", ...)
are naturally repetitive and are not tested (but are remembered).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .floats import at_least, f32
from .report import F32, Signal, SignalGroup, SignalType, TurnMetrics
from .text import NormalizedMessage, jaccard, starts_with_any

BASELINE_TURNS = 5
EFFICIENCY_THRESHOLD = 0.5
REPETITION_LOOKBACK = 2
EXACT_THRESHOLD = 0.95
NEAR_DUPLICATE_THRESHOLD = 0.85
MIN_TOKENS = 5

POSITIVE_PREFIXES = (
    "yes",
    "yeah",
    "yep",
    "yup",
    "sure",
    "ok",
    "okay",
    "great",
    "awesome",
    "perfect",
    "thanks",
    "thank",
    "wonderful",
    "excellent",
    "amazing",
    "nice",
    "good",
    "cool",
    "absolutely",
    "definitely",
    "please",
)
"""Openings that mark a user message as agreement (string prefixes: "please" also opens "pleased")."""


def analyze_dragging(roles: Sequence[str], baseline: int = BASELINE_TURNS) -> tuple[SignalGroup, TurnMetrics]:
    """The dragging signal (if any) and the turn metrics of the window's roles."""
    user_turns = sum(role == "human" for role in roles)
    assistant_turns = sum(role == "gpt" for role in roles)
    excess = max(user_turns - baseline, 0)
    efficiency = f32(1.0 / (1.0 + excess * 0.25))
    dragging = efficiency < EFFICIENCY_THRESHOLD
    metrics = TurnMetrics(user_turns, user_turns, assistant_turns, dragging, efficiency)
    if not dragging:
        return SignalGroup("stagnation"), metrics
    signal = Signal.make(
        SignalType.STAGNATION_DRAGGING,
        max(len(roles) - 1, 0),
        f"Conversation dragging: {user_turns} turns (efficiency: {efficiency:.2f})",
        {"total_turns": user_turns, "efficiency_score": F32(efficiency), "baseline_turns": baseline},
        confidence=f32(1.0 - efficiency),
    )
    return SignalGroup("stagnation", (signal,)), metrics


def analyze_repetition(messages: Sequence[tuple[int, str, NormalizedMessage]]) -> list[Signal]:
    """Repetition signals among (index, role, message) triples of human and assistant messages."""
    found: list[Signal] = []
    earlier: dict[str, list[tuple[int, NormalizedMessage]]] = {"human": [], "gpt": []}
    for index, role, message in messages:
        if role not in earlier:
            continue
        same_role = earlier[role]
        if (role == "human" and starts_with_any(message.raw, POSITIVE_PREFIXES)) or len(
            message.tokens
        ) < MIN_TOKENS:
            same_role.append((index, message))
            continue
        for previous_index, previous in same_role[-REPETITION_LOOKBACK:]:
            if len(previous.tokens) < MIN_TOKENS:
                continue
            signal = _repetition(index, role, message, previous_index, previous)
            if signal is not None:
                found.append(signal)
                break
        same_role.append((index, message))
    return found


def _repetition(
    index: int, role: str, message: NormalizedMessage, previous_index: int, previous: NormalizedMessage
) -> Signal | None:
    ours, theirs = message.ngrams, previous.ngrams
    if min(len(ours), len(theirs)) < max(len(ours), len(theirs)) * NEAR_DUPLICATE_THRESHOLD * (1 - 1e-6):
        return None  # Jaccard <= |smaller| / |larger| is already below both thresholds
    similarity = jaccard(ours, theirs)
    if at_least(similarity, EXACT_THRESHOLD):
        kind, snippet = "exact", f"Exact repetition with message {previous_index}"
    elif at_least(similarity, NEAR_DUPLICATE_THRESHOLD):
        kind, snippet = "near_duplicate", f"Near-duplicate with message {previous_index}"
    else:
        return None
    single = f32(similarity)
    return Signal.make(
        SignalType.STAGNATION_REPETITION,
        index,
        snippet,
        {"repetition_type": kind, "compared_to": previous_index, "similarity": F32(single), "role": role},
        confidence=single,
    )


def analyze_stagnation(
    roles: Sequence[str], messages: Sequence[tuple[int, str, NormalizedMessage]], offset: int
) -> tuple[SignalGroup, TurnMetrics]:
    """Dragging then repetition signals, and the turn metrics.

    As in Plano, every stagnation index is then clamped to the window and
    shifted by `offset` (the messages cut off before the window).  That
    makes the dragging index absolute; a repetition index, already
    absolute, comes out shifted twice once a conversation outgrows the
    window, exactly as Plano reports it.
    """
    dragging, metrics = analyze_dragging(roles)
    last = max(len(roles) - 1, 0)
    signals = [
        replace(signal, message_index=offset + min(signal.message_index, last))
        for signal in (*dragging.signals, *analyze_repetition(messages))
    ]
    return SignalGroup("stagnation", tuple(signals)), metrics
