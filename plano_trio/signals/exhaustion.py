"""Environment exhaustion: a tool failed because of what it runs on, not because the call was wrong.

Each tool output is searched, lowercased, for the classes in order: rate
limit, API/server error, timeout, network, malformed response, context
overflow; the first class that matches is the output's one signal.  This
runs independently of `failure`, so one output can yield both.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errortext import ErrorPatterns, snippet, tool_output
from .report import Signal, SignalGroup, SignalType

API_ERROR = ErrorPatterns(
    (
        r"500\s*(internal\s+)?server\s+error",
        r"502\s*bad\s+gateway",
        r"503\s*service\s+unavailable",
        r"504\s*gateway\s+timeout",
        r"internal\s+server\s+error",
        r"service\s+unavailable",
        r"server\s+error",
        r"backend\s+error",
        r"upstream\s+error",
        r"service\s+temporarily\s+unavailable",
        r"maintenance\s+mode",
        r"under\s+maintenance",
        r"try\s+again\s+later",
        r"temporarily\s+unavailable",
        r"system\s+error",
        r"unexpected\s+error",
        r"unhandled\s+exception",
    )
)

TIMEOUT = ErrorPatterns(
    (
        r"timeout",
        r"timed?\s*out",
        r"etimedout",
        r"connection\s+timed?\s*out",
        r"read\s+timed?\s*out",
        r"request\s+timed?\s*out",
        r"gateway\s+timeout",
        r"deadline\s+exceeded",
        r"took\s+too\s+long",
        r"operation\s+timed?\s*out",
        r"socket\s+timeout",
    )
)

RATE_LIMIT = ErrorPatterns(
    (
        r"rate\s+limit",
        r"rate.limited",
        r"(status|error|http)\s*:?\s*429",
        r"429\s+(too\s+many|rate|limit)",
        r"too\s+many\s+requests?",
        r"quota\s+exceeded",
        r"quota\s+limit",
        r"throttl(ed|ing)",
        r"request\s+limit",
        r"api\s+limit",
        r"calls?\s+per\s+(second|minute|hour|day)",
        r"exceeded\s+.*\s+limit",
        r"slow\s+down",
        r"retry\s+after",
        r"requests?\s+exceeded",
    )
)

NETWORK = ErrorPatterns(
    (
        r"connection\s+refused",
        r"econnrefused",
        r"econnreset",
        r"connection\s+reset",
        r"enotfound",
        r"dns\s+(error|failure|lookup)",
        r"host\s+not\s+found",
        r"network\s+(error|failure|unreachable)",
        r"no\s+route\s+to\s+host",
        r"socket\s+error",
        r"connection\s+failed",
        r"unable\s+to\s+connect",
        r"cannot\s+connect",
        r"could\s+not\s+connect",
        r"connect\s+error",
        r"ssl\s+(error|handshake|certificate)",
        r"certificate\s+(error|invalid|expired)",
    )
)

MALFORMED = ErrorPatterns(
    (
        r"json\s+parse\s+error",
        r"invalid\s+json",
        r"unexpected\s+token",
        r"syntax\s+error.*json",
        r"malformed\s+(response|json|data)",
        r"unexpected\s+end\s+of",
        r"parse\s+error",
        r"parsing\s+failed",
        r"invalid\s+response",
        r"unexpected\s+response",
        r"response\s+format",
        r"missing\s+field.*response",
        r"unexpected\s+schema",
        r"schema\s+validation",
        r"deserialization\s+error",
        r"failed\s+to\s+decode",
    )
)

CONTEXT_OVERFLOW = ErrorPatterns(
    (
        r"context\s+(length|limit|overflow|exceeded)",
        r"token\s+(limit|overflow|exceeded)",
        r"max(imum)?\s+tokens?",
        r"input\s+too\s+(long|large)",
        r"exceeds?\s+(context|token|character|input)\s+limit",
        r"message\s+too\s+(long|large)",
        r"content\s+too\s+(long|large)",
        r"truncat(ed|ion)\s+(due\s+to|because|for)\s+(length|size|limit)",
        r"maximum\s+context",
        r"prompt\s+too\s+(long|large)",
    )
)

_CLASSES: tuple[tuple[ErrorPatterns, SignalType, str, float], ...] = (
    (RATE_LIMIT, SignalType.EXHAUSTION_RATE_LIMIT, "rate_limit", 0.95),
    (API_ERROR, SignalType.EXHAUSTION_API_ERROR, "api_error", 0.9),
    (TIMEOUT, SignalType.EXHAUSTION_TIMEOUT, "timeout", 0.9),
    (NETWORK, SignalType.EXHAUSTION_NETWORK, "network", 0.9),
    (MALFORMED, SignalType.EXHAUSTION_MALFORMED, "malformed_response", 0.85),
    (CONTEXT_OVERFLOW, SignalType.EXHAUSTION_CONTEXT_OVERFLOW, "context_overflow", 0.9),
)


def analyze_exhaustion(rows: Sequence[tuple[str, str]]) -> SignalGroup:
    """Exhaustion signals of the window's tool outputs; indexes count rows of the window."""
    found: list[Signal] = []
    for index, (role, value) in enumerate(rows):
        if role != "observation":
            continue
        for patterns, kind, label, confidence in _CLASSES:
            match = patterns.search(value)
            if match is not None:
                metadata = {"exhaustion_type": label, "matched": match.text}
                found.append(
                    Signal.make(kind, index, snippet(tool_output(value), match), metadata, confidence)
                )
                break
    return SignalGroup("exhaustion", tuple(found))
