"""W3C Trace Context (`traceparent`, `tracestate`): reading the client's, writing ours (pure).

`traceparent` is `version-traceid-parentid-flags` in lowercase hex
(`00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`).  A header that
breaks the rules (uppercase, an all-zero id, version `ff`, the wrong length,
or the header given twice) is ignored, as the specification asks: the
request then starts a trace of its own.  A later version is read by its
first four fields, as the specification allows.

`tracestate` is vendor data we do not interpret; it is carried on unchanged
(several headers joined with commas) when it is short and printable, and
dropped otherwise, so a hostile value never reaches a provider, a filter or
a span.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from plano_trio.apis.http import Header

TRACEPARENT = b"traceparent"
TRACESTATE = b"tracestate"

_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL)
MAX_TRACESTATE_BYTES = 512
"""The W3C limit on what a vendor must propagate; anything longer is dropped whole."""
_TRACESTATE = re.compile(rb"[\x20-\x7e]*")


class RemoteParent(NamedTuple):
    """The client's trace context."""

    trace_id: int
    span_id: int
    sampled: bool
    tracestate: bytes | None


def parse_traceparent(headers: Iterable[Header]) -> RemoteParent | None:
    """The client's W3C context, or None when it sent none (or one that breaks the rules)."""
    parent: bytes | None = None
    states: list[bytes] = []
    for name, value in headers:
        if name == TRACEPARENT:
            if parent is not None:
                return None  # given twice: which one is meant cannot be told
            parent = value
        elif name == TRACESTATE:
            states.append(value)
    if parent is None:
        return None
    found = _TRACEPARENT.fullmatch(parent.strip())
    if found is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = found.groups()
    if version == b"ff" or (version == b"00" and rest is not None):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return RemoteParent(trace_id, span_id, bool(int(flags_hex, 16) & 1), _tracestate(states))


def _tracestate(values: list[bytes]) -> bytes | None:
    if not values:
        return None
    joined = b",".join(value.strip() for value in values)
    if not joined or len(joined) > MAX_TRACESTATE_BYTES or _TRACESTATE.fullmatch(joined) is None:
        return None
    return joined


def traceparent(trace_id: int, span_id: int, sampled: bool = True) -> bytes:
    """Our `traceparent` value naming `span_id` as the parent of whatever the callee does."""
    return b"00-%032x-%016x-%s" % (trace_id, span_id, b"01" if sampled else b"00")


def with_context(
    headers: Iterable[Header], trace_id: int, span_id: int, tracestate: bytes | None
) -> list[Header]:
    """`headers` with the trace context replaced by ours (`span_id` the callee's parent)."""
    out = [(name, value) for name, value in headers if name != TRACEPARENT and name != TRACESTATE]
    out.append((TRACEPARENT, traceparent(trace_id, span_id)))
    if tracestate is not None:
        out.append((TRACESTATE, tracestate))
    return out
