"""Execution loops: the agent calling tools round in circles.

From the window's tool calls (at least three needed):

- retry: three or more consecutive calls of one tool with equal arguments;
- parameter drift: three or more consecutive calls of one tool with at
  least two different argument strings, unless the run overlaps a retry;
- oscillation: a sequence of 2-5 calls naming at least two tools, repeated
  three or more times back to back (A B A B A B); overlapping finds are
  reduced to the earliest, longest ones.

A call row is JSON (`{"name": ..., "arguments": ...}`, `function` and
`args` also read); object arguments are compared as JSON values, strings
as strings.  A row that is not a JSON object is read as `name(args)` or as
a bare name.  Indexes count rows of the window.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple

from .failure import parse_json_object
from .report import Signal, SignalGroup, SignalType
from .text import trim

RETRY_THRESHOLD = 3
PARAMETER_DRIFT_THRESHOLD = 3
OSCILLATION_CYCLES = 3
OSCILLATION_MAX_PATTERN = 5
_ARROW = " \u2192 "


class ToolCall(NamedTuple):
    row: int
    name: str
    args: str
    """The arguments as text: object arguments as JSON with sorted top-level keys."""
    args_object: dict[str, object] | None

    def same_arguments(self, other: ToolCall) -> bool:
        if self.args_object is not None and other.args_object is not None:
            return same_json(self.args_object, other.args_object)
        return self.args == other.args


def same_json(first: object, second: object) -> bool:
    """Equality of decoded JSON as serde_json's `Value` has it: 1 and 1.0 differ, as do true and 1."""
    if type(first) is not type(second):
        return False
    if isinstance(first, dict):
        assert isinstance(second, dict)
        return first.keys() == second.keys() and all(same_json(first[key], second[key]) for key in first)
    if isinstance(first, list):
        assert isinstance(second, list)
        return len(first) == len(second) and all(map(same_json, first, second))
    return first == second


def _canonical(arguments: dict[str, object]) -> tuple[str, dict[str, object]]:
    ordered = {key: arguments[key] for key in sorted(arguments)}
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":")), ordered


def parse_call(index: int, value: str) -> ToolCall:
    """One `function_call` row read as Plano reads it."""
    call = parse_json_object(value)
    if call is not None:
        name = call["name"] if "name" in call else call.get("function")
        raw = call["arguments"] if "arguments" in call else call.get("args", _MISSING)
        if isinstance(raw, dict):
            text, ordered = _canonical(raw)
            return ToolCall(index, name if isinstance(name, str) else "unknown", text, ordered)
        if raw is _MISSING:
            text = ""
        elif isinstance(raw, str):
            text = raw
        else:
            text = json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
        return ToolCall(index, name if isinstance(name, str) else "unknown", text, None)
    paren = value.find("(")
    if paren > 0:
        name = trim(value[:paren])
        rest = value[paren:]
        if not rest.endswith(")") or len(rest) < 2:
            return ToolCall(index, name, rest, None)
        inner = trim(rest[1:-1])
        arguments = parse_json_object(inner)
        if arguments is not None:
            text, ordered = _canonical(arguments)
            return ToolCall(index, name, text, ordered)
        return ToolCall(index, name, inner, None)
    return ToolCall(index, trim(value), "", None)


_MISSING = object()


def tool_calls(rows: Sequence[tuple[str, str]]) -> list[ToolCall]:
    return [parse_call(index, value) for index, (role, value) in enumerate(rows) if role == "function_call"]


def detect_retry(calls: Sequence[ToolCall]) -> list[tuple[int, int, str]]:
    """(first index, last index, tool) of each run of identical calls."""
    found: list[tuple[int, int, str]] = []
    if len(calls) < RETRY_THRESHOLD:
        return found
    i = 0
    while i < len(calls):
        current = calls[i]
        j = i + 1
        while j < len(calls) and calls[j].name == current.name and calls[j].same_arguments(current):
            j += 1
        if j - i >= RETRY_THRESHOLD:
            found.append((current.row, calls[j - 1].row, current.name))
            i = j
        else:
            i += 1
    return found


