"""The router model's prompt: which routes exist and what the conversation says, as Plano words it.

The hosted router models (Plano-Orchestrator, Arch-Router) were trained on this
exact text, so every byte follows Plano: the template, the route lines in
Python `json.dumps` spacing, the conversation pretty-printed with a 4-space
indent, non-ASCII characters left unescaped (as serde_json writes them), and
the selection of which messages fit the router's context.

The JSON is written by msgspec, which escapes exactly as `json.dumps(...,
ensure_ascii=False)` does (the same short escapes, `\\u00XX` for other control
characters, everything else raw) and whose `format` lays out `indent=4` and
the default `", "`/`": "` spacing the same way, at a tenth of the cost: the
stdlib encoder takes ~5 ns per character of ASCII text with
`ensure_ascii=False`, ~0.3 ms for each of the two encodings of a 32 KB
conversation, on every routed request.  Text with a lone surrogate (which
msgspec cannot encode) goes through `json.dumps` as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import msgspec

from plano_trio.config.schema import RoutingPreference

from .conversation import DEVELOPER, SYSTEM, TOOL, USER, RouterMessage

PROMPT_TEMPLATE = """
You are a helpful assistant that selects the most suitable routes based on user intent.
You are provided with a list of available routes enclosed within <routes></routes> XML tags:
<routes>
{routes}
</routes>

You are also given the conversation context enclosed within <conversation></conversation> XML tags:
<conversation>
{conversation}
</conversation>

## Instructions
1. Analyze the latest user intent from the conversation.
2. Compare it against the available routes to find which routes can help fulfill the request.
3. Respond only with the exact route names from <routes>.
4. If no routes can help or the intent is already fulfilled, return an empty list.

## Response Format
Return your answer strictly in JSON as follows:
{{"route": ["route_name_1", "route_name_2", "..."]}}
If no routes are needed, return an empty list for `route`.
"""
"""Plano's router prompt, byte for byte; the doubled braces are sent as they are (no format())."""

MAX_TOKENS = 8192
"""The router model's context budget when `orchestrator_model_context_length` is not set."""

MAX_ROUTING_TURNS = 16
"""Most recent messages considered at all: bounds the prompt before the token budget runs."""

TRIM_MARKER = "\u2026"
"""The ellipsis put where the middle of an overlong user message was cut out."""

_TOKEN_DIVISOR = 4
"""Bytes per token in Plano's estimate: no tokenizer on the hot path."""

_DROPPED_ROLES = frozenset((SYSTEM, DEVELOPER, TOOL))

_PARAMETERS = {"type": "object", "properties": {}, "required": []}


def select_conversation(
    messages: Sequence[RouterMessage], max_tokens: int = MAX_TOKENS
) -> list[RouterMessage]:
    """The messages the router sees, oldest first, within `max_tokens` of estimated tokens.

    As Plano selects them: system, developer and tool messages and messages
    without text are dropped; of the rest only the last 16 count.  Walking
    from the newest, a message is kept while the template's tokens plus the
    kept messages' tokens (UTF-8 bytes / 4, rounded down each) stay within the
    budget.  The first message that does not fit ends the walk; if it is the
    user's and some budget is left, its middle is cut out to fit.  When
    nothing fits, the newest message is used whole.
    """
    kept = [message for message in messages if message.role not in _DROPPED_ROLES and message.content][
        -MAX_ROUTING_TURNS:
    ]
    budget = max_tokens
    used = _utf8_len(PROMPT_TEMPLATE) // _TOKEN_DIVISOR
    chosen: list[RouterMessage] = []
    for message in reversed(kept):
        tokens = _utf8_len(message.content) // _TOKEN_DIVISOR
        if used + tokens > budget:
            remaining = max(budget - used, 0)
            if message.role == USER and remaining > 0:
                chosen.append(RouterMessage(USER, trim_middle(message.content, remaining * _TOKEN_DIVISOR)))
            break
        used += tokens
        chosen.append(message)
    if not chosen and kept:
        chosen.append(kept[-1])
    chosen.reverse()
    return chosen


