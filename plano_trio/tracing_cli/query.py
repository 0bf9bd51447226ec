"""Which traces, spans and attributes the viewer shows: `[last|any|ID] --where --filter --since --limit`.

The language is `planoai trace`'s: a target (`last`, `any`, a 32-hex trace id or its 8-hex prefix),
`--where key=value` (repeatable; a trace matches when, for every pair, one of its spans has that attribute
with that value as text), `--filter PATTERN` (repeatable and comma-separated; `*` matches any run of
characters; only matching attribute keys are shown), `--since 5m|2h|1d` (spans that started within),
`--limit N`.

Where ours differs, on purpose:
- `--where` is matched before `--filter` trims attributes, so `--filter 'llm.*' --where
  http.status_code=500` finds the failed requests and shows their `llm.*` keys (planoai matches the
  trimmed spans and finds nothing);
- `*` is a true glob (`a*b` matches `abab`), not a first-occurrence scan;
- a malformed `--since` is an error rather than silently ignored.

Pure: parsers raise `QueryError` with the message the command prints; `select` is a function of the
traces, the query and the current time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from plano_trio.tracing_cli.spans import Span, Trace


class QueryError(ValueError):
    """A selection the user wrote that cannot be run; the message says what to fix."""


WHERE_KEY = re.compile(r"[A-Za-z0-9_.:-]+")
"""Keys `--where` accepts (dotted OTel names, `guid:x-request-id`)."""
SINCE = re.compile(r"([0-9]{1,9})([mhd])")
SINCE_UNIT_S = {"m": 60, "h": 3600, "d": 86400}
TRACE_ID_HEX = 32
SHORT_ID_HEX = 8
HEX = frozenset("0123456789abcdef")

TargetKind = Literal["last", "any", "id", "prefix"]


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    trace_id: str = ""
    """Lower-case hex, for `id` (32) and `prefix` (8)."""


@dataclass(frozen=True, slots=True)
class Query:
    target: Target = Target("last")
    patterns: tuple[str, ...] = ()
    where: tuple[tuple[str, str], ...] = ()
    since_s: int | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class Selection:
    traces: list[Trace]
    warnings: list[str] = field(default_factory=list)

    @property
    def trace_ids(self) -> list[str]:
        return [trace.trace_id for trace in self.traces]


def parse_filters(raw: Sequence[str]) -> tuple[str, ...]:
    patterns: list[str] = []
    for item in raw:
        for token in item.split(","):
            if not token.strip():
                raise QueryError(f"--filter {item!r} has an empty pattern; use key patterns like 'llm.*'.")
            patterns.append(token.strip())
    return tuple(patterns)


def parse_where(raw: Sequence[str]) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    bad: list[str] = []
    for item in raw:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or "=" in value or not value or not WHERE_KEY.fullmatch(key):
            bad.append(item)
        else:
            pairs.append((key, value))
    if bad:
        raise QueryError(f"Invalid --where filter(s): {', '.join(bad)}. Use key=value.")
    return tuple(pairs)


def parse_since(text: str | None) -> int | None:
    """`5m`, `2h`, `1d` as seconds; None when not given."""
    if text is None or not text.strip():
        return None
    found = SINCE.fullmatch(text.strip())
    if found is None:
        raise QueryError(f"--since {text!r}: use a number and m, h or d, e.g. 5m, 2h, 1d.")
    return int(found.group(1)) * SINCE_UNIT_S[found.group(2)]


def parse_target(text: str | None, *, listing: bool = False, windowed: bool = False) -> Target:
    """The positional argument; without one, `last` (or `any` when listing or with --since/--limit)."""
    if text is None:
        return Target("any" if listing or windowed else "last")
    if text == "last":
        return Target("last")
    if text == "any":
        return Target("any")
    if listing:
        raise QueryError("A trace ID and --list cannot be used together.")
    lowered = text.lower()
    if len(lowered) not in (SHORT_ID_HEX, TRACE_ID_HEX):
        raise QueryError("Trace ID must be 8 or 32 hex characters.")
    if not set(lowered) <= HEX or set(lowered) == {"0"}:
        raise QueryError(f"Trace ID must be {len(lowered)} hex characters, not all zero.")
    return Target("id" if len(lowered) == TRACE_ID_HEX else "prefix", lowered)


def parse_limit(limit: int | None) -> int | None:
    if limit is not None and limit < 0:
        raise QueryError("--limit must be 0 or more.")
    return limit


def glob_match(text: str, pattern: str) -> bool:
    """`pattern` with `*` for any run of characters (nothing else is special) matches all of `text`.

    The first piece anchors at the start and the last at the end; the middle pieces are found left to
    right, and the leftmost place for each is always a safe choice.
    """
    if "*" not in pattern:
        return text == pattern
    head, *middle, tail = pattern.split("*")
    if len(text) < len(head) + len(tail) or not text.startswith(head) or not text.endswith(tail):
        return False
    position, end = len(head), len(text) - len(tail)
    for piece in middle:
        found = text.find(piece, position, end)
        if found < 0:
            return False
        position = found + len(piece)
    return True


def _trace_keys(traces: Sequence[Trace]) -> set[str]:
    return {attribute.key for trace in traces for span in trace.spans for attribute in span.attributes}


def _matches_where(spans: Sequence[Span], where: Sequence[tuple[str, str]]) -> bool:
    texts = [span.attribute_texts() for span in spans]
    return all(any(found.get(key) == value for found in texts) for key, value in where)


def _trim(span: Span, patterns: Sequence[str]) -> Span:
    kept = tuple(a for a in span.attributes if any(glob_match(a.key, p) for p in patterns))
    return msgspec.structs.replace(span, attributes=kept)


def _picked(trace: Trace, target: Target) -> bool:
    lowered = trace.trace_id.lower()
    if target.kind == "id":
        return lowered == target.trace_id
    if target.kind == "prefix":
        return lowered.startswith(target.trace_id)
    return True


def select(traces: Sequence[Trace], query: Query, now_ns: int) -> Selection:
    """The traces to show, newest first as given, with their spans and attributes trimmed.

    Raises `QueryError` for a `--where` key no stored span has (likely a typo); a `--filter` pattern
    that matches no key is only a warning, since the traces it would show may simply not be there yet.
    """
    warnings: list[str] = []
    if traces:
        keys = _trace_keys(traces)
        unknown = [key for key, _ in query.where if key not in keys]
        if unknown:
            raise QueryError(f"Unknown --where key(s): {', '.join(unknown)}")
        unmatched = [p for p in query.patterns if not any(glob_match(key, p) for key in keys)]
        if unmatched:
            warnings.append(f"no attribute key matches --filter {', '.join(unmatched)}")
    since_ns = now_ns - query.since_s * 1_000_000_000 if query.since_s is not None else None
    chosen: list[Trace] = []
    for trace in traces:
        if not _picked(trace, query.target):
            continue
        spans = trace.spans
        if since_ns is not None:
            spans = tuple(span for span in spans if span.start_ns >= since_ns)
        if not spans or not _matches_where(spans, query.where):
            continue
        if query.patterns:
            spans = tuple(_trim(span, query.patterns) for span in spans)
        chosen.append(Trace(trace.trace_id, spans))
        if query.target.kind == "last":
            break
    if query.limit is not None:
        chosen = chosen[: query.limit]
    return Selection(chosen, warnings)
