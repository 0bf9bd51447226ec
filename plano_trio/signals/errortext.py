"""Finding error phrases in tool output: Plano's regex lists, matched in bounded time, and their snippets.

A list of patterns is one alternation searched in the lowercased output;
the leftmost match wins, and at one position the earliest pattern, as in
Rust's `regex` (Python's `re` has the same leftmost-first rule).  Plano
also matches case-insensitively; after lowercasing that only still matters
for the long s (U+017F), which folds to "s": every literal "s" here also
matches it (Python's IGNORECASE would also let the dotless i match "i",
which Rust's folding does not).
These things keep the answers Plano's while keeping Python's backtracking
engine linear on hostile text:

- `\\s` is Rust's whitespace (Unicode White_Space), spelled out, because
  Python's also matches \\x1c-\\x1f; `\\w` (and so `\\b`) is Rust's too
  (`_word`): lowercasing "İ" yields "i" and a combining dot, which must
  not end a word;
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

import functools
import re
import unicodedata
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


def _exceeded_limit(text: str, start: int) -> Found | None:
    """The match of `exceeded\\s+.*\\s+limit` at `start`, with greedy backtracking's extent.

    After "exceeded" comes a whitespace run W.  The first `\\s+` takes all
    of W, `.*` runs to the end of the line and backs off until a whitespace
    run followed by "limit" starts, so the last such run that starts on
    this line wins (it may continue past the newline).  Only if there is
    none, and W has two or more characters and "limit" directly follows it,
    does the first `\\s+` give back a character to let the second one
    match: the match then ends right after that "limit".
    """
    if not text.startswith("exceeded", start):
        return None
    run_start = start + len("exceeded")
    run_end = _run_end(text, run_start)
    if run_end == run_start:
        return None
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


Matcher = Callable[[str, int], Found | None]
"""A pattern (or a run of them) tried at one position of the text."""

_SCANNERS: dict[str, Matcher] = {r"exceeded\s+.*\s+limit": _exceeded_limit}


@functools.cache
def _word() -> str:
    """Rust's `\\w` in Python's dialect: Python's less other numbers, plus marks, connectors, joiners.

    Python counts "²" and "½" (Unicode No) as word characters, Rust does
    not; Rust counts combining marks, connector punctuation and the
    zero-width joiners, Python does not.  Built once, on the first search
    (about 60 ms): those characters only occur below U+20000 and among the
    variation selectors at U+E0100.
    """
    ranges: dict[bool, list[str]] = {False: [], True: ["\u200c\u200d"]}
    start: tuple[int, bool] | None = None
    for code in (*range(0x20000), *range(0xE0000, 0xE0200), 0x110000):
        category = unicodedata.category(chr(code)) if code < 0x110000 else ""
        kind = None if category not in ("No", "Mn", "Mc", "Me", "Pc") else category != "No"
        if start is not None and kind != start[1]:
            ranges[start[1]].append(f"{re.escape(chr(start[0]))}-{re.escape(chr(code - 1))}")
            start = None
        if start is None and kind is not None:
            start = (code, kind)
    return f"(?:[^\\W{''.join(ranges[False])}]|[{''.join(ranges[True])}])"


def _translate(pattern: str) -> str:
    """One of Plano's patterns in Python's dialect with Rust's classes (see the module docstring)."""
    for slow, fast in _POSSESSIVE:
        pattern = pattern.replace(slow, fast)
    pattern = "\\s".join(part.replace("s", "[s\u017f]") for part in pattern.split("\\s"))
    word = _word()
    boundary = f"(?:(?<!{word})(?={word})|(?<={word})(?!{word}))"
    return pattern.replace("\\s", _SPACE).replace("\\w", word).replace("\\b", boundary)


def _regex(patterns: tuple[str, ...]) -> Matcher:
    """Consecutive patterns as one alternation tried at a position (the first listed that matches wins)."""
    regex = re.compile("|".join(f"(?:{_translate(pattern)})" for pattern in patterns))

    def match(text: str, position: int) -> Found | None:
        found = regex.match(text, position)
        return None if found is None else Found(found.start(), found.end(), found.group())

    return match


_META = frozenset("\\()[].?*+|{^$")


def anchors(pattern: str) -> tuple[str, ...]:
    """The literal texts one of which every match of `pattern` starts with (a leading `\\b` aside)."""
    body = pattern.removeprefix("\\b")
    if body.startswith("("):
        close = body.index(")")
        if body[close + 1 : close + 2] in ("?", "*"):
            raise ValueError(f"{pattern!r} has no literal start")
        heads = tuple(_literal(alternative) for alternative in body[1:close].split("|"))
    else:
        heads = (_literal(body),)
    if not all(heads):
        raise ValueError(f"{pattern!r} has no literal start")
    return heads


def _literal(text: str) -> str:
    """The literal characters `text` starts with, less one made optional by a following `?` or `*`."""
    prefix: list[str] = []
    for char in text:
        if char in _META:
            if char in "?*{" and prefix:
                prefix.pop()
            break
        prefix.append(char)
    return "".join(prefix)


