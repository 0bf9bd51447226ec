"""Conversation-quality signals: Plano's analysis of a finished LLM exchange, pure and bounded.

For every LLM response Plano reads the conversation and reports what it
shows about how it is going: the user correcting or rephrasing
(misalignment), the conversation dragging or repeating itself
(stagnation), the user giving up or asking for a human (disengagement) or
thanking (satisfaction); tools failing on bad calls (failure) or being
called in circles (loops); the environment failing (exhaustion).  It
scores the conversation from 0 to 100, bands it (excellent ... severe),
and writes all of it onto the LLM span, flagging a concerning one with 🚩.

Use:

    report = analyze(Api.CHAT, request_json)          # Plano reads the request's messages
    span.set_attributes(report.span_attributes())
    for name, attributes in report.span_events():
        span.add_event(name, attributes)
    span.update_name(report.span_name(span.name))     # appends " 🚩" when concerning

`analyze` is a pure function of data, CPU-bound and bounded (the last 100
messages, each cut to 2,000 characters): `bench/signals_bench.py` measures
about 10 ms for a first look at a 100-message conversation and 2-3 ms for
the next call of the same conversation (recent messages are remembered).
It is pure Python and holds the GIL throughout: in a thread beside an
event loop it delays the loop's wake-ups by the interpreter's 5 ms switch
interval for as long as it runs, so it belongs in a worker process (the
request and the report pickle in well under a millisecond).

The modules: `normalize` (client API JSON to rows), `analyzer` (the
detectors in order), one module per detector family, `report` (result
types, score, span attributes), `text` and `phrases` (the phrase matcher
and its index), `errortext` (tool-error patterns), `floats` (Plano's
single precision), `job` (`analyze`, and a worker job's body analysed),
`frames` and `worker` (the worker process and its protocol).

Importing the package loads `report` only: the gateway's process needs the
result types and the worker's codec, never the detectors, whose modules and
phrase indexes (a few MB) belong in the worker's process.  The analysis's
names are loaded at first use (`__getattr__`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .report import (
    FLAG_MARKER,
    AttributeValue,
    Quality,
    Signal,
    SignalGroup,
    SignalReport,
    SignalType,
    TurnMetrics,
)

if TYPE_CHECKING:
    from .analyzer import MAX_MESSAGE_LENGTH, MAX_MESSAGES, analyze_rows
    from .job import analyze
    from .normalize import MAX_CALL_ROW, ConversationError, Row, conversation

_LAZY = {
    "MAX_MESSAGES": "analyzer",
    "MAX_MESSAGE_LENGTH": "analyzer",
    "analyze_rows": "analyzer",
    "analyze": "job",
    "MAX_CALL_ROW": "normalize",
    "ConversationError": "normalize",
    "Row": "normalize",
    "conversation": "normalize",
}
"""The analysis's names and the module each comes from, imported when first asked for."""


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "FLAG_MARKER",
    "MAX_CALL_ROW",
    "MAX_MESSAGES",
    "MAX_MESSAGE_LENGTH",
    "AttributeValue",
    "ConversationError",
    "Quality",
    "Row",
    "Signal",
    "SignalGroup",
    "SignalReport",
    "SignalType",
    "TurnMetrics",
    "analyze",
    "analyze_rows",
    "conversation",
]
