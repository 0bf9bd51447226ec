"""The tool-error pattern engine: the same matches as the plain alternation, in bounded time."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plano_trio.signals import exhaustion, failure
from plano_trio.signals.errortext import ErrorPatterns, Found, anchors, required_words

LISTS: dict[str, ErrorPatterns] = {
    "invalid_args": failure.INVALID_ARGS,
    "bad_query": failure.BAD_QUERY,
    "tool_not_found": failure.TOOL_NOT_FOUND,
    "auth_misuse": failure.AUTH_MISUSE,
    "state_error": failure.STATE_ERROR,
    "api_error": exhaustion.API_ERROR,
    "timeout": exhaustion.TIMEOUT,
    "rate_limit": exhaustion.RATE_LIMIT,
    "network": exhaustion.NETWORK,
    "malformed": exhaustion.MALFORMED,
    "context_overflow": exhaustion.CONTEXT_OVERFLOW,
}


def reference(patterns: ErrorPatterns, text: str) -> Found | None:
    """Plano's way, with Python's engine: the patterns as one case-insensitive alternation."""
    match = re.search("|".join(f"(?:{p})" for p in patterns.patterns), text, re.IGNORECASE)
    return None if match is None else Found(match.start(), match.end(), match.group())


# Words of the patterns, and the separators that make their quantifiers backtrack.
WORDS = sorted({word for patterns in LISTS.values() for p in patterns.patterns for word in required_words(p)})
PIECES = [
    *WORDS,
    " ",
    " ",
    "  ",
    "\n",
    "\t",
    ":",
    ",",
    "x",
    "a",
    "an",
    "s",
    "d",
    "ed",
    "ing",
    "_",
    "-",
    "...",
]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(LISTS)), st.lists(st.sampled_from(PIECES), max_size=24))
def test_same_match_as_the_plain_alternation(name: str, pieces: list[str]) -> None:
    """ASCII text: start, end and matched text as `re` finds them with Plano's patterns unchanged."""
    text = "".join(pieces)
    assert LISTS[name].search(text) == reference(LISTS[name], text)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["exceeded", "limit", " ", "  ", "\n", "\t", "x", "limits", "y "]), max_size=16)
)
def test_exceeded_limit_scan_has_greedy_backtracking_extent(pieces: list[str]) -> None:
    text = "".join(pieces)
    pattern = ErrorPatterns((r"exceeded\s+.*\s+limit",))
    assert pattern.search(text) == reference(pattern, text)


UNICODE = [
    # (text, list, expected matched text): where Python's classes differ from Rust's, Rust's are used.
    (
        "must call i\u0307nit first",
        "state_error",
        "must call i\u0307nit first",
    ),  # a combining mark is a word character
    ("expected x\u00b2 got y", "invalid_args", None),  # "²" is not (Rust's \w has no other numbers)
    ("\u017ftatus: 429", "rate_limit", "\u017ftatus: 429"),  # long s folds to s
    ("error\x1c401", "auth_misuse", None),  # \x1c is not whitespace to Rust
    ("\u0131nvalid argument", "invalid_args", None),  # dotless i does not fold to i
]


@pytest.mark.parametrize(("text", "name", "expected"), UNICODE)
def test_rust_character_classes(text: str, name: str, expected: str | None) -> None:
    found = LISTS[name].search(text)
    assert (found.text if found else None) == expected


HOSTILE = [
    "exceeded" + " " * 1992,  # cubic for `exceeded\s+.*\s+limit` in `re`: seconds
    "error" + " " * 1995,  # quadratic for `(status|error|http|code)\s*:?\s*401`
    "expected a" + " \t" * 995,
    "exceeded " * 222,
    "syntax error " * 153,
    "must " * 400,
    "is " * 666,
    "a" * 2000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda text: repr(text[:12]))
def test_hostile_output_is_searched_in_bounded_time(text: str) -> None:
    for patterns in LISTS.values():
        patterns.search("warm up")
    start = time.process_time()
    for patterns in LISTS.values():
        patterns.search(text[:2000])
    assert (
        time.process_time() - start < 0.25
    )  # milliseconds in practice; `re` alone takes seconds on the first


@pytest.mark.parametrize(
    ("pattern", "heads", "words"),
    [
        (r"invalid\s+argument", ("invalid",), ("invalid", "argument")),
        (r"(status|error|http|code)\s*:?\s*401", ("status", "error", "http", "code"), ("401",)),
        (r"\bunauthorized\b", ("unauthorized",), ("unauthorized",)),
        (r"timed?\s*out", ("time",), ("time", "out")),
        (r"max(imum)?\s+tokens?", ("max",), ("max", "token")),
        (r"rate.limited", ("rate",), ("rate", "limited")),
        (r"exceeded\s+.*\s+limit", ("exceeded",), ("exceeded", "limit")),
    ],
)
def test_literal_starts_and_required_words(
    pattern: str, heads: tuple[str, ...], words: tuple[str, ...]
) -> None:
    assert anchors(pattern) == heads
    assert required_words(pattern) == words


def test_a_pattern_without_a_literal_start_is_refused() -> None:
    with pytest.raises(ValueError, match="no literal start"):
        ErrorPatterns((r"(a|b)?c",))
