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
single precision).
"""

from __future__ import annotations

from plano_trio.apis.kind import Api

from .analyzer import MAX_MESSAGE_LENGTH, MAX_MESSAGES, analyze_rows
from .normalize import MAX_CALL_ROW, ConversationError, Row, conversation
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


def analyze(api: Api, request: object, response: object = None) -> SignalReport:
    """The signal report of a client request's conversation (and the response's turn, when given).

    Raises `ConversationError` only when `request` is not a JSON object.
    """
    return analyze_rows(conversation(api, request, response))


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
