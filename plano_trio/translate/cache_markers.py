"""Prompt-cache markers (`cache_control`) on the request body about to be sent to a provider.

Anthropic models only reuse a cached prompt prefix where the request marks
one, so a client that never writes `cache_control` pays full price for the
same long system prompt and tool list on every turn.  As Plano does, we mark
the stable prefix for it, in the two places where a marker is understood:

* an Anthropic Messages upstream (native Anthropic, Vercel's Messages
  endpoint): up to two ephemeral breakpoints, one at the end of the stable
  prefix (last system block, or the last tool when there is no system
  prompt) and one rolling breakpoint on the last content block of the final
  message, so each turn's cache write is the next turn's cache read;
* an OpenAI Chat upstream on a gateway that forwards Anthropic's
  `cache_control` on content parts (DigitalOcean, OpenRouter, EdenAI) for a
  Claude-family model: one marker on the last text part of the system (or
  developer) message, a string content becoming a one-part list.

Everywhere else nothing is written: OpenAI-family models cache prefixes
without markers, and Bedrock cache points are not implemented (by Plano
either).  Plano marks the request before translating it, so only a body
that crosses untranslated (client API = upstream API) is ever marked;
`strategy_for` keeps that rule.  One deliberate difference: we never turn an
empty string into a marked empty text block, which Anthropic rejects.

Two guards keep injection harmless.  It is skipped when the client already
placed any `cache_control` (the client manages its own breakpoints, and
Anthropic refuses more than four), and when the stable prefix is estimated
below the provider's minimum cacheable size (a marker there is a provider-side
no-op, just wasted bytes).  The estimate is Plano's: UTF-8 bytes of the tool
definitions and system text, divided by four.

This module is pure: it reads and mutates a decoded JSON dict and never
raises on a wrong shape.  A body it cannot read as the expected API (a
non-dict block, a non-string text, a non-list `messages`...) is left exactly
as it was.  Whether caching is enabled, `inject_cache_control`, and the
per-request `X-Plano-Cache: off` opt-out are the caller's to check.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from enum import Enum
from typing import Any

from plano_trio.apis.kind import Api

__all__ = [
    "MAX_BREAKPOINTS",
    "PROVIDER_MIN_PREFIX_TOKENS",
    "CacheMarkerStrategy",
    "estimated_prefix_tokens",
    "has_cache_markers",
    "inject_cache_markers",
    "is_claude_family",
    "strategy_for",
]


class CacheMarkerStrategy(Enum):
    """How the upstream body is marked for prompt caching."""

    ANTHROPIC_MESSAGES = "anthropic_messages"
    """Anthropic Messages body: ephemeral breakpoints on the prefix end and on the final message."""
    SYSTEM_TEXT_PART = "system_text_part"
    """OpenAI Chat body for a Claude-family model on a gateway that forwards content-part markers."""
    NONE = "none"
    """Nothing to write: the provider caches on its own (OpenAI family) or we cannot mark it."""


PROVIDER_MIN_PREFIX_TOKENS = 1024
"""Anthropic's smallest cacheable prefix (Haiku-class models need 2048; config may raise it)."""

MAX_BREAKPOINTS = 4
"""Most `cache_control` markers Anthropic accepts in one request.

We add at most two and only to a body that has none, so never exceed it.
"""

_CHARS_PER_TOKEN = 4

_CONTENT_PART_GATEWAYS = frozenset({"digitalocean", "openrouter", "edenai"})
"""OpenAI-compatible gateways that pass Anthropic's `cache_control` on content parts through."""

_CACHEABLE_BLOCKS = frozenset({"text", "thinking", "tool_use", "tool_result"})
"""Anthropic block types Plano may put a marker on (the others have no `cache_control` in its model)."""

_TEXT_PARTS = frozenset({"text"})
"""The only Chat content part a gateway accepts a marker on."""

_SYSTEM_ROLES = frozenset({"system", "developer"})

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class _Malformed(Exception):
    """The body is not the shape the strategy reads; leave it alone."""


