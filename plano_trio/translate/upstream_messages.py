"""A Chat Completions client in front of a native Anthropic Messages provider.

Requests go Chat → Messages (`chat_request_to_messages`); answers come back
Messages → Chat (`messages_response_to_chat`, `MessagesStreamToChat`).

Decisions where the two APIs disagree (each is also noted where it is made):

* every `system`/`developer` message, wherever it sits, becomes a block of
  the top-level `system`, in order (Plano keeps only the last one);
* Anthropic requires user/assistant alternation, so consecutive same-role
  turns (including runs of `tool` messages, which become user turns of
  `tool_result` blocks) are merged, tool results first;
* messages that end up empty (`""` content, no tool calls) are dropped, as
  Anthropic rejects empty content;
* features Anthropic cannot express (`n > 1`, logprobs, JSON response
  formats, audio, predicted outputs, legacy `functions`) are a 400 naming
  the field rather than silently ignored, while pure hints with no effect on
  the answer's shape (penalties, `seed`, `logit_bias`, `store`,
  `service_tier`, `reasoning_effort`...) are dropped;
* Anthropic-only knobs a chat client may add (`thinking`, `top_k`, and
  `cache_control` on content parts) pass through;
* `thinking` output surfaces as `reasoning_content` on the Chat message or
  delta (the convention of DeepSeek, vLLM and LiteLLM); signatures and
  redacted thinking have no Chat form and are dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from plano_trio.apis import provider_messages as wire
from plano_trio.translate.anthropic_common import (
    CHAT_TO_ANTHROPIC_TOOL_CHOICE,
    chat_usage_from_anthropic,
    expect_dict,
    expect_list,
    expect_str,
    finish_reason_for,
    new_id,
    parse_data_url,
    parse_json_object,
    provider_arguments,
)
from plano_trio.translate.base import (
    EventReader,
    Json,
    StreamError,
    TranslationError,
    UpstreamEvent,
    append_turn,
    provider_value,
    stream_error,
)

DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires `max_tokens`; Chat clients usually omit it (Plano's default too)."""

# Request fields Anthropic cannot honour: (field, "is it actually used?", why).
_UNSUPPORTED: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("n", lambda v: v != 1, "n > 1 (several choices) is not supported by Anthropic Messages"),
    ("logprobs", bool, "logprobs are not available from Anthropic Messages"),
    ("top_logprobs", bool, "logprobs are not available from Anthropic Messages"),
    (
        "response_format",
        lambda v: not (isinstance(v, dict) and v.get("type") == "text"),
        "only response_format type 'text' can be translated to Anthropic Messages",
    ),
    ("audio", lambda v: True, "audio output is not supported by Anthropic Messages"),
    ("modalities", lambda v: v != ["text"], "only the 'text' modality is supported by Anthropic Messages"),
    ("prediction", lambda v: True, "predicted outputs are not supported by Anthropic Messages"),
    ("web_search_options", lambda v: True, "web_search_options cannot be translated to Anthropic Messages"),
    ("functions", lambda v: True, "legacy 'functions' are not supported; use 'tools'"),
    ("function_call", lambda v: True, "legacy 'function_call' is not supported; use 'tool_choice'"),
)

# Which Chat content-part types each role may carry into Anthropic blocks.
_SYSTEM_PARTS = frozenset({"text"})
_USER_PARTS = frozenset({"text", "image_url", "file"})
_ASSISTANT_PARTS = frozenset({"text", "refusal"})
_TOOL_PARTS = frozenset({"text", "image_url"})

# Chat fields copied unchanged (Anthropic-only extras included).
_PASSTHROUGH = ("temperature", "top_p", "top_k", "stream", "thinking")


# --------------------------------------------------------------------------- requests


def chat_request_to_messages(body: Json) -> Json:
    """An OpenAI Chat Completions request body as an Anthropic Messages request body."""
    _reject_unsupported(body)
    system, messages = _convert_messages(expect_list(body.get("messages"), "messages"))
    out: Json = {}
    if body.get("model") is not None:
        out["model"] = body["model"]
    out["messages"] = messages
    if system is not None:
        out["system"] = system
    out["max_tokens"] = _max_tokens(body)
    for key in _PASSTHROUGH:
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if stop is not None:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else expect_list(stop, "stop")
    user = body.get("user") or body.get("safety_identifier")
    if user is not None:
        out["metadata"] = {"user_id": user}
    _add_tools(body, out)
    return out


def _reject_unsupported(body: Json) -> None:
    """400 for any feature whose absence would change what the client gets back."""
    for field, in_use, why in _UNSUPPORTED:
        value = body.get(field)
        if value is not None and in_use(value):
            raise TranslationError(why, field)


