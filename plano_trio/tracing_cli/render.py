"""A trace as text: a tree of spans (children under the span they name as parent) with their attributes.

    Trace 4bf92f3577b34da6a3ce929d0e0e4736  (123ms, 2025-05-01 12:00:00)
    └── +0ms plano(llm) POST /v1/chat/completions  123ms
        │ http.method: POST
        │ http.status_code: 200
        └── +2ms plano(llm) upstream  118ms
              llm.model: gpt-4o-mini

`planoai trace` prints the spans of a trace as one flat list in start order; this nests them by
`parentSpanId` (siblings in start order), which is the same information read as a call tree.  A span
whose parent is not in the trace is a root; spans caught in a parent cycle (only a broken or hostile
sender makes one) are shown as roots rather than lost.  Built without recursion: a trace may be 500 deep.

Attribute order follows planoai's: error keys, then the keys a reader looks for first (request, routing,
model, timings), then the rest by name.  Unless `verbose`, inbound/outbound spans show only their HTTP
summary keys, `service.name.override` is hidden and long values are cut.

Every string from a span goes through `printable`: a span is sender-controlled, and a value holding
terminal escape sequences or line breaks must not repaint the terminal or forge lines of output.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from http import HTTPStatus

from plano_trio.tracing_cli.spans import Span, Trace

ERROR_KEYS = (
    "http.status_code",
    "error.type",
    "error.message",
    "error.stack",
    "exception.type",
    "exception.message",
)
FIRST_KEYS = (
    "http.method",
    "http.target",
    "guid:x-request-id",
    "request_size",
    "response_size",
    "routing.determination_ms",
    "route.selected_model",
    "selection.agents",
    "selection.agent_count",
    "agent.name",
    "agent.sequence",
    "duration_ms",
    "llm.model",
    "llm.is_streaming",
    "llm.time_to_first_token",
    "llm.duration_ms",
    "llm.response_bytes",
)
KEY_RANK = {key: rank for rank, key in enumerate(ERROR_KEYS + FIRST_KEYS)}
EDGE_KEYS = frozenset(
    (
        "http.method",
        "http.target",
        "http.status_code",
        "url.scheme",
        "guid:x-request-id",
        "request_size",
        "response_size",
    )
)
"""What an inbound/outbound (Envoy-side) span shows unless verbose: its HTTP summary."""
HIDDEN_KEYS = frozenset(("service.name.override",))
SHORT_VALUE_CHARS = 300
RED_KEYS = frozenset(("error.type", "error.message", "exception.type", "exception.message"))

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")

RESET = "\x1b[0m"
DIM = "2"
BOLD = "1"
RED = "31"
GREEN = "32"
YELLOW = "33"
BLUE = "34"
MAGENTA = "35"
CYAN = "36"
SERVICE_COLORS = (
    ("inbound", BLUE),
    ("outbound", GREEN),
    ("orchestrator", YELLOW),
    ("routing", MAGENTA),
    ("agent", CYAN),
    ("llm", GREEN),
)


def printable(text: str) -> str:
    """`text` with control, line-breaking and bidi-override characters shown as `\\u{...}` escapes."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{{{ord(m.group()):04x}}}", text)


@dataclass(slots=True)
class Node:
    span: Span
    children: list[Node] = field(default_factory=list)


def build_tree(spans: Sequence[Span]) -> list[Node]:
    """The spans as a forest: roots and each node's children in start order (ties in arrival order)."""
    order = sorted(range(len(spans)), key=lambda i: (spans[i].start_ns, i))
    index: dict[str, int] = {}
    for i, span in enumerate(spans):
        index.setdefault(span.span_id, i)
    parent_of = {i: index.get(spans[i].parent_span_id) if spans[i].parent_span_id else None for i in order}
    kids: defaultdict[int, list[int]] = defaultdict(list)
    for i in order:
        parent = parent_of[i]
        if parent is not None and parent != i:
            kids[parent].append(i)
    visited: set[int] = set()
    roots: list[Node] = []

    def grow(root: int) -> None:
        visited.add(root)
        top = Node(spans[root])
        roots.append(top)
        stack = [(root, top)]
        while stack:
            at, node = stack.pop()
            for child in kids[at]:
                if child not in visited:
                    visited.add(child)
                    branch = Node(spans[child])
                    node.children.append(branch)
                    stack.append((child, branch))

    for i in order:
        if parent_of[i] is None or parent_of[i] == i:
            grow(i)
    for i in order:
        if i not in visited:  # a parent cycle: no member is anyone's root
            grow(i)
    roots.sort(key=lambda node: node.span.start_ns)
    return roots