def _ephemeral() -> dict[str, Any]:
    # A fresh dict each time: markers must not alias one another in the body.
    return {"type": "ephemeral"}


def is_claude_family(model: str) -> bool:
    """Anthropic-family model id, in any gateway's spelling.

    Substring matching, as Plano does, so DigitalOcean's `anthropic-claude-…`
    and OpenRouter's `anthropic/claude-…` both count.
    """
    lowered = model.translate(_ASCII_LOWER)
    return "claude" in lowered or "anthropic" in lowered


def strategy_for(
    provider_interface: str, model: str, upstream_api: Api, *, client_api: Api
) -> CacheMarkerStrategy:
    """The marking a (provider, model, upstream API) combination gets, as Plano decides it.

    `model` is the bare id sent upstream (after the provider prefix, e.g.
    `anthropic/claude-3.5-sonnet` for `openrouter/anthropic/claude-3.5-sonnet`).

    Plano marks the request while it is still in the client's API, before its
    data plane translates it, and its injectors only apply to a request of the
    strategy's own shape.  So a marker is written only when no translation
    happens: a Messages client on a Messages upstream, a Chat client on a Chat
    upstream.  `client_api` carries that rule; passing the upstream API there
    instead marks translated bodies too, which Plano never does.
    """
    if client_api is not upstream_api:
        return CacheMarkerStrategy.NONE
    if upstream_api is Api.MESSAGES:
        return CacheMarkerStrategy.ANTHROPIC_MESSAGES
    if (
        upstream_api is Api.CHAT
        and provider_interface.translate(_ASCII_LOWER) in _CONTENT_PART_GATEWAYS
        and is_claude_family(model)
    ):
        return CacheMarkerStrategy.SYSTEM_TEXT_PART
    return CacheMarkerStrategy.NONE


def inject_cache_markers(body: dict[str, Any], strategy: CacheMarkerStrategy, min_prefix_tokens: int) -> bool:
    """Mark `body`'s stable prefix in place for `strategy`; True if anything was written.

    No-op when the body already carries a `cache_control` anywhere, when the
    estimated prefix is below `max(min_prefix_tokens, 1024)`, or when the
    body is not the shape the strategy reads.  Idempotent: a second call
    sees the markers of the first and writes nothing.
    """
    injector = _INJECTORS.get(strategy)
    if injector is None or not isinstance(body, dict):
        return False
    threshold = max(min_prefix_tokens, PROVIDER_MIN_PREFIX_TOKENS)
    try:
        return injector(body, threshold)
    except _Malformed:
        return False


def has_cache_markers(body: dict[str, Any], strategy: CacheMarkerStrategy) -> bool | None:
    """Whether the client already set a `cache_control` where `strategy` looks; None if unreadable."""
    reader = _MARKER_READERS.get(strategy)
    if reader is None or not isinstance(body, dict):
        return None
    try:
        return reader(body)
    except _Malformed:
        return None


def estimated_prefix_tokens(body: dict[str, Any], strategy: CacheMarkerStrategy) -> int | None:
    """Plano's estimate of the stable prefix (tools + system) in tokens; None if unreadable."""
    estimator = _ESTIMATORS.get(strategy)
    if estimator is None or not isinstance(body, dict):
        return None
    try:
        return estimator(body) // _CHARS_PER_TOKEN
    except _Malformed:
        return None


# --- shared readers ---------------------------------------------------------------------------------


def _utf8_len(text: str) -> int:
    # Plano measures Rust `String::len`, i.e. UTF-8 bytes, not characters.
    return len(text.encode("utf-8", "surrogatepass"))


def _json_len(value: Any) -> int:
    """UTF-8 length of `value` as compact JSON (what Plano's `Value::to_string` measures)."""
    try:
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _Malformed from exc
    return _utf8_len(encoded)


