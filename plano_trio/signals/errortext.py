"""Finding error phrases in tool output: Plano's regex lists, matched in bounded time, and their snippets.

A list of patterns is one alternation searched in the lowercased output,
case-insensitively; the leftmost match wins, and at one position the
earliest pattern, as in Rust's `regex` (Python's `re` has the same
leftmost-first rule).  Three things keep the answers Plano's while keeping
Python's backtracking engine linear on hostile text:

- `\\s` is Rust's whitespace (Unicode White_Space), spelled out, because
  Python's also matches \\x1c-\\x1f;
- `\\s*:?\\s*` and `\\s*,?\\s*` are made possessive (`\\s*+:?+\\s*+`).  The
  two runs can only meet at the separator, so giving back whitespace
  never helps a match; the same text matches, with the same extent, while
  "error" followed by 2,000 spaces costs one pass instead of millions;
- `exceeded\\s+.*\\s+limit` (rate limits) is not given to `re` at all:
  with whitespace matching both `\\s` and `.`, its backtracking is cubic
  (5 s for "exceeded" and 2,000 spaces).  `_exceeded_limit` finds the
  same match, with the extent greedy backtracking would give, by scanning.

Snippets are cut as Plano cuts them: 50 bytes either side of the match,
measured in UTF-8 bytes of the *lowercased* text but applied to the
original (they differ only where lowercasing changes a character's byte
length), widened to whole characters, with "..." where text was cut.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from .text import RUST_WHITESPACE

SNIPPET_CONTEXT = 50

_SPACE = f"[{re.escape(RUST_WHITESPACE)}]"
_POSSESSIVE = ((r"\s*:?\s*", r"\s*+:?+\s*+"), (r"\s*,?\s*", r"\s*+,?+\s*+"))
_WHITESPACE = frozenset(RUST_WHITESPACE)


class Found(NamedTuple):
    """A match in the lowercased text: character offsets and the matched (lowercased) text."""

    start: int
    end: int
    text: str


def _exceeded_limit(text: str) -> Found | None:
    """The leftmost match of `exceeded\\s+.*\\s+limit` in `text`, with greedy backtracking's extent.

    At an "exceeded" followed by a whitespace run W: the first `\\s+` takes
    all of W, `.*` runs to the end of the line and backs off until a
    whitespace run followed by "limit" starts, so the last such run that
    starts on this line wins (it may continue past the newline).  Only if
    there is none, and W has two or more characters and "limit" directly
    follows it, does the first `\\s+` give back a character to let the
    second one match: the match then ends right after that "limit".
    """
    position = 0
    while (start := text.find("exceeded", position)) >= 0:
        position = start + 1
        run_start = start + len("exceeded")
        run_end = _run_end(text, run_start)
        if run_end == run_start:
            continue
        newline = text.find("\n", run_end)
        line_end = len(text) if newline < 0 else newline
        limit_at = text.rfind("limit", run_end + 1, _run_end(text, line_end) + len("limit"))
        while limit_at >= 0:
            before = _run_start(text, limit_at)
            if before < limit_at and before <= line_end:
                return Found(start, limit_at + 5, text[start : limit_at + 5])
            limit_at = text.rfind("limit", run_end + 1, limit_at + len("limit") - 1)
        if run_end - run_start >= 2 and text.startswith("limit", run_end):
            return Found(start, run_end + 5, text[start : run_end + 5])
    return None


def _run_end(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


def _run_start(text: str, index: int) -> int:
    while index > 0 and text[index - 1] in _WHITESPACE:
        index -= 1
    return index


_SCANNERS: dict[str, Callable[[str], Found | None]] = {r"exceeded\s+.*\s+limit": _exceeded_limit}


def _compile(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    sources = []
    for pattern in patterns:
        for slow, fast in _POSSESSIVE:
            pattern = pattern.replace(slow, fast)
        sources.append(f"(?:{pattern.replace(chr(92) + 's', _SPACE)})")
    return re.compile("|".join(sources), re.IGNORECASE)


class ErrorPatterns:
    """One of Plano's pattern lists, searched as one leftmost-first alternation."""

    __slots__ = ("_after", "_before", "_scanner")

    def __init__(self, patterns: tuple[str, ...]) -> None:
        special = [index for index, pattern in enumerate(patterns) if pattern in _SCANNERS]
        split = special[0] if special else len(patterns)
        self._scanner = _SCANNERS[patterns[split]] if special else None
        self._before = _compile(patterns[:split])
        self._after = _compile(patterns[split + 1 :])

    def search(self, lower: str) -> Found | None:
        """The leftmost match in already-lowercased text, or None.

        At equal starts the patterns listed first win: those before the
        scanned one, then it, then those after.
        """
        candidates: list[tuple[int, int, Found]] = []
        for rank, regex in ((0, self._before), (2, self._after)):
            match = regex.search(lower) if regex is not None else None
            if match is not None:
                candidates.append((match.start(), rank, Found(match.start(), match.end(), match.group())))
        scanned = self._scanner(lower) if self._scanner is not None else None
        if scanned is not None:
            candidates.append((scanned.start, 1, scanned))
        return min(candidates, key=lambda candidate: candidate[:2])[2] if candidates else None


def snippet(value: str, lower: str, found: Found) -> str:
    """Plano's snippet: 50 bytes either side of the match, whole characters, "..." where cut."""
    if value.isascii() and len(lower) == len(value):
        start = max(found.start - SNIPPET_CONTEXT, 0)
        end = min(found.end + SNIPPET_CONTEXT, len(value))
        return f"{'...' if start > 0 else ''}{value[start:end]}{'...' if end < len(value) else ''}"
    original = value.encode("utf-8", "surrogatepass")
    start = max(len(lower[: found.start].encode("utf-8", "surrogatepass")) - SNIPPET_CONTEXT, 0)
    end = min(len(lower[: found.end].encode("utf-8", "surrogatepass")) + SNIPPET_CONTEXT, len(original))
    start = _boundary(original, start, forward=False)
    end = _boundary(original, end, forward=True)
    cut = original[start:end].decode("utf-8", "surrogatepass") if start < end else ""
    return f"{'...' if start > 0 else ''}{cut}{'...' if end < len(original) else ''}"


def _boundary(data: bytes, index: int, *, forward: bool) -> int:
    """`index` moved to a UTF-8 character boundary (Plano's `align_char_boundary`)."""
    if index >= len(data):
        return len(data)
    while data[index] & 0xC0 == 0x80:
        if forward:
            index += 1
            if index >= len(data):
                return len(data)
        elif index == 0:
            break
        else:
            index -= 1
    return index