def detect_parameter_drift(calls: Sequence[ToolCall]) -> list[tuple[int, int, str, int]]:
    """(first index, last index, tool, distinct argument strings) of each same-tool run that varies."""
    found: list[tuple[int, int, str, int]] = []
    if len(calls) < PARAMETER_DRIFT_THRESHOLD:
        return found
    i = 0
    while i < len(calls):
        name = calls[i].name
        seen = {calls[i].args}
        j = i + 1
        while j < len(calls) and calls[j].name == name:
            seen.add(calls[j].args)
            j += 1
        if j - i >= PARAMETER_DRIFT_THRESHOLD and len(seen) >= 2:
            found.append((calls[i].row, calls[j - 1].row, name, len(seen)))
            i = j
        else:
            i += 1
    return found


def detect_oscillation(calls: Sequence[ToolCall]) -> list[tuple[int, int, list[str], int]]:
    """(first index, last index, tool names of one cycle, cycles) of each repeated multi-tool sequence."""
    found: list[tuple[int, int, list[str], int]] = []
    least = 2 * OSCILLATION_CYCLES
    i = 0
    while i + least <= len(calls):
        for length in range(2, min(OSCILLATION_MAX_PATTERN, len(calls) - i) + 1):
            names = [call.name for call in calls[i : i + length]]
            if len(set(names)) < 2:
                continue
            cycles = 1
            position = i + length
            while position + length <= len(calls) and all(
                calls[position + k].name == names[k] for k in range(length)
            ):
                cycles += 1
                position += length
            if cycles >= OSCILLATION_CYCLES:
                last = i + cycles * length - 1
                found.append((calls[i].row, calls[last].row, names, cycles))
                i = last + 1 - length
                break
        else:
            i += 1
    if len(found) > 1:
        found.sort(key=lambda pattern: (pattern[0], -(pattern[1] - pattern[0])))
        kept: list[tuple[int, int, list[str], int]] = []
        last_end = -1
        for pattern in found:
            if pattern[0] > last_end:
                last_end = pattern[1]
                kept.append(pattern)
        found = kept
    return found


def analyze_loops(rows: Sequence[tuple[str, str]]) -> SignalGroup:
    """Loop signals of the window's tool calls."""
    calls = tool_calls(rows)
    if len(calls) < RETRY_THRESHOLD:
        return SignalGroup("loops")

    def calls_between(start: int, end: int) -> int:
        return sum(start <= call.row <= end for call in calls)

    found: list[Signal] = []
    retries = detect_retry(calls)
    for start, end, name in retries:
        count = calls_between(start, end)
        found.append(
            Signal.make(
                SignalType.LOOPS_RETRY,
                start,
                f"Tool '{name}' called {count} times with identical arguments",
                {
                    "tool_name": name,
                    "start_index": start,
                    "end_index": end,
                    "call_count": count,
                    "loop_type": "retry",
                },
                confidence=0.95,
            )
        )
    for start, end, name, variations in detect_parameter_drift(calls):
        if any(not (end < retry[0] or start > retry[1]) for retry in retries):
            continue
        count = calls_between(start, end)
        found.append(
            Signal.make(
                SignalType.LOOPS_PARAMETER_DRIFT,
                start,
                f"Tool '{name}' called {count} times with {variations} different argument variations",
                {
                    "tool_name": name,
                    "start_index": start,
                    "end_index": end,
                    "call_count": count,
                    "variation_count": variations,
                    "loop_type": "parameter_drift",
                },
                confidence=0.85,
            )
        )
    for start, end, names, cycles in detect_oscillation(calls):
        found.append(
            Signal.make(
                SignalType.LOOPS_OSCILLATION,
                start,
                f"Oscillation pattern [{_ARROW.join(names)}] repeated {cycles} times",
                {
                    "pattern": names,
                    "start_index": start,
                    "end_index": end,
                    "cycle_count": cycles,
                    "loop_type": "oscillation",
                },
                confidence=0.9,
            )
        )
    return SignalGroup("loops", tuple(found))
