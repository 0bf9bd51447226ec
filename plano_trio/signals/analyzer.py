"""The whole analysis of one conversation: every detector over its last messages, then the score.

Input is Plano's ShareGPT shape: rows of (role, text) with roles `human`,
`gpt`, `function_call` (a call as JSON) and `observation` (a tool's
output); `normalize` produces it from any client API.  Only the last
`MAX_MESSAGES` rows are analysed.

Indexes, as Plano reports them: interaction signals (misalignment,
disengagement, satisfaction, repetition) give the row's index in the whole
conversation; execution and environment signals (failure, loops,
exhaustion) its index in the analysed window; dragging the last row of the
window made absolute (see `stagnation.analyze_stagnation` for the repeated
shift Plano applies to repetition indexes in a long conversation).  For
conversations of at most 100 rows all of these are the same.

Bounds: human and assistant texts are cut to `MAX_MESSAGE_LENGTH`
characters (first fifth, last four fifths) before anything reads them, as
Plano does.  Tool outputs are cut the same way before the error patterns
run (Plano reads them whole; its regex engine is linear, Python's is not,
and a tool can print megabytes).  Call rows are only JSON-decoded and
compared, which is linear.  So one analysis costs time linear in at most
100 x 2,000 characters of text.  Messages and tool outputs seen in recent
calls are remembered with what was computed about them (a client resends
the whole conversation every call), so a later call of the same
conversation costs about its new messages.
"""

from __future__ import annotations

from collections.abc import Sequence

from .disengagement import analyze_disengagement
from .errortext import forget_tool_outputs
from .exhaustion import analyze_exhaustion
from .failure import analyze_failure
from .loops import analyze_loops
from .misalignment import analyze_misalignment
from .report import SignalReport, assess
from .satisfaction import analyze_satisfaction
from .stagnation import analyze_stagnation
from .text import head_and_tail, normalized

MAX_MESSAGES = 100
MAX_MESSAGE_LENGTH = 2000


def analyze_rows(rows: Sequence[tuple[str, str]]) -> SignalReport:
    """Plano's full analysis of a ShareGPT conversation."""
    offset = max(len(rows) - MAX_MESSAGES, 0)
    window = [
        (role, head_and_tail(value, MAX_MESSAGE_LENGTH) if role == "observation" else value)
        for role, value in rows[offset:]
    ]
    spoken = [
        (offset + index, role, normalized(value, MAX_MESSAGE_LENGTH))
        for index, (role, value) in enumerate(window)
        if role in ("human", "gpt") and value
    ]
    misalignment = analyze_misalignment(spoken)
    stagnation, turns = analyze_stagnation([role for role, _ in window], spoken, offset)
    disengagement = analyze_disengagement(spoken)
    satisfaction = analyze_satisfaction(spoken)
    failure = analyze_failure(window)
    loops = analyze_loops(window)
    exhaustion = analyze_exhaustion(window)
    quality, score = assess(
        (misalignment, stagnation, disengagement, satisfaction),
        (failure, loops),
        exhaustion,
        turns.user_turns,
    )
    return SignalReport(
        misalignment=misalignment,
        stagnation=stagnation,
        disengagement=disengagement,
        satisfaction=satisfaction,
        failure=failure,
        loops=loops,
        exhaustion=exhaustion,
        quality=quality,
        quality_score=score,
        turns=turns,
    )


def forget() -> None:
    """Drop the remembered messages and tool-output answers (see `text.normalized`, `errortext`).

    Only for measuring a first analysis, and for tests; results never
    depend on what is remembered.
    """
    normalized.cache_clear()
    forget_tool_outputs()
