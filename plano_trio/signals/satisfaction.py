"""Satisfaction: the user thanking, confirming, or reporting success.

Each user message gives at most one signal: the first matching gratitude
phrase, else the first confirmation phrase, else the first success phrase.
"""

from __future__ import annotations

from collections.abc import Sequence

from .phrases import PhraseKinds, family, first_phrase_signal
from .report import Signal, SignalGroup, SignalType
from .text import NormalizedMessage

GRATITUDE = family(
    (
        "that's helpful",
        "that helps",
        "this helps",
        "appreciate it",
        "appreciate that",
        "that's perfect",
        "exactly what i needed",
        "just what i needed",
        "you're the best",
        "you rock",
        "you're awesome",
        "you're amazing",
        "you're great",
    )
)

CONFIRMATION = family(
    (
        "that works",
        "this works",
        "that's great",
        "that's amazing",
        "this is great",
        "that's awesome",
        "love it",
        "love this",
        "love that",
    )
)

SUCCESS = family(
    ("it worked", "that worked", "this worked", "it's working", "that's working", "this is working")
)

_KINDS: PhraseKinds = (
    (GRATITUDE, SignalType.SATISFACTION_GRATITUDE, "gratitude"),
    (CONFIRMATION, SignalType.SATISFACTION_CONFIRMATION, "confirmation"),
    (SUCCESS, SignalType.SATISFACTION_SUCCESS, "success"),
)


def analyze_satisfaction(messages: Sequence[tuple[int, str, NormalizedMessage]]) -> SignalGroup:
    """Satisfaction signals of the user messages among (index, role, message) triples."""
    found: list[Signal] = []
    for index, role, message in messages:
        if role != "human":
            continue
        signal = first_phrase_signal(_KINDS, index, message)
        if signal is not None:
            found.append(signal)
    return SignalGroup("satisfaction", tuple(found))
