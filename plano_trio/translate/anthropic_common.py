"""Maps shared by both Anthropic Messages ↔ OpenAI Chat directions.

Each rule lives here once so the request, response and stream translators
of `upstream_messages` and `client_messages` cannot drift apart: stop
reasons, usage accounting, tool-choice names, data URLs, ids, and the small
shape checks that turn a malformed client body into a 400 naming the field
instead of a 500 from a `KeyError`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import msgspec

from plano_trio.apis import provider_chat as chat_wire
from plano_trio.apis import provider_messages as messages_wire
from plano_trio.translate.base import Json, ProviderShapeError, TranslationError

# Anthropic `stop_reason` → Chat `finish_reason`.  `pause_turn` (a server
# tool paused a long turn) has no Chat analogue; the client sees a normal
# stop and may continue.  `model_context_window_exceeded` is a truncation.
STOP_REASON_TO_FINISH: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Chat `finish_reason` → Anthropic `stop_reason` (`function_call` is the
# legacy single-function form of `tool_calls`).
FINISH_TO_STOP_REASON: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Chat string `tool_choice` ↔ Anthropic `tool_choice.type`.
CHAT_TO_ANTHROPIC_TOOL_CHOICE: dict[str, str] = {"auto": "auto", "required": "any", "none": "none"}
ANTHROPIC_TO_CHAT_TOOL_CHOICE: dict[str, str] = {v: k for k, v in CHAT_TO_ANTHROPIC_TOOL_CHOICE.items()}


def finish_reason_for(stop_reason: str | None) -> str:
    """Chat `finish_reason` for an Anthropic `stop_reason`; unknown future reasons read as `stop`."""
    if stop_reason is None:
        return "stop"
    return STOP_REASON_TO_FINISH.get(stop_reason, "stop")


def stop_reason_for(finish_reason: str | None, *, used_tools: bool) -> str:
    """Anthropic `stop_reason` for a Chat `finish_reason`.

    Some OpenAI-compatible servers (older Ollama, vLLM templates) answer a
    tool call with `finish_reason: "stop"` or none at all; Anthropic clients
    decide whether to run tools from `stop_reason == "tool_use"`, so when the
    turn did produce tool calls a plain/missing stop is reported as
    `tool_use`.  Truncation and refusals keep their own reason.
    """
    reason = FINISH_TO_STOP_REASON.get(finish_reason or "stop", "end_turn")
    if used_tools and reason == "end_turn":
        return "tool_use"
    return reason


def chat_usage_from_anthropic(usage: messages_wire.Usage | None) -> Json:
    """Chat `usage` for an Anthropic one (missing counts are 0: providers omit zero fields).

    Anthropic's `input_tokens` excludes cache reads and cache writes while
    Chat's `prompt_tokens` is the whole prompt, so the three are summed;
    `cached_tokens` is the cache-read part, as OpenAI reports it.
    """
    usage = usage or messages_wire.Usage()
    cache_read = usage.cache_read_input_tokens or 0
    prompt = (usage.input_tokens or 0) + cache_read + (usage.cache_creation_input_tokens or 0)
    completion = usage.output_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read},
    }


def anthropic_usage_from_chat(usage: chat_wire.Usage | None) -> Json:
    """Anthropic `usage` for a Chat one, the inverse of `chat_usage_from_anthropic`.

    `input_tokens` is the *uncached* part (`prompt_tokens - cached_tokens`),
    matching Anthropic's meaning, so a client adding
    `input_tokens + cache_read_input_tokens` gets the prompt size back.
    Chat has no cache-write count, so `cache_creation_input_tokens` is absent.
    """
    usage = usage or chat_wire.Usage()
    details = usage.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details is not None else 0
    return {
        "input_tokens": max((usage.prompt_tokens or 0) - cached, 0),
        "output_tokens": usage.completion_tokens or 0,
        "cache_read_input_tokens": cached,
    }


def compact_json(value: Any) -> str:
    """JSON text without spaces, as OpenAI serializes tool-call `arguments`."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def provider_arguments(value: object) -> str:
    """A provider's tool `input` object as Chat `arguments` text.

    Nesting too deep to serialize is the provider's fault, so it is a
    ProviderShapeError rather than a RecursionError escaping the translator.
    """
    try:
        return compact_json(value if value is not None else {})
    except RecursionError:
        raise ProviderShapeError("provider sent a tool input nested too deeply") from None


def parse_json_object(text: str) -> Json | None:
    """`text` decoded if it is a JSON object, else None (tool inputs must be objects).

    Decoded with msgspec (linear, no NaN/Infinity); nesting too deep to
    decode counts as not an object, as a syntax error does.
    """
    try:
        value = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def parse_data_url(url: str) -> tuple[str, str] | None:
    """(media_type, base64 payload) of a `data:<type>;base64,<data>` URL, else None."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not sep or encoding != "base64" or not media_type:
        return None
    return media_type, data


def data_url(media_type: str, data: str) -> str:
    """The `data:` URL OpenAI expects for inline base64 media."""
    return f"data:{media_type};base64,{data}"


def new_id(prefix: str) -> str:
    """A fresh id in the provider's style, e.g. `msg_<32 hex>`."""
    return f"{prefix}{uuid.uuid4().hex}"


def expect_dict(value: Any, param: str) -> Json:
    """`value` if it is a JSON object, else a TranslationError naming `param`."""
    if not isinstance(value, dict):
        raise TranslationError(f"{param} must be an object", param)
    return value


def expect_list(value: Any, param: str) -> list[Any]:
    """`value` if it is a JSON array, else a TranslationError naming `param`."""
    if not isinstance(value, list):
        raise TranslationError(f"{param} must be an array", param)
    return value


def expect_str(value: Any, param: str) -> str:
    """`value` if it is a string, else a TranslationError naming `param`."""
    if not isinstance(value, str):
        raise TranslationError(f"{param} must be a string", param)
    return value
