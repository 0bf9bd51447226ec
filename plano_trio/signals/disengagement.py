"""Disengagement: the user shouting, asking for a human, giving up, or turning against the assistant.

Per user message, each check can add a signal, in this order:

1. shouting: at least ten letters, 80% or more of them uppercase
   (negative stance, `all_caps`);
2. `??`, `!!` or three of `?!` in a row, unless the message opens with a
   positive word (negative stance, `excessive_punctuation`);
3. the first matching escalation phrase ("get me a human", ...);
4. the first matching quit phrase ("i give up", ...);
5. the first matching agent-directed profanity (negative stance,
   `profanity`), else, if neither 3 nor 5 fired, the first matching
   complaint (negative stance, `complaint`).

Letters and uppercase are Python's `isalpha`/`isupper`; Plano uses
Unicode's Alphabetic and Uppercase properties, which also count combining
vowel signs of some scripts and circled letters.  ASCII and ordinary
letters of any script count the same.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .floats import at_least, f32
from .phrases import family
from .report import F32, Signal, SignalGroup, SignalType
from .stagnation import POSITIVE_PREFIXES
from .text import NormalizedMessage, starts_with_any

_REQUESTS = (
    "speak to",
    "talk to",
    "connect me to",
    "connect me with",
    "transfer me to",
    "get me",
    "chat with",
)
_WHOM = (
    "a human",
    "a person",
    "a real person",
    "an actual person",
    "a supervisor",
    "a manager",
    "customer service",
    "customer support",
    "support",
    "tech support",
    "help desk",
)
ESCALATION = family((*(f"{verb} {whom}" for whom in _WHOM for verb in _REQUESTS), "escalate this"))
"""Every request verb for every kind of human, grouped by whom, as Plano lists them; then "escalate this"."""

QUIT = family(
    (
        "i give up",
        "i'm giving up",
        "im giving up",
        "i'm going to quit",
        "i quit",
        "forget it",
        "forget this",
        "screw it",
        "screw this",
        "don't bother trying",
        "don't bother with this",
        "don't bother with it",
        "don't even bother",
        "why bother",
        "not worth it",
        "this is hopeless",
        "going elsewhere",
        "try somewhere else",
        "look elsewhere",
    )
)

COMPLAINT = family(
    (
        "this is useless",
        "not helpful",
        "doesn't help",
        "not helping",
        "you're not helping",
        "youre not helping",
        "this doesn't work",
        "this doesnt work",
        "this isn't working",
        "this isnt working",
        "still doesn't work",
        "still doesnt work",
        "still not working",
        "still isn't working",
        "still isnt working",
        "waste of time",
        "wasting my time",
        "this is ridiculous",
        "this is absurd",
        "this is insane",
        "this is stupid",
        "this is dumb",
        "this sucks",
        "this is frustrating",
        "not good enough",
        "why can't you",
        "why cant you",
        "same issue",
        "did that already",
        "done that already",
        "tried that already",
        "already tried that",
        "i've done that",
        "ive done that",
        "i've tried that",
        "ive tried that",
        "i'm disappointed",
        "im disappointed",
        "disappointed with you",
        "disappointed in you",
        "useless bot",
        "dumb bot",
        "stupid bot",
    )
)

PROFANITY = family(
    (
        "this is bullshit",
        "what bullshit",
        "such bullshit",
        "total bullshit",
        "complete bullshit",
        "this is crap",
        "what crap",
        "this is shit",
        "what the hell is wrong with you",
        "what the fuck is wrong with you",
        "you're fucking useless",
        "youre fucking useless",
        "you are fucking useless",
        "fucking useless",
        "this bot is shit",
        "this bot is crap",
        "damn bot",
        "fucking bot",
        "stupid fucking",
        "are you fucking kidding",
        "wtf is wrong with you",
        "wtf is this",
        "ffs just",
        "for fucks sake",
        "for fuck's sake",
        "what the f**k",
        "what the f*ck",
        "what the f***",
        "that's bullsh*t",
        "thats bullsh*t",
        "that's bull***t",
        "thats bull***t",
        "that's bs",
        "thats bs",
        "this is bullsh*t",
        "this is bull***t",
        "this is bs",
    )
)

MIN_LETTERS = 10
CAPS_RATIO = 0.8
SNIPPET_CHARS = 50

_QUESTIONS = re.compile(r"\?{2,}")
_EXCLAMATIONS = re.compile(r"!{2,}")
_MIXED = re.compile(r"[?!]{3,}")


def analyze_disengagement(messages: Sequence[tuple[int, str, NormalizedMessage]]) -> SignalGroup:
    """Disengagement signals of the user messages among (index, role, message) triples."""
    found: list[Signal] = []
    for index, role, message in messages:
        if role == "human":
            found += _message_signals(index, message)
    return SignalGroup("disengagement", tuple(found))


def _message_signals(index: int, message: NormalizedMessage) -> list[Signal]:
    text = message.raw
    found: list[Signal] = []
    letters, upper = _letters(text)
    if letters >= MIN_LETTERS and at_least(upper / letters, CAPS_RATIO):
        found.append(
            Signal.make(
                SignalType.DISENGAGEMENT_NEGATIVE_STANCE,
                index,
                text[:SNIPPET_CHARS],
                {"indicator_type": "all_caps", "upper_ratio": F32(f32(upper / letters))},
            )
        )
    if "?" in text or "!" in text:
        questions = len(_QUESTIONS.findall(text))
        exclamations = len(_EXCLAMATIONS.findall(text))
        mixed = len(_MIXED.findall(text))
        if (questions or exclamations or mixed) and not starts_with_any(text, POSITIVE_PREFIXES):
            found.append(
                Signal.make(
                    SignalType.DISENGAGEMENT_NEGATIVE_STANCE,
                    index,
                    text[:SNIPPET_CHARS],
                    {
                        "indicator_type": "excessive_punctuation",
                        "consecutive_questions": questions,
                        "consecutive_exclamations": exclamations,
                        "mixed_punctuation": mixed,
                    },
                )
            )
    escalation = ESCALATION.first_match(message)
    if escalation is not None:
        found.append(
            Signal.make(
                SignalType.DISENGAGEMENT_ESCALATION, index, escalation.raw, {"pattern_type": "escalation"}
            )
        )
    quit_ = QUIT.first_match(message)
    if quit_ is not None:
        found.append(Signal.make(SignalType.DISENGAGEMENT_QUIT, index, quit_.raw, {"pattern_type": "quit"}))
    profanity = PROFANITY.first_match(message)
    if profanity is not None:
        found.append(
            Signal.make(
                SignalType.DISENGAGEMENT_NEGATIVE_STANCE,
                index,
                profanity.raw,
                {"indicator_type": "profanity", "pattern": profanity.raw},
            )
        )
    elif escalation is None:
        complaint = COMPLAINT.first_match(message)
        if complaint is not None:
            found.append(
                Signal.make(
                    SignalType.DISENGAGEMENT_NEGATIVE_STANCE,
                    index,
                    complaint.raw,
                    {"indicator_type": "complaint", "pattern": complaint.raw},
                )
            )
    return found


def _letters(text: str) -> tuple[int, int]:
    """How many letters `text` has, and how many of them are uppercase."""
    if text.isascii():
        return sum(map(str.isalpha, text)), sum(map(str.isupper, text))
    letters = [char for char in text if char.isalpha()]
    return len(letters), sum(map(str.isupper, letters))