def _max_tokens(body: Json) -> Any:
    """`max_completion_tokens` (the current name) over `max_tokens`, else the default."""
    for key in ("max_completion_tokens", "max_tokens"):
        if body.get(key) is not None:
            return body[key]
    return DEFAULT_MAX_TOKENS


def _convert_messages(messages: list[Any]) -> tuple[str | list[Json] | None, list[Json]]:
    """(top-level `system`, alternating Anthropic turns) for a Chat `messages` array."""
    system: list[Json] = []
    turns: list[Json] = []
    for i, raw in enumerate(messages):
        where = f"messages[{i}]"
        message = expect_dict(raw, where)
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_content_blocks(message.get("content"), where, _SYSTEM_PARTS))
        elif role == "user":
            append_turn(turns, "user", _content_blocks(message.get("content"), where, _USER_PARTS))
        elif role == "assistant":
            append_turn(turns, "assistant", _assistant_blocks(message, where))
        elif role == "tool":
            append_turn(turns, "user", [_tool_result(message, where)])
        else:
            raise TranslationError(f"message role {role!r} cannot be translated", f"{where}.role")
    return _system_value(system), [_finish_turn(turn) for turn in turns]


def _finish_turn(turn: Json) -> Json:
    """Tool results first (Anthropic requires it), and a lone plain text block as a string."""
    blocks: list[Json] = turn["content"]
    results = [b for b in blocks if b["type"] == "tool_result"]
    blocks = results + [b for b in blocks if b["type"] != "tool_result"]
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
        return {"role": turn["role"], "content": blocks[0]["text"]}
    return {"role": turn["role"], "content": blocks}


def _system_value(blocks: list[Json]) -> str | list[Json] | None:
    """A single plain system text stays a string; several keep their order as blocks."""
    if not blocks:
        return None
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
        return str(blocks[0]["text"])
    return blocks


def _content_blocks(content: Any, where: str, allowed: frozenset[str]) -> list[Json]:
    """Anthropic blocks for a Chat `content` (string or parts); empty text is skipped."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for j, raw in enumerate(expect_list(content, f"{where}.content")):
        block = _part_block(expect_dict(raw, f"{where}.content[{j}]"), f"{where}.content[{j}]", allowed)
        if block is not None:
            blocks.append(block)
    return blocks


def _part_block(part: Json, where: str, allowed: frozenset[str]) -> Json | None:
    """One Chat content part as an Anthropic block, keeping a client's `cache_control`."""
    kind = part.get("type")
    if kind not in allowed:
        raise TranslationError(f"content part type {kind!r} cannot be translated here", f"{where}.type")
    if kind in ("text", "refusal"):
        text = expect_str(part.get(kind), f"{where}.{kind}")
        if not text:
            return None
        block: Json = {"type": "text", "text": text}
    elif kind == "image_url":
        block = _image_block(part.get("image_url"), f"{where}.image_url")
    else:
        block = _document_block(expect_dict(part.get("file"), f"{where}.file"), f"{where}.file")
    if part.get("cache_control") is not None:
        block["cache_control"] = part["cache_control"]
    return block


def _image_block(image: Any, where: str) -> Json:
    """`image_url` (object or bare string) as an Anthropic base64 or URL image source."""
    url = expect_str(image.get("url") if isinstance(image, dict) else image, f"{where}.url")
    inline = parse_data_url(url)
    if inline is not None:
        media_type, data = inline
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise TranslationError("image_url must be an http(s) URL or a base64 data: URL", f"{where}.url")


def _document_block(file: Json, where: str) -> Json:
    """An inline PDF `file` part as a `document` block (uploaded `file_id`s cannot cross)."""
    inline = parse_data_url(file.get("file_data") or "")
    if inline is None or inline[0] != "application/pdf":
        raise TranslationError("only inline base64 PDF files can be translated", f"{where}.file_data")
    return {"type": "document", "source": {"type": "base64", "media_type": inline[0], "data": inline[1]}}


def _assistant_blocks(message: Json, where: str) -> list[Json]:
    """Assistant text then its `tool_calls` as `tool_use` blocks (history `reasoning_content` is dropped)."""
    blocks = _content_blocks(message.get("content"), where, _ASSISTANT_PARTS)
    calls = message.get("tool_calls") or []
    for j, raw in enumerate(expect_list(calls, f"{where}.tool_calls")):
        blocks.append(
            _tool_use_block(expect_dict(raw, f"{where}.tool_calls[{j}]"), f"{where}.tool_calls[{j}]")
        )
    return blocks


