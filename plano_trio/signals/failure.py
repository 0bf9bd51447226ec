"""Execution failure: a tool answered with an error that says the call itself was wrong.

Each tool output (`observation`) is searched, lowercased, for the error
classes in order: invalid arguments, unknown tool, authorization,
state/sequence errors, bad query; the first class that matches is the
output's one signal, naming the tool of the latest call before it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .errortext import ErrorPatterns, snippet, tool_output
from .report import MetadataValue, Signal, SignalGroup, SignalType

INVALID_ARGS = ErrorPatterns(
    (
        r"invalid\s+argument",
        r"invalid\s+parameter",
        r"invalid\s+type",
        r"type\s*error",
        r"expected\s+\w+\s*,?\s*got\s+\w+",
        r"required\s+field",
        r"required\s+parameter",
        r"missing\s+required",
        r"missing\s+argument",
        r"validation\s+failed",
        r"validation\s+error",
        r"invalid\s+value",
        r"invalid\s+format",
        r"must\s+be\s+(a|an)\s+\w+",
        r"cannot\s+be\s+(null|empty|none)",
        r"is\s+not\s+valid",
        r"does\s+not\s+match",
        r"out\s+of\s+range",
        r"invalid\s+date",
        r"invalid\s+json",
        r"malformed\s+request",
    )
)

BAD_QUERY = ErrorPatterns(
    (
        r"invalid\s+query",
        r"query\s+syntax\s+error",
        r"malformed\s+query",
        r"unknown\s+field",
        r"invalid\s+field",
        r"invalid\s+filter",
        r"invalid\s+search",
        r"unknown\s+id",
        r"invalid\s+id",
        r"id\s+format\s+error",
        r"invalid\s+identifier",
        r"query\s+failed",
        r"search\s+error",
        r"invalid\s+operator",
        r"unsupported\s+query",
    )
)

TOOL_NOT_FOUND = ErrorPatterns(
    (
        r"unknown\s+function",
        r"unknown\s+tool",
        r"function\s+not\s+found",
        r"tool\s+not\s+found",
        r"no\s+such\s+function",
        r"no\s+such\s+tool",
        r"undefined\s+function",
        r"action\s+not\s+supported",
        r"invalid\s+tool",
        r"invalid\s+function",
        r"unrecognized\s+function",
    )
)

AUTH_MISUSE = ErrorPatterns(
    (
        r"\bunauthorized\b",
        r"(status|error|http|code)\s*:?\s*401",
        r"401\s+unauthorized",
        r"403\s+forbidden",
        r"permission\s+denied",
        r"access\s+denied",
        r"authentication\s+required",
        r"invalid\s+credentials",
        r"invalid\s+token",
        r"token\s+expired",
        r"missing\s+authorization",
        r"\bforbidden\b",
        r"not\s+authorized",
        r"insufficient\s+permissions?",
    )
)

STATE_ERROR = ErrorPatterns(
    (
        r"invalid\s+state",
        r"illegal\s+state",
        r"must\s+call\s+\w+\s+first",
        r"must\s+\w+\s+before",
        r"cannot\s+\w+\s+before",
        r"already\s+(exists?|created|started|finished)",
        r"not\s+initialized",
        r"not\s+started",
        r"already\s+in\s+progress",
        r"operation\s+in\s+progress",
        r"sequence\s+error",
        r"precondition\s+failed",
        r"(status|error|http)\s*:?\s*409",
        r"409\s+conflict",
        r"\bconflict\b",
    )
)

_CLASSES: tuple[tuple[ErrorPatterns, SignalType, str, float], ...] = (
    (INVALID_ARGS, SignalType.FAILURE_INVALID_ARGS, "invalid_args", 0.9),
    (TOOL_NOT_FOUND, SignalType.FAILURE_TOOL_NOT_FOUND, "tool_not_found", 0.95),
    (AUTH_MISUSE, SignalType.FAILURE_AUTH_MISUSE, "auth_misuse", 0.8),
    (STATE_ERROR, SignalType.FAILURE_STATE_ERROR, "state_error", 0.85),
    (BAD_QUERY, SignalType.FAILURE_BAD_QUERY, "bad_query", 0.8),
)

_ERROR_WORDS = ("error", "invalid", "failed")
"""A bad-query match is surer (0.8, else 0.6) when the output also says one of these."""


def call_name(value: str) -> str:
    """The tool name of a `function_call` row: its JSON object's `name` (else `function`), else "unknown"."""
    call = parse_json_object(value)
    if call is None:
        return "unknown"
    name = call["name"] if "name" in call else call.get("function")
    return name if isinstance(name, str) else "unknown"


def parse_json_object(value: str) -> dict[str, object] | None:
    """`value` as a JSON object, or None when it is not one (serde_json's strictness: no NaN)."""
    try:
        parsed = json.loads(value, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def analyze_failure(rows: Sequence[tuple[str, str]]) -> SignalGroup:
    """Failure signals of the window's tool outputs; indexes count rows of the window."""
    found: list[Signal] = []
    last_call: tuple[int, str] | None = None
    for index, (role, value) in enumerate(rows):
        if role == "function_call":
            last_call = (index, call_name(value))
            continue
        if role != "observation":
            continue
        call_index, tool_name = last_call if last_call is not None else (max(index - 1, 0), "unknown")
        for patterns, kind, label, confidence in _CLASSES:
            match = patterns.search(value)
            if match is None:
                continue
            output = tool_output(value)
            if kind is SignalType.FAILURE_BAD_QUERY and not any(
                word in output.lower for word in _ERROR_WORDS
            ):
                confidence = 0.6
            metadata: dict[str, MetadataValue] = {
                "tool_name": tool_name,
                "call_index": call_index,
                "error_type": label,
                "matched": match.text,
            }
            found.append(Signal.make(kind, index, snippet(output, match), metadata, confidence))
            break
    return SignalGroup("failure", tuple(found))