def error_of(attributes: dict[str, str]) -> str | None:
    """What went wrong in a span, if anything: an HTTP status >= 400, else an error or exception message."""
    status = attributes.get("http.status_code", "")
    if status.isdecimal() and len(status) <= 3 and int(status) >= 400:
        code = int(status)
        try:
            return f"{code} {HTTPStatus(code).phrase}"
        except ValueError:
            return f"{code} {'Server' if code >= 500 else 'Client'} Error"
    for key in ("error.message", "exception.message"):
        if key in attributes:
            return attributes[key]
    return None


def shown_attributes(span: Span, verbose: bool) -> list[tuple[str, str]]:
    """The (key, value) lines printed under a span, in display order."""
    attributes = span.attribute_texts()
    if not verbose:
        edge = any(word in span.service.lower() for word in ("inbound", "outbound"))
        attributes = {
            key: value
            for key, value in attributes.items()
            if key not in HIDDEN_KEYS and (not edge or key in EDGE_KEYS)
        }
    return sorted(attributes.items(), key=lambda item: (KEY_RANK.get(item[0], len(KEY_RANK)), item[0]))


class Painter:
    """Wraps text in ANSI SGR codes when `color` is on (the trace tree, `plano-trio obs`)."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, *codes: str) -> str:
        codes = tuple(code for code in codes if code)
        if not self.color or not codes:
            return text
        return f"\x1b[{';'.join(codes)}m{text}{RESET}"


def _service_color(service: str) -> str:
    lowered = service.lower()
    return next((code for word, code in SERVICE_COLORS if word in lowered), "")


def _value(text: str, verbose: bool) -> str:
    if not verbose and len(text) > SHORT_VALUE_CHARS:
        text = f"{text[:SHORT_VALUE_CHARS]}… ({len(text)} chars; -v shows all)"
    return printable(text)


def _span_lines(node: Node, start_ns: int, lead: str, verbose: bool, paint: Painter) -> Iterator[str]:
    span = node.span
    offset_ms = max(0.0, (span.start_ns - start_ns) / 1e6)
    duration_ms = max(0.0, (span.end_ns - span.start_ns) / 1e6)
    attributes = shown_attributes(span, verbose)
    error = error_of(span.attribute_texts())
    service_codes = (BOLD, RED) if error else (BOLD, _service_color(span.service))
    label = f"{paint(f'+{offset_ms:.0f}ms', DIM)} {paint(printable(span.service), *service_codes)}"
    if span.name:
        label += f" {printable(span.name)}"
    label += f"  {paint(f'{duration_ms:.0f}ms', DIM)}"
    if error:
        label += f"  {paint('✗ ' + printable(error), RED)}"
    yield label
    bar = "│ " if node.children else "  "
    for key, value in attributes:
        if key == "http.status_code":
            value_codes: tuple[str, ...] = (BOLD, RED) if error_of({key: value}) else (GREEN,)
        else:
            value_codes = (RED,) if key in RED_KEYS else (BOLD,)
        yield f"{lead}{bar}{paint(printable(key) + ':', DIM)} {paint(_value(value, verbose), *value_codes)}"


def _when(start_ns: int, zone: tzinfo | None) -> str:
    if start_ns <= 0:
        return "unknown time"
    moment = datetime.fromtimestamp(start_ns / 1e9, tz=UTC)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def render_trace(
    trace: Trace, *, verbose: bool = False, color: bool = False, zone: tzinfo | None = None
) -> list[str]:
    """The lines printed for one trace (`zone` None: the local time zone)."""
    paint = Painter(color)
    header = (
        f"{paint('Trace', BOLD)} {printable(trace.trace_id)}  "
        f"{paint(f'({trace.total_ms:.0f}ms, {_when(trace.start_ns, zone)})', DIM)}"
    )
    if not trace.spans:
        return [header, "  (no spans)"]
    lines = [header]
    start_ns = trace.start_ns
    # (node, prefix of its own line, prefix of the lines under it)
    stack: list[tuple[Node, str, str]] = []
    roots = build_tree(trace.spans)
    for position, root in reversed(list(enumerate(roots))):
        last = position == len(roots) - 1
        stack.append((root, "└── " if last else "├── ", "    " if last else "│   "))
    while stack:
        node, own, under = stack.pop()
        first, *rest = _span_lines(node, start_ns, under, verbose, paint)
        lines.append(own + first)
        lines.extend(rest)
        for position, child in reversed(list(enumerate(node.children))):
            last = position == len(node.children) - 1
            stack.append((child, under + ("└── " if last else "├── "), under + ("    " if last else "│   ")))
    return lines


def render_ids(traces: Sequence[Trace], *, zone: tzinfo | None = None) -> list[str]:
    """`--list`: one line per trace, short id first (what `plano-trio trace ID` accepts)."""
    return [
        f"  - {printable(trace.trace_id[:8])}  {trace.total_ms:.0f}ms  {_when(trace.start_ns, zone)}  "
        f"{len(trace.spans)} span{'s' if len(trace.spans) != 1 else ''}"
        for trace in traces
    ]