def _tool_use_block(call: Json, where: str) -> Json:
    """A Chat tool call as `tool_use`; its arguments must be a JSON object (or empty)."""
    if call.get("type", "function") != "function":
        raise TranslationError(f"tool call type {call.get('type')!r} cannot be translated", f"{where}.type")
    function = expect_dict(call.get("function"), f"{where}.function")
    arguments = expect_str(function.get("arguments", ""), f"{where}.function.arguments")
    tool_input = parse_json_object(arguments) if arguments.strip() else {}
    if tool_input is None:
        raise TranslationError("tool call arguments must be a JSON object", f"{where}.function.arguments")
    return {
        "type": "tool_use",
        "id": expect_str(call.get("id"), f"{where}.id"),
        "name": expect_str(function.get("name"), f"{where}.function.name"),
        "input": tool_input,
    }


def _tool_result(message: Json, where: str) -> Json:
    """A `role: tool` message as a `tool_result` block (string content kept as a string)."""
    content = message.get("content")
    block: Json = {
        "type": "tool_result",
        "tool_use_id": expect_str(message.get("tool_call_id"), f"{where}.tool_call_id"),
    }
    if isinstance(content, str):
        block["content"] = content
    elif content is not None:
        block["content"] = _content_blocks(content, where, _TOOL_PARTS)
    return block


def _add_tools(body: Json, out: Json) -> None:
    """`tools`, `tool_choice` and `parallel_tool_calls` in Anthropic form."""
    tools = body.get("tools")
    if tools:
        tools = expect_list(tools, "tools")
        out["tools"] = [_tool(expect_dict(t, f"tools[{k}]"), f"tools[{k}]") for k, t in enumerate(tools)]
    choice = _tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":  # `none` takes no options
            choice["disable_parallel_tool_use"] = True
    if choice is not None:
        out["tool_choice"] = choice


