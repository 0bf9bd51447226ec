"""Each detector on hand-written conversations: present, absent, and at its thresholds."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plano_trio.signals import Signal, SignalReport, analyze_rows
from plano_trio.signals.disengagement import COMPLAINT, ESCALATION, PROFANITY, QUIT
from plano_trio.signals.misalignment import CLARIFICATION, CORRECTION, REPHRASE
from plano_trio.signals.phrases import Family
from plano_trio.signals.satisfaction import CONFIRMATION, GRATITUDE, SUCCESS
from plano_trio.signals.stagnation import analyze_dragging
from plano_trio.signals.text import NormalizedMessage, matches

Rows = list[tuple[str, str]]


def human(text: str) -> tuple[str, str]:
    return ("human", text)


def gpt(text: str) -> tuple[str, str]:
    return ("gpt", text)


def call(name: str, arguments: object = "{}") -> tuple[str, str]:
    return ("function_call", json.dumps({"name": name, "arguments": arguments}, separators=(",", ":")))


def tool(text: str) -> tuple[str, str]:
    return ("observation", text)


def kinds(report: SignalReport) -> list[tuple[str, int]]:
    """(type, message index) of every signal, in emission order."""
    return [(signal.type.value, signal.message_index) for signal in report.signals()]


def only(report: SignalReport, kind: str) -> Signal:
    found = [signal for signal in report.signals() if signal.type.value == kind]
    assert len(found) == 1, kinds(report)
    return found[0]


# -- misalignment ------------------------------------------------------------------------------------

MISALIGNMENT: list[tuple[str, Rows, list[tuple[str, int]]]] = [
    (
        "correction",
        [human("Show me my orders"), gpt("Here are your invoices"), human("No, I meant my recent orders")],
        [("interaction.misalignment.correction", 2)],
    ),
    (
        "rephrase phrase",
        [human("Show me X"), gpt("Sure"), human("In other words, X by date")],
        [("interaction.misalignment.rephrase", 2)],
    ),
    (
        "clarification",
        [human("Run the report"), gpt("Foobar quux."), human("That makes no sense to me")],
        [("interaction.misalignment.clarification", 2)],
    ),
    (
        "semantic rephrase two messages later",
        [
            human("Please list the unpaid invoices for customer Acme in March"),
            gpt("Here are all invoices."),
            human("List unpaid invoices for customer Acme in March please"),
        ],
        [("interaction.misalignment.rephrase", 2)],
    ),
    (
        "semantic rephrase four messages later is too far",
        [
            human("Please list the unpaid invoices for customer Acme in March"),
            gpt("Here are all invoices."),
            gpt("Anything else?"),
            gpt("I can also export them."),
            human("List unpaid invoices for customer Acme in March please"),
        ],
        [],
    ),
    (
        "a confirmation is not a rephrase",
        [
            human("Please list the unpaid invoices for customer Acme in March"),
            gpt("Should I list them?"),
            human("Yes, list unpaid invoices for customer Acme in March"),
        ],
        [],
    ),
    (
        "three content words are too few for a rephrase",
        [human("the unpaid invoices please"), gpt("Done."), human("unpaid invoices the please")],
        [],
    ),
    ("plain questions", [human("What is the capital of France?"), gpt("Paris."), human("And of Spain?")], []),
]


@pytest.mark.parametrize(
    ("rows", "expected"), [case[1:] for case in MISALIGNMENT], ids=[c[0] for c in MISALIGNMENT]
)
def test_misalignment(rows: Rows, expected: list[tuple[str, int]]) -> None:
    report = analyze_rows(rows)
    assert [(s.type.value, s.message_index) for s in report.misalignment.signals] == expected


def test_misalignment_signal_details() -> None:
    report = analyze_rows(MISALIGNMENT[0][1])
    signal = only(report, "interaction.misalignment.correction")
    assert (signal.snippet, signal.confidence, signal.metadata) == (
        "no, i meant",
        1.0,
        '{"pattern_type":"correction"}',
    )
    semantic = only(analyze_rows(MISALIGNMENT[3][1]), "interaction.misalignment.rephrase")
    assert semantic.snippet == "[similar rephrase detected]"
    assert semantic.confidence == pytest.approx(0.8, abs=1e-7)
    assert json.loads(semantic.metadata) == {"pattern_type": "semantic_rephrase", "compared_to": 0}


# -- stagnation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_turns", "efficiency", "dragging"),
    [
        (0, 1.0, False),
        (5, 1.0, False),
        (6, 0.800000011920929, False),
        (9, 0.5, False),
        (10, 0.4444444477558136, True),
    ],
)
def test_dragging_efficiency_and_threshold(user_turns: int, efficiency: float, dragging: bool) -> None:
    group, metrics = analyze_dragging(["human", "gpt"] * user_turns)
    assert (metrics.total_turns, metrics.efficiency_score, metrics.is_dragging) == (
        user_turns,
        efficiency,
        dragging,
    )
    assert group.count == int(dragging)


def test_dragging_counts_empty_user_messages_and_points_at_the_last_row() -> None:
    rows = [human("")] * 10 + [gpt("done")]
    report = analyze_rows(rows)
    signal = only(report, "interaction.stagnation.dragging")
    assert signal.message_index == 10
    assert report.turns.user_turns == 10


REPEATED = "This widget is broken and needs repair right now"

REPETITION: list[tuple[str, Rows, list[tuple[str, int]]]] = [
    ("exact user repetition", [human(REPEATED), gpt("Looking."), human(REPEATED)], [("exact", 2)]),
    (
        "near duplicate",
        [
            gpt("I suggest visiting the old town first and then the museum district in the afternoon."),
            human("ok"),
            gpt("I suggest visiting the old town first and then the museum district in the late afternoon."),
        ],
        [("near_duplicate", 2)],
    ),
    (
        "only the last two of the same role are compared",
        [
            human(REPEATED),
            human("What about the blue widgets then?"),
            human("And the green ones, are they fine?"),
            human(REPEATED),
        ],
        [],
    ),
    ("fewer than five tokens", [human("it is broken now"), human("it is broken now")], []),
    ("positive openings are not tested", [human("Thanks, " + REPEATED), human("Thanks, " + REPEATED)], []),
    ("roles are compared apart", [human(REPEATED), gpt(REPEATED)], []),
]


@pytest.mark.parametrize(
    ("rows", "expected"), [case[1:] for case in REPETITION], ids=[c[0] for c in REPETITION]
)
def test_repetition(rows: Rows, expected: list[tuple[str, int]]) -> None:
    report = analyze_rows(rows)
    found = [
        (json.loads(s.metadata)["repetition_type"], s.message_index)
        for s in report.stagnation.signals
        if s.type.value == "interaction.stagnation.repetition"
    ]
    assert found == expected


# -- disengagement -----------------------------------------------------------------------------------

DISENGAGEMENT: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("shouting", "WHY IS THIS BROKEN AGAIN", [("negative_stance", "all_caps")]),
    ("eight of ten letters upper is shouting", "ABCDEFGHij", [("negative_stance", "all_caps")]),
    ("seven of ten is not", "ABCDEFGhij", []),
    ("nine letters are too few", "ABCDEFGHI", []),
    ("double question mark", "Are you even listening??", [("negative_stance", "excessive_punctuation")]),
    ("positive opening excuses punctuation", "Yes!! It works!!", []),
    ("escalation", "This is taking forever, get me a human", [("escalation", "escalation")]),
    ("escalation silences complaints", "this is useless, get me a human", [("escalation", "escalation")]),
    ("quit", "Forget it, I give up", [("quit", "quit")]),
    ("complaint", "You are not helping at all", [("negative_stance", "complaint")]),
    (
        "a short message matches what it shares most words with (cosine >= 0.6)",
        "This is useless",
        [("quit", "quit"), ("negative_stance", "profanity")],  # "this is hopeless", "this is bullshit"
    ),
    ("profanity silences complaints", "this is bullshit and useless", [("negative_stance", "profanity")]),
    ("ordinary request", "Please book the 9am train", []),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in DISENGAGEMENT], ids=[c[0] for c in DISENGAGEMENT]
)
def test_disengagement(text: str, expected: list[tuple[str, str]]) -> None:
    report = analyze_rows([human(text)])
    found = []
    for signal in report.disengagement.signals:
        details = json.loads(signal.metadata)
        found.append(
            (signal.type.value.rsplit(".", 1)[1], details.get("indicator_type", details.get("pattern_type")))
        )
    assert found == expected


def test_disengagement_details() -> None:
    caps = analyze_rows([human("ABCDEFGHij")]).disengagement.signals[0]
    assert caps.metadata == '{"indicator_type":"all_caps","upper_ratio":0.800000011920929}'
    punctuation = analyze_rows([human("What?!? Really??")]).disengagement.signals[0]
    assert json.loads(punctuation.metadata) == {
        "indicator_type": "excessive_punctuation",
        "consecutive_questions": 1,
        "consecutive_exclamations": 0,
        "mixed_punctuation": 1,
    }
    assert punctuation.snippet == "What?!? Really??"


def test_escalation_or_quit_makes_the_conversation_severe() -> None:
    for text in ("get me a human", "i give up"):
        report = analyze_rows([human("book a table"), gpt("done"), human(text)])
        assert (report.quality.value, report.quality_score, report.concerning) == ("severe", 0.0, True)


# -- satisfaction ------------------------------------------------------------------------------------

SATISFACTION: list[tuple[str, str, str | None]] = [
    ("gratitude", "That's perfect, appreciate it!", "gratitude"),
    ("confirmation", "That works for me", "confirmation"),
    ("success", "Great, it worked!", "success"),
    ("gratitude wins over success", "that worked, you're awesome", "gratitude"),
    ("neutral", "Send it to the billing team", None),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in SATISFACTION], ids=[c[0] for c in SATISFACTION]
)
def test_satisfaction(text: str, expected: str | None) -> None:
    signals = analyze_rows([human(text)]).satisfaction.signals
    assert [s.type.value.rsplit(".", 1)[1] for s in signals] == ([expected] if expected else [])


def test_assistant_messages_are_not_read_for_user_signals() -> None:
    report = analyze_rows([gpt("No, I meant that. Get me a human. Thanks, that worked!!")])
    assert report.types() == {}


# -- execution failure -------------------------------------------------------------------------------

FAILURE: list[tuple[str, str, str | None, float]] = [
    (
        "invalid args",
        "Error: validation failed - expected integer got string",
        "invalid_args",
        0.8999999761581421,
    ),
    ("tool not found", "Error: unknown function 'send_thought'", "tool_not_found", 0.949999988079071),
    ("auth", "HTTP 401 Unauthorized", "auth_misuse", 0.800000011920929),
    ("state", "must call begin_tx first", "state_error", 0.8500000238418579),
    ("bad query, said to be an error", "Error: unknown field 'colour'", "bad_query", 0.800000011920929),
    ("bad query, not said", "unknown field 'colour' in filter", "bad_query", 0.6000000238418579),
    (
        "invalid args is tested first",
        "403 forbidden: invalid value for id",
        "invalid_args",
        0.8999999761581421,
    ),
    ("a result", "3 rows returned", None, 0.0),
]


@pytest.mark.parametrize(
    ("output", "expected", "confidence"), [case[1:] for case in FAILURE], ids=[c[0] for c in FAILURE]
)
def test_failure(output: str, expected: str | None, confidence: float) -> None:
    report = analyze_rows([human("go"), call("search", '{"q":1}'), tool(output)])
    signals = report.failure.signals
    assert [s.type.value.rsplit(".", 1)[1] for s in signals] == ([expected] if expected else [])
    if expected:
        assert signals[0].confidence == confidence
        assert json.loads(signals[0].metadata)["tool_name"] == "search"
        assert json.loads(signals[0].metadata)["call_index"] == 1


def test_failure_without_a_call_names_no_tool() -> None:
    signal = analyze_rows([human("go"), gpt("running"), tool("permission denied")]).failure.signals[0]
    assert json.loads(signal.metadata) == {
        "tool_name": "unknown",
        "call_index": 1,
        "error_type": "auth_misuse",
        "matched": "permission denied",
    }


def test_failure_snippet_is_fifty_bytes_around_the_match() -> None:
    output = "x" * 80 + " permission denied " + "y" * 80
    snippet = analyze_rows([tool(output)]).failure.signals[0].snippet
    assert snippet == "..." + "x" * 49 + " permission denied " + "y" * 49 + "..."
    # Bytes, not characters, and never half a character: "é" is two bytes.
    accented = "é" * 40 + "permission denied"
    snippet = analyze_rows([tool(accented)]).failure.signals[0].snippet
    assert snippet == "..." + "é" * 25 + "permission denied"


# -- loops -------------------------------------------------------------------------------------------

LOOPS: list[tuple[str, Rows, list[str]]] = [
    ("two identical calls are not a retry", [call("check", {"id": 1})] * 2, []),
    ("three are", [call("check", {"id": 1})] * 3, ["retry"]),
    (
        "key order does not make arguments differ",
        [call("check", {"a": 1, "b": 2}), call("check", {"b": 2, "a": 1})] * 2,
        ["retry"],
    ),
    (
        "1 and 1.0 differ, as in JSON values",
        [call("check", {"id": 1}), call("check", {"id": 1.0}), call("check", {"id": 1})],
        ["parameter_drift"],
    ),
    ("drift", [call("search", {"q": q}) for q in ("a", "ab", "abc")], ["parameter_drift"]),
    ("two varied calls are not drift", [call("search", {"q": q}) for q in ("a", "ab")], []),
    ("a retry inside a run hides its drift", [call("s", "1")] * 3 + [call("s", "2")], ["retry"]),
    ("oscillation", [call(name) for name in ("A", "B") * 3], ["oscillation"]),
    ("two cycles are not", [call(name) for name in ("A", "B") * 2], []),
    ("three-tool cycle", [call(name) for name in ("A", "B", "C") * 3], ["oscillation"]),
    (
        "call syntax rows",
        [
            ("function_call", 'get({"a": 1})'),
            ("function_call", 'get({"a":1})'),
            ("function_call", 'get({"a": 1})'),
        ],
        ["retry"],
    ),
]


@pytest.mark.parametrize(("rows", "expected"), [case[1:] for case in LOOPS], ids=[c[0] for c in LOOPS])
def test_loops(rows: Rows, expected: list[str]) -> None:
    assert [s.type.value.rsplit(".", 1)[1] for s in analyze_rows(rows).loops.signals] == expected


def test_loop_details() -> None:
    retry = analyze_rows([human("go"), *[call("check", {"id": 1})] * 4]).loops.signals[0]
    assert retry.snippet == "Tool 'check' called 4 times with identical arguments"
    assert retry.message_index == 1
    assert json.loads(retry.metadata) == {
        "tool_name": "check",
        "start_index": 1,
        "end_index": 4,
        "call_count": 4,
        "loop_type": "retry",
    }
    oscillation = analyze_rows([call(name) for name in ("A", "B") * 3]).loops.signals[0]
    assert oscillation.snippet == "Oscillation pattern [A \u2192 B] repeated 3 times"
    assert json.loads(oscillation.metadata)["pattern"] == ["A", "B"]


# -- exhaustion --------------------------------------------------------------------------------------

EXHAUSTION: list[tuple[str, str, str | None]] = [
    ("rate limit", "HTTP 429: too many requests", "rate_limit"),
    ("rate limit is tested before timeouts", "request timed out: rate limit", "rate_limit"),
    ("api error", "502 Bad Gateway", "api_error"),
    ("timeout", "deadline exceeded", "timeout"),
    ("network", "getaddrinfo ENOTFOUND api.example.com", "network"),
    ("malformed", "failed to decode body", "malformed_response"),
    ("context overflow", "prompt too long for this model", "context_overflow"),
    ("exceeded ... limit", "you exceeded the daily limit", "rate_limit"),
    ("fine", "200 OK", None),
]


@pytest.mark.parametrize(
    ("output", "expected"), [case[1:] for case in EXHAUSTION], ids=[c[0] for c in EXHAUSTION]
)
def test_exhaustion(output: str, expected: str | None) -> None:
    signals = analyze_rows([tool(output)]).exhaustion.signals
    assert [s.type.value.rsplit(".", 1)[1] for s in signals] == ([expected] if expected else [])


def test_long_tool_output_is_cut_before_the_patterns() -> None:
    """An error in the middle of a long output is past the 2,000-character cut (Plano reads it whole)."""
    middle = "a" * 2000 + " permission denied " + "a" * 2000
    tail = "a" * 4000 + " permission denied"
    assert analyze_rows([tool(middle)]).failure.count == 0
    assert analyze_rows([tool(tail)]).failure.count == 1


# -- the phrase index gives the reference matcher's answers ------------------------------------------

FAMILIES: list[Family] = [
    CORRECTION,
    REPHRASE,
    CLARIFICATION,
    ESCALATION,
    QUIT,
    COMPLAINT,
    PROFANITY,
    GRATITUDE,
    CONFIRMATION,
    SUCCESS,
]
FILLER = (
    "the",
    "a",
    "my",
    "order",
    "thanks",
    "please",
    "why",
    "not",
    "it",
    "is",
    "no",
    "you",
    "me",
    "that's",
)
FRAGMENTS = [pattern.raw for family in FAMILIES for pattern in family.patterns] + list(FILLER)


@st.composite
def messages(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=6))
    text = " ".join(parts)
    cuts = draw(st.lists(st.integers(0, max(len(text) - 1, 0)), max_size=3))
    for cut in sorted(set(cuts), reverse=True):
        text = text[:cut] + text[cut + 1 :]  # typos
    return text


@settings(max_examples=300, deadline=None)
@given(messages())
def test_phrase_index_agrees_with_matching_each_pattern(text: str) -> None:
    message = NormalizedMessage(text, 2000)
    for family in FAMILIES:
        expected = next((p for p in family.patterns if matches(NormalizedMessage(text, 2000), p)), None)
        assert family.first_match(message) is expected, (text, [p.raw for p in family.patterns][:3])
