"""Misalignment: the user correcting the assistant, rephrasing, or asking what it meant.

Each user message is tested against the correction phrases, then the
rephrase phrases, then the clarification phrases; the first that matches
is the message's one signal (its snippet is the phrase).  A message that
matches none is compared with the previous user message when at most three
messages separate them: a *semantic rephrase* is a message of three or more
tokens, not opening with a confirmation ("yes", "right", ...), whose
content words (stopwords removed, at least four on each side) are mostly
the previous message's: at most half of them new, and at least 75% of the
smaller set shared.
"""

from __future__ import annotations

from collections.abc import Sequence

from .phrases import PhraseKinds, family, first_phrase_signal
from .report import Signal, SignalGroup, SignalType
from .text import NormalizedMessage, starts_with_any

CORRECTION = family(
    (
        "no, i meant",
        "no i meant",
        "no, i said",
        "no i said",
        "no, i asked",
        "no i asked",
        "nah, i meant",
        "nope, i meant",
        "not what i said",
        "not what i asked",
        "that's not what i said",
        "that's not what i asked",
        "that's not what i meant",
        "thats not what i said",
        "thats not what i asked",
        "thats not what i meant",
        "that's not what you",
        "no that's not what i",
        "no, that's not what i",
        "you're not quite right",
        "youre not quite right",
        "you're not exactly right",
        "youre not exactly right",
        "you're wrong about",
        "youre wrong about",
        "i just said",
        "i already said",
        "i already told you",
    )
)

REPHRASE = family(
    (
        "let me rephrase",
        "let me explain again",
        "what i'm trying to say",
        "what i'm saying is",
        "in other words",
    )
)

CLARIFICATION = family(
    (
        "i don't understand",
        "don't understand",
        "not understanding",
        "can't understand",
        "don't get it",
        "don't follow",
        "i'm confused",
        "so confused",
        "makes no sense",
        "doesn't make sense",
        "not making sense",
        "what do you mean",
        "what does that mean",
        "what are you saying",
        "i'm lost",
        "totally lost",
        "lost me",
        "no clue what you",
        "no idea what you",
        "no clue what that",
        "no idea what that",
        "come again",
        "say that again",
        "repeat that",
        "trouble following",
        "hard to follow",
        "can't follow",
    )
)

CONFIRMATION_PREFIXES = (
    "yes",
    "yeah",
    "yep",
    "yup",
    "correct",
    "right",
    "that's correct",
    "thats correct",
    "that's right",
    "thats right",
    "that is correct",
    "that is right",
)

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)

REPHRASE_WINDOW = 3
"""At most this many messages from the previous user message for a semantic rephrase."""

_KINDS: PhraseKinds = (
    (CORRECTION, SignalType.MISALIGNMENT_CORRECTION, "correction"),
    (REPHRASE, SignalType.MISALIGNMENT_REPHRASE, "rephrase"),
    (CLARIFICATION, SignalType.MISALIGNMENT_CLARIFICATION, "clarification"),
)


def is_similar_rephrase(
    message: NormalizedMessage,
    previous: NormalizedMessage,
    overlap_threshold: float = 0.75,
    min_meaningful_tokens: int = 4,
    max_new_content_ratio: float = 0.5,
) -> bool:
    """Whether `message` says again what `previous` said (see the module docstring)."""
    if len(message.tokens) < 3 or len(previous.tokens) < 3:
        return False
    if starts_with_any(message.raw, CONFIRMATION_PREFIXES):
        return False
    ours = {token for token in message.tokens if token not in STOPWORDS}
    theirs = {token for token in previous.tokens if token not in STOPWORDS}
    if len(ours) < min_meaningful_tokens or len(theirs) < min_meaningful_tokens:
        return False
    # Both ratios have small integer terms, so the double comparison agrees with Plano's f32 one.
    if len(ours - theirs) / len(ours) > max_new_content_ratio:
        return False
    return len(ours & theirs) / min(len(ours), len(theirs)) >= overlap_threshold


def analyze_misalignment(messages: Sequence[tuple[int, str, NormalizedMessage]]) -> SignalGroup:
    """Misalignment signals of the user messages among (index, role, message) triples."""
    found: list[Signal] = []
    previous: tuple[int, NormalizedMessage] | None = None
    for index, role, message in messages:
        if role != "human":
            continue
        signal = first_phrase_signal(_KINDS, index, message)
        if signal is not None:
            found.append(signal)
        elif (
            previous is not None
            and index - previous[0] <= REPHRASE_WINDOW
            and is_similar_rephrase(message, previous[1])
        ):
            found.append(
                Signal.make(
                    SignalType.MISALIGNMENT_REPHRASE,
                    index,
                    "[similar rephrase detected]",
                    {"pattern_type": "semantic_rephrase", "compared_to": previous[0]},
                    confidence=0.8,
                )
            )
        previous = (index, message)
    return SignalGroup("misalignment", tuple(found))