def _tool(tool: Json, where: str) -> Json:
    """A Chat function tool as an Anthropic custom tool (`strict` has no equivalent and is dropped)."""
    if tool.get("type") != "function":
        raise TranslationError(f"tool type {tool.get('type')!r} cannot be translated", f"{where}.type")
    function = expect_dict(tool.get("function"), f"{where}.function")
    out: Json = {"name": expect_str(function.get("name"), f"{where}.function.name")}
    if function.get("description") is not None:
        out["description"] = function["description"]
    out["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    return out


def _tool_choice(choice: Any) -> Json | None:
    """`auto`/`required`/`none`/named function as Anthropic `auto`/`any`/`none`/`tool`."""
    if choice is None:
        return None
    if isinstance(choice, str) and choice in CHAT_TO_ANTHROPIC_TOOL_CHOICE:
        return {"type": CHAT_TO_ANTHROPIC_TOOL_CHOICE[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = expect_dict(choice.get("function"), "tool_choice.function")
        return {"type": "tool", "name": expect_str(function.get("name"), "tool_choice.function.name")}
    raise TranslationError("tool_choice cannot be translated to Anthropic Messages", "tool_choice")


# --------------------------------------------------------------------------- responses


def messages_response_to_chat(body: object, *, model: str | None = None) -> Json:
    """An Anthropic `message` as a `chat.completion` (`model` overrides the upstream's name).

    A body that is not a `message` is a ProviderShapeError.
    """
    message = provider_value(body, wire.Message, "Anthropic message")
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[Json] = []
    for block in message.content or []:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "thinking":
            reasoning.append(block.thinking)
        elif block.type == "tool_use":
            tool_calls.append(_tool_call(block, provider_arguments(block.input or {})))
    chat_message: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
    if reasoning:
        chat_message["reasoning_content"] = "".join(reasoning)
    if tool_calls:
        chat_message["tool_calls"] = tool_calls
    return {
        "id": message.id or new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model if model is not None else message.model,
        "choices": [
            {
                "index": 0,
                "message": chat_message,
                "logprobs": None,
                "finish_reason": finish_reason_for(message.stop_reason),
            }
        ],
        "usage": chat_usage_from_anthropic(message.usage),
    }


def _tool_call(block: wire.ContentBlock, arguments: str) -> Json:
    """A `tool_use` block as a Chat tool call carrying `arguments` (whole or a first fragment)."""
    return {
        "id": block.id or new_id("toolu_"),
        "type": "function",
        "function": {"name": block.name or "", "arguments": arguments},
    }


# --------------------------------------------------------------------------- streaming

_read_event = EventReader(wire.StreamEvent, "Anthropic stream event")


class MessagesStreamToChat:
    """Anthropic stream events → `chat.completion.chunk` dicts.

    Tool calls are numbered by their position among tool_use blocks only
    (0, 1, 2...), since Chat's `tool_calls[].index` ignores text blocks.
    Usage arrives in a final `choices: []` chunk, as OpenAI sends it for
    `stream_options.include_usage`; `include_usage=False` omits it.  `ping`
    and unknown events produce nothing (the edge owns keep-alives).
    """

    def __init__(self, model: str | None = None, *, include_usage: bool = True) -> None:
        self._model = model
        self._include_usage = include_usage
        self._id = new_id("chatcmpl-")  # replaced by the message id at message_start
        self._created = int(time.time())
        self._tool_index: dict[int, int] = {}  # Anthropic block index → Chat tool index
        self._usage = wire.Usage()
        self._finish_sent = False
        self._stopped = False

    def feed(self, event: UpstreamEvent) -> list[Json]:
        """Translate one Anthropic event (decoded, or its JSON bytes); an `error` event or a wrong shape
        raises StreamError."""
        if self._stopped:
            return []
        match _read_event(event):
            case wire.ContentBlockDelta(index=index, delta=delta):  # first: nearly every event is one
                return self._on_block_delta(index, delta)
            case wire.MessageStart(message=message):
                return self._on_message_start(message or wire.Message())
            case wire.ContentBlockStart(index=index, content_block=block):
                return self._on_block_start(index, block)
            case wire.MessageDelta(delta=delta, usage=usage):
                return self._on_message_delta(delta, usage)
            case wire.MessageStop():
                return self._on_message_stop()
            case wire.Error(error=error):
                raise stream_error(error)
            case _:  # ping, content_block_stop, and event types added later
                return []

    def finish(self) -> list[Json]:
        """Nothing to add after `message_stop`; without one the answer was cut short."""
        if not self._stopped:
            raise StreamError("stream ended before message_stop", "api_error")
        return []

    def _chunk(self, delta: Json, finish_reason: str | None = None) -> Json:
        """A one-choice chunk under the message's id (all chunks of a completion share id and time)."""
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }

    def _add_usage(self, usage: wire.Usage | None) -> None:
        """Anthropic counts are cumulative: later values (message_delta) replace earlier ones."""
        if usage is not None:
            changed = {name: getattr(usage, name) for name in usage.__struct_fields__}
            self._usage = msgspec.structs.replace(
                self._usage, **{name: value for name, value in changed.items() if value is not None}
            )

    def _on_message_start(self, message: wire.Message) -> list[Json]:
        self._id = message.id or self._id
        if self._model is None:
            self._model = message.model
        self._add_usage(message.usage)
        return [self._chunk({"role": "assistant", "content": ""})]

    def _on_block_start(self, index: int, block: wire.ContentBlock) -> list[Json]:
        if block.type == "tool_use":
            self._tool_index[index] = k = len(self._tool_index)
            call = _tool_call(block, provider_arguments(block.input) if block.input else "")
            return [self._chunk({"tool_calls": [{"index": k, **call}]})]
        if block.type == "text" and block.text:
            return [self._chunk({"content": block.text})]
        if block.type == "thinking" and block.thinking:
            return [self._chunk({"reasoning_content": block.thinking})]
        return []  # redacted thinking and server-tool blocks have no Chat form

    def _on_block_delta(self, index: int, delta: wire.BlockDelta) -> list[Json]:
        if delta.type == "text_delta" and delta.text:
            return [self._chunk({"content": delta.text})]
        if delta.type == "thinking_delta" and delta.thinking:
            return [self._chunk({"reasoning_content": delta.thinking})]
        if delta.type == "input_json_delta" and delta.partial_json and index in self._tool_index:
            fragment = {"index": self._tool_index[index], "function": {"arguments": delta.partial_json}}
            return [self._chunk({"tool_calls": [fragment]})]
        return []  # signature and citation deltas, empty fragments

    def _on_message_delta(self, delta: wire.MessageDeltaBody | None, usage: wire.Usage | None) -> list[Json]:
        self._add_usage(usage)
        stop_reason = delta.stop_reason if delta is not None else None
        if stop_reason is None or self._finish_sent:
            return []
        self._finish_sent = True
        return [self._chunk({}, finish_reason_for(stop_reason))]

    def _on_message_stop(self) -> list[Json]:
        self._stopped = True
        out = [] if self._finish_sent else [self._chunk({}, "stop")]
        self._finish_sent = True
        if self._include_usage:
            usage_chunk = self._chunk({})
            usage_chunk["choices"] = []
            usage_chunk["usage"] = chat_usage_from_anthropic(self._usage)
            out.append(usage_chunk)
        return out