def required_words(pattern: str) -> tuple[str, ...]:
    """Literal texts every match of `pattern` contains: its literal runs outside groups.

    A character made optional by `?` or `*` is left out, and `.` or an
    escape (`\\s`, `\\w`, `\\b`) ends a run.
    """
    words: list[str] = []
    run: list[str] = []
    depth = 0
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char in "?*" and run:
            run.pop()
        if char == "\\" or char in _META:
            if run and depth == 0:
                words.append("".join(run))
            run = []
            depth += (char == "(") - (char == ")")
            index += 2 if char == "\\" else 1
            continue
        run.append(char)
        index += 1
    if run and depth == 0:
        words.append("".join(run))
    return tuple(word for word in words if word)


_VOCABULARY: set[str] = set()
"""Every required word of every pattern list (filled as the lists are created, at import)."""


class ToolOutput:
    """One tool output as the error patterns read it, with the look-ups every pattern list shares."""

    __slots__ = ("_present", "_starts", "folded", "lower", "value")

    def __init__(self, value: str) -> None:
        self.value = value
        self.lower = value.lower()
        self.folded = self.lower.replace("\u017f", "s") if "\u017f" in self.lower else self.lower
        """`lower` with the long s as "s" (Rust's case folding): one character each, positions carry over."""
        self._present: frozenset[str] | None = None
        self._starts: dict[str, list[int]] = {}

    def present(self) -> frozenset[str]:
        """The patterns' required words that occur in the text (one substring search each, once)."""
        if self._present is None:
            self._present = frozenset(word for word in _VOCABULARY if word in self.folded)
        return self._present

    def starts(self, head: str) -> list[int]:
        """Every position where `head` occurs."""
        found = self._starts.get(head)
        if found is None:
            found = self._starts[head] = []
            at = self.folded.find(head)
            while at >= 0:
                found.append(at)
                at = self.folded.find(head, at + 1)
        return found


class ErrorPatterns:
    """One of Plano's pattern lists, searched as one leftmost-first alternation.

    `re` tries every alternative at every position of the text, which for
    eleven lists over 2,000 characters costs milliseconds.  Every pattern,
    though, starts with one of a few literal words and contains others:
    a pattern whose words are not all in the text cannot match, and one
    that can only starts where its first word occurs.  Those positions are
    found with `str.find` (shared by all lists through `ToolOutput`) and
    the patterns tried there only, in order: at a position the patterns
    listed first win, as in one alternation.
    """

    __slots__ = ("_entries", "_matchers", "patterns")

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.patterns = patterns
        self._entries = tuple((anchors(pattern), frozenset(required_words(pattern))) for pattern in patterns)
        _VOCABULARY.update(word for _, words in self._entries for word in words)
        self._matchers: tuple[Matcher, ...] | None = None

    def _ready(self) -> tuple[Matcher, ...]:
        """The patterns as matchers in priority order: runs of regexes, and the scanned pattern alone."""
        if self._matchers is None:
            matchers: list[Matcher] = []
            run: list[str] = []
            for pattern in (*self.patterns, None):
                if pattern is not None and pattern not in _SCANNERS:
                    run.append(pattern)
                    continue
                if run:
                    matchers.append(_regex(tuple(run)))
                    run = []
                if pattern is not None:
                    matchers.append(_SCANNERS[pattern])
            self._matchers = tuple(matchers)
        return self._matchers

    def search(self, value: str) -> Found | None:
        """The leftmost match in the tool output `value`, or None (remembered for recent outputs)."""
        return _search(self, value)

    def search_output(self, output: ToolOutput) -> Found | None:
        """The leftmost match in the tool output, or None."""
        starts: set[int] = set()
        present = output.present()
        for heads, words in self._entries:
            if words <= present:
                for head in heads:
                    starts.update(output.starts(head))
        if not starts:
            return None
        matchers = self._ready()
        for start in sorted(starts):
            for matcher in matchers:
                found = matcher(output.lower, start)
                if found is not None:
                    return found
        return None


@functools.lru_cache(maxsize=4096)
def _search(patterns: ErrorPatterns, value: str) -> Found | None:
    """`patterns.search_output` remembered per (list, text).

    An agent sends its whole history with every call, so each tool output
    is searched again on every later call of the conversation; remembering
    the answers makes a call cost only its new outputs.  About 370 outputs
    (eleven lists each) are kept.
    """
    return patterns.search_output(tool_output(value))


@functools.lru_cache(maxsize=64)
def tool_output(value: str) -> ToolOutput:
    """The `ToolOutput` of a text, shared by the eleven lists that search it one after the other."""
    return ToolOutput(value)


def forget_tool_outputs() -> None:
    _search.cache_clear()
    tool_output.cache_clear()


def snippet(output: ToolOutput, found: Found) -> str:
    """Plano's snippet: 50 bytes either side of the match, whole characters, "..." where cut."""
    value, lower = output.value, output.lower
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