def trim_middle(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` UTF-8 bytes: 60% from its start, the ellipsis, the rest from its end.

    Users frame a task at the start and often put the actual ask after a long
    paste, so both ends are kept.  Cuts fall on character boundaries (the
    head rounds down, the tail's start rounds up).  When even the ellipsis
    does not fit, only the head is kept, without it.
    """
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    marker = TRIM_MARKER.encode("utf-8")
    if max_bytes <= len(marker):
        return _decode(data[: _boundary_down(data, max(max_bytes, 0))])
    available = max_bytes - len(marker)
    head = _boundary_down(data, available * 3 // 5)
    tail_start = _boundary_up(data, max(len(data) - (available - head), 0))
    return _decode(data[:head]) + TRIM_MARKER + _decode(data[tail_start:])


def render_routes(preferences: Iterable[RoutingPreference]) -> str:
    """One JSON object per route and line, in Python `json.dumps` spacing, in the order given.

    Routes sharing a name are one route, the last one's description winning
    (Plano keys them by name); Plano's order is its hash map's, ours is the
    configuration's.
    """
    return "\n".join(
        _dumps({"name": preference.name, "description": preference.description, "parameters": _PARAMETERS})
        for preference in unique_by_name(preferences)
    )


def render_conversation(conversation: Sequence[RouterMessage]) -> str:
    """The selected messages as a JSON list indented by 4 spaces, `role` before `content`."""
    return _dumps([{"role": message.role, "content": message.content} for message in conversation], indent=4)


def render_prompt(preferences: Iterable[RoutingPreference], conversation: Sequence[RouterMessage]) -> str:
    """The router prompt: the template with its `{routes}` and `{conversation}` filled in one pass.

    Plano makes two plain replacements in turn, so a `{conversation}` inside
    a route's description is replaced too; with inline preferences a client
    could make that amplify one request into gigabytes.  Filling the
    template's own placeholders only gives the same bytes for every
    description that does not contain the literal text `{conversation}`.
    """
    head, _, rest = PROMPT_TEMPLATE.partition("{routes}")
    middle, _, tail = rest.partition("{conversation}")
    return head + render_routes(preferences) + middle + render_conversation(conversation) + tail


def router_request_body(model: str, prompt: str) -> bytes:
    """The Chat request sent to the router model, in Plano's field order and compact spacing.

    A lone surrogate (which no JSON request decoded by msgspec carries) is
    written as "?" rather than failing the request.
    """
    body = {"messages": [{"role": USER, "content": prompt}], "model": model, "temperature": 0.01}
    try:
        return msgspec.json.encode(body)
    except UnicodeEncodeError:  # a lone surrogate
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")


def unique_by_name(preferences: Iterable[RoutingPreference]) -> list[RoutingPreference]:
    """One preference per name, at its first position, with its last definition (Plano keys them by name)."""
    by_name: dict[str, RoutingPreference] = {}
    for preference in preferences:
        by_name[preference.name] = preference
    return list(by_name.values())


def _dumps(value: object, indent: int | None = None) -> str:
    """`json.dumps(value, ensure_ascii=False, indent=indent)`, byte for byte."""
    try:
        encoded = msgspec.json.encode(value)
    except UnicodeEncodeError:  # a lone surrogate
        return json.dumps(value, ensure_ascii=False, indent=indent)
    return msgspec.json.format(encoded, indent=0 if indent is None else indent).decode("utf-8")


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def _is_boundary(data: bytes, index: int) -> bool:
    return index <= 0 or index >= len(data) or (data[index] & 0xC0) != 0x80


def _boundary_down(data: bytes, index: int) -> int:
    while index > 0 and not _is_boundary(data, index):
        index -= 1
    return index


def _boundary_up(data: bytes, index: int) -> int:
    while index < len(data) and not _is_boundary(data, index):
        index += 1
    return index


__all__ = [
    "MAX_ROUTING_TURNS",
    "MAX_TOKENS",
    "PROMPT_TEMPLATE",
    "TRIM_MARKER",
    "render_conversation",
    "render_prompt",
    "render_routes",
    "router_request_body",
    "select_conversation",
    "trim_middle",
    "unique_by_name",
]