def _list_of_dicts(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _Malformed
    return value


def _optional_list_of_dicts(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = body.get(key)
    return [] if value is None else _list_of_dicts(value)


def _optional_str(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Malformed
    return value


def _kind(item: dict[str, Any], key: str = "type") -> str | None:
    """A string field used as a tag (`type`, `role`); None for anything else, hashable or not."""
    value = item.get(key)
    return value if isinstance(value, str) else None


def _marked(item: dict[str, Any]) -> bool:
    # `"cache_control": null` is no marker (Plano reads it as absent).
    return item.get("cache_control") is not None


def _any_marked_block(blocks: list[dict[str, Any]]) -> bool:
    """A marker on any block, or on any block nested in a block's `content` list (tool results).

    Plano looks at top-level blocks only, but it forwards nested markers and
    Anthropic counts them towards its limit of four, so they count here too.
    The walk is iterative: a deeply nested body costs time linear in its
    size, never the interpreter's recursion limit.
    """
    stack: list[list[Any]] = [blocks]
    seen: set[int] = set()
    while stack:
        for block in stack.pop():
            if not isinstance(block, dict) or id(block) in seen:
                continue
            seen.add(id(block))
            if _marked(block):
                return True
            nested = block.get("content")
            if isinstance(nested, list):
                stack.append(nested)
    return False


def _text_of_blocks(blocks: list[dict[str, Any]], text_type: str) -> int:
    """UTF-8 length of the text blocks' texts joined with newlines (Plano's `extract_text`)."""
    texts = []
    for block in blocks:
        if _kind(block) == text_type:
            text = block.get("text")
            if not isinstance(text, str):
                raise _Malformed
            texts.append(text)
    return _utf8_len("\n".join(texts))


def _mark_last_cacheable(blocks: list[dict[str, Any]], cacheable: frozenset[str]) -> bool:
    for block in reversed(blocks):
        if _kind(block) in cacheable:
            block["cache_control"] = _ephemeral()
            return True
    return False


# --- Anthropic Messages -----------------------------------------------------------------------------


def _messages_system(body: dict[str, Any]) -> str | list[dict[str, Any]] | None:
    system = body.get("system")
    if system is None or isinstance(system, str):
        return system
    return _list_of_dicts(system)


def _messages_list(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = _list_of_dicts(body.get("messages"))
    for message in messages:
        content = message.get("content")
        if not isinstance(content, str):
            _list_of_dicts(content)
    return messages


def _messages_tool_chars(tools: list[dict[str, Any]]) -> int:
    chars = 0
    for tool in tools:
        name = tool.get("name")
        if not isinstance(name, str):
            raise _Malformed
        chars += _utf8_len(name) + _utf8_len(_optional_str(tool.get("description")))
        if "input_schema" in tool:
            chars += _json_len(tool["input_schema"])
    return chars


def _messages_prefix_chars(body: dict[str, Any]) -> int:
    chars = _messages_tool_chars(_optional_list_of_dicts(body, "tools"))
    system = _messages_system(body)
    if isinstance(system, str):
        chars += _utf8_len(system)
    elif system is not None:
        chars += _text_of_blocks(system, "text")
    return chars


def _messages_has_markers(body: dict[str, Any]) -> bool:
    system = _messages_system(body)
    tools = _optional_list_of_dicts(body, "tools")
    messages = _messages_list(body)
    if _marked(body) or any(_marked(tool) for tool in tools):
        return True
    if isinstance(system, list) and _any_marked_block(system):
        return True
    return any(
        isinstance(message["content"], list) and _any_marked_block(message["content"]) for message in messages
    )


def _inject_messages(body: dict[str, Any], threshold: int) -> bool:
    # Everything is read (and validated) before the first write, so a wrong
    # shape anywhere leaves the body untouched.
    if _messages_has_markers(body):
        return False
    if _messages_prefix_chars(body) // _CHARS_PER_TOKEN < threshold:
        return False
    system = _messages_system(body)
    tools = _optional_list_of_dicts(body, "tools")
    messages = _messages_list(body)

    injected = False
    # Breakpoint 1: end of the stable prefix.  An empty system string is
    # treated as no system prompt: Anthropic rejects an empty text block, and
    # a marker on it would fail the request (Plano writes one).
    if isinstance(system, str) and system:
        body["system"] = [{"type": "text", "text": system, "cache_control": _ephemeral()}]
        injected = True
    elif isinstance(system, list):
        injected |= _mark_last_cacheable(system, _CACHEABLE_BLOCKS)
    elif tools:
        tools[-1]["cache_control"] = _ephemeral()
        injected = True

    # Breakpoint 2: the rolling tail of the conversation.
    if messages:
        last = messages[-1]
        content = last["content"]
        if isinstance(content, str):
            if content:
                last["content"] = [{"type": "text", "text": content, "cache_control": _ephemeral()}]
                injected = True
        else:
            injected |= _mark_last_cacheable(content, _CACHEABLE_BLOCKS)
    return injected


# --- OpenAI Chat ------------------------------------------------------------------------------------


def _chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = _list_of_dicts(body.get("messages"))
    for message in messages:
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            _list_of_dicts(content)
    return messages


def _chat_prefix_chars(body: dict[str, Any]) -> int:
    chars = 0
    for message in _chat_messages(body):
        if _kind(message, "role") not in _SYSTEM_ROLES:
            continue
        content = message.get("content")
        if isinstance(content, str):
            chars += _utf8_len(content)
        elif content is not None:
            chars += _text_of_blocks(content, "text")
    for tool in _optional_list_of_dicts(body, "tools"):
        function = tool.get("function")
        if function is None:
            continue
        if not isinstance(function, dict):
            raise _Malformed
        name = function.get("name")
        if not isinstance(name, str):
            raise _Malformed
        chars += _utf8_len(name) + _utf8_len(_optional_str(function.get("description")))
        if "parameters" in function:
            chars += _json_len(function["parameters"])
    return chars


def _chat_has_markers(body: dict[str, Any]) -> bool:
    messages = _chat_messages(body)
    tools = _optional_list_of_dicts(body, "tools")
    if _marked(body) or any(_marked(tool) for tool in tools):
        return True
    return any(
        isinstance(message.get("content"), list) and any(_marked(part) for part in message["content"])
        for message in messages
    )


def _inject_chat(body: dict[str, Any], threshold: int) -> bool:
    if _chat_has_markers(body):
        return False
    if _chat_prefix_chars(body) // _CHARS_PER_TOKEN < threshold:
        return False
    messages = _chat_messages(body)
    # The first system/developer message, else the first message of any role (as Plano does).
    target = next(
        (m for m in messages if _kind(m, "role") in _SYSTEM_ROLES), messages[0] if messages else None
    )
    if target is None:
        return False
    content = target.get("content")
    if isinstance(content, str):
        if not content:
            # Never create an empty marked text part: Anthropic behind the gateway rejects it.
            return False
        target["content"] = [{"type": "text", "text": content, "cache_control": _ephemeral()}]
        return True
    if content is None:
        return False
    return _mark_last_cacheable(content, _TEXT_PARTS)


_INJECTORS: dict[CacheMarkerStrategy, Callable[[dict[str, Any], int], bool]] = {
    CacheMarkerStrategy.ANTHROPIC_MESSAGES: _inject_messages,
    CacheMarkerStrategy.SYSTEM_TEXT_PART: _inject_chat,
}
_MARKER_READERS: dict[CacheMarkerStrategy, Callable[[dict[str, Any]], bool]] = {
    CacheMarkerStrategy.ANTHROPIC_MESSAGES: _messages_has_markers,
    CacheMarkerStrategy.SYSTEM_TEXT_PART: _chat_has_markers,
}
_ESTIMATORS: dict[CacheMarkerStrategy, Callable[[dict[str, Any]], int]] = {
    CacheMarkerStrategy.ANTHROPIC_MESSAGES: _messages_prefix_chars,
    CacheMarkerStrategy.SYSTEM_TEXT_PART: _chat_prefix_chars,
}
