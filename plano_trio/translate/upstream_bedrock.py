"""Chat Completions (the pivot) ↔ Amazon Bedrock Converse / ConverseStream.

Every client API reaches Bedrock through Converse (`/model/<id>/converse`)
or ConverseStream (`…/converse-stream`), as in Plano, authenticated with a
Bedrock API key; the path itself is built with the provider catalog.  The
model id and streaming live in the URL, so neither `model` nor `stream`
appears in the Converse body.

Where this deliberately differs from Plano (`crates/hermesllm`):

* the model id in the path is percent-encoded like the AWS SDKs do
  (`…v1:0` → `…v1%3A0`), which ARNs and inference-profile ids need;
* images use Converse's real shape `{"image": {"format", "source": {"bytes"}}}`;
  http(s) image URLs are a `TranslationError` (Converse only takes inline bytes)
  instead of being fetched or dropped;
* blank text is dropped rather than replaced by `" "`: Bedrock rejects
  whitespace-only text blocks; a message left empty disappears and its
  neighbours merge, since Converse wants strictly alternating roles (an empty
  tool output becomes `toolResult.content: []`; `status` is left out);
* `tool_choice: "none"` drops the tools (Plano sends `auto`, inviting the calls
  the client forbade).  Only when the history already holds toolUse/toolResult
  blocks are the tools kept, because Converse then requires a `toolConfig`;
* streamed tool calls are numbered 0, 1, … as OpenAI clients expect, not by
  Converse's content-block index; reasoning deltas become `reasoning_content`;
* `prompt_tokens` includes Bedrock's cache reads and writes (`inputTokens`
  excludes them, OpenAI's `prompt_tokens` does not), with the reads also in
  `prompt_tokens_details.cached_tokens`.

Sampling knobs Converse has no field for (`seed`, penalties, `logprobs`,
`response_format`, `parallel_tool_calls`, `user`, `metadata`…) are dropped, as
Plano does; `n > 1` is refused because it would change the response's shape.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from plano_trio.apis import provider_bedrock as wire
from plano_trio.translate.anthropic_common import provider_arguments
from plano_trio.translate.base import (
    EventReader,
    Json,
    StreamError,
    TranslationError,
    UpstreamEvent,
    append_turn,
    provider_value,
)
from plano_trio.translate.eventstream import EventMessage

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
"""Converse `stopReason` → Chat `finish_reason`; anything else (e.g. `malformed_tool_use`) is `stop`."""

_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


class BedrockStreamError(StreamError):
    """ConverseStream failed mid-stream: an exception frame, or no `messageStop` before the end.

    `error_type` is Bedrock's exception name (`throttlingException`,
    `modelStreamErrorException`...) when the stream carried one.
    """

    def __init__(self, message: str, error_type: str = "api_error") -> None:
        super().__init__(message, error_type)


def finish_reason(stop_reason: str | None) -> str:
    """Chat `finish_reason` for a Converse `stopReason` (shared by responses and streams)."""
    return FINISH_REASONS.get(stop_reason or "", "stop")


def chat_usage(usage: wire.Usage) -> Json:
    """Converse `usage` → Chat `usage` (cache tokens folded into `prompt_tokens`)."""
    cache_read = usage.cache_read_input_tokens or 0
    prompt = (usage.input_tokens or 0) + cache_read + (usage.cache_write_input_tokens or 0)
    completion = usage.output_tokens or 0
    chat: Json = {"prompt_tokens": prompt, "completion_tokens": completion}
    chat["total_tokens"] = prompt + completion
    if usage.cache_read_input_tokens is not None:
        chat["prompt_tokens_details"] = {"cached_tokens": cache_read}
    return chat


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


# --------------------------------------------------------------------------- requests


def chat_request_to_converse(body: Json) -> Json:
    """A Chat Completions request body → a Converse body (same for ConverseStream)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TranslationError("messages must be a non-empty list", "messages")
    if body.get("n") not in (None, 1):
        raise TranslationError("Bedrock Converse returns a single choice; n must be 1", "n")
    system: list[Json] = []
    turns: list[Json] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise TranslationError("each message must be an object", where)
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_content_blocks(message.get("content"), f"{where}.content", images=False))
            continue
        if not isinstance(role, str) or role not in _TURNS:
            raise TranslationError(f"unsupported message role {role!r}", f"{where}.role")
        converse_role, blocks_of = _TURNS[role]
        append_turn(turns, converse_role, blocks_of(message, where))
    converse: Json = {"messages": turns}
    if system:
        converse["system"] = system
    if inference := _inference_config(body):
        converse["inferenceConfig"] = inference
    if tool_config := _tool_config(body, turns):
        converse["toolConfig"] = tool_config
    return converse


def _user_blocks(message: Json, where: str) -> list[Json]:
    return _content_blocks(message.get("content"), f"{where}.content", images=True)


def _assistant_blocks(message: Json, where: str) -> list[Json]:
    blocks = _content_blocks(message.get("content"), f"{where}.content", images=False)
    tool_calls = message.get("tool_calls") or []
    if not isinstance(tool_calls, list):
        raise TranslationError("tool_calls must be a list", f"{where}.tool_calls")
    blocks.extend(_tool_use_block(call, f"{where}.tool_calls[{k}]") for k, call in enumerate(tool_calls))
    return blocks


def _tool_blocks(message: Json, where: str) -> list[Json]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise TranslationError("tool messages need a tool_call_id", f"{where}.tool_call_id")
    content = _content_blocks(message.get("content"), f"{where}.content", images=False)
    return [{"toolResult": {"toolUseId": call_id, "content": content}}]


_TURNS: dict[str, tuple[str, Callable[[Json, str], list[Json]]]] = {
    "user": ("user", _user_blocks),
    "assistant": ("assistant", _assistant_blocks),
    "tool": ("user", _tool_blocks),  # Converse carries tool results in the next user turn
}


def _content_blocks(content: Any, where: str, *, images: bool) -> list[Json]:
    """Chat `content` (string or parts) → Converse text/image blocks, blank text dropped."""
    if content is None:
        return []
    if isinstance(content, str):
        return _text_block(content, where)
    if not isinstance(content, list):
        raise TranslationError("content must be a string or a list of parts", where)
    blocks: list[Json] = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            blocks.extend(_text_block(part.get(kind), f"{at}.{kind}"))
        elif kind == "image_url" and images:
            blocks.append(_image_block(part.get("image_url"), f"{at}.image_url"))
        else:
            raise TranslationError(f"Bedrock cannot take a {kind!r} content part here", f"{at}.type")
    return blocks


def _text_block(text: Any, where: str) -> list[Json]:
    if not isinstance(text, str):
        raise TranslationError("text must be a string", where)
    return [{"text": text}] if text.strip() else []


def _image_block(image_url: Any, where: str) -> Json:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    header, comma, data = url.partition(",") if isinstance(url, str) else ("", "", "")
    media_type, *params = header.removeprefix("data:").split(";")
    if not header.startswith("data:") or not comma or "base64" not in params:
        raise TranslationError(
            "Bedrock Converse takes image bytes, not links: use a data:image/...;base64, URL", f"{where}.url"
        )
    image_format = _IMAGE_FORMATS.get(media_type.lower())
    if image_format is None:
        raise TranslationError(
            f"image type {media_type!r} is not supported by Bedrock (png, jpeg, gif, webp)", f"{where}.url"
        )
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def _tool_use_block(call: Any, where: str) -> Json:
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise TranslationError("only function tool calls are supported by Bedrock", f"{where}.type")
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise TranslationError("a tool call needs function.name", f"{where}.function.name")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise TranslationError("a tool call needs an id", f"{where}.id")
    arguments = _tool_input(function.get("arguments"), f"{where}.function.arguments")
    return {"toolUse": {"toolUseId": call_id, "name": function["name"], "input": arguments}}


def _tool_input(arguments: Any, where: str) -> Json:
    """Chat carries arguments as a JSON string; Converse wants the object itself."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else None
    except json.JSONDecodeError as exc:
        raise TranslationError(f"tool call arguments are not valid JSON: {exc}", where) from exc
    if not isinstance(parsed, dict):
        raise TranslationError("tool call arguments must be a JSON object", where)
    return parsed


def _inference_config(body: Json) -> Json:
    config: Json = {}
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else stop
    if stop:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise TranslationError("stop must be a string or a list of strings", "stop")
        config["stopSequences"] = stop
    return config


def _tool_config(body: Json, turns: list[Json]) -> Json | None:
    raw_tools = body.get("tools") or []
    if not isinstance(raw_tools, list):
        raise TranslationError("tools must be a list", "tools")
    tools = [_tool_spec(tool, f"tools[{i}]") for i, tool in enumerate(raw_tools)]
    choice = body.get("tool_choice")
    if choice == "none":
        return {"tools": tools} if tools and _uses_tools(turns) else None
    tool_choice = _tool_choice(choice)
    if not tools:
        if tool_choice is not None and "auto" not in tool_choice:
            raise TranslationError("tool_choice needs tools", "tool_choice")
        return None
    config: Json = {"tools": tools}
    if tool_choice is not None:
        config["toolChoice"] = tool_choice
    return config


def _tool_spec(tool: Any, where: str) -> Json:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise TranslationError("only function tools are supported by Bedrock", f"{where}.type")
    function = tool.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise TranslationError("a tool needs function.name", f"{where}.function.name")
    spec: Json = {"name": function["name"]}
    if function.get("description"):
        spec["description"] = function["description"]
    spec["inputSchema"] = {"json": function.get("parameters") or {"type": "object", "properties": {}}}
    return {"toolSpec": spec}


def _tool_choice(choice: Any) -> Json | None:
    if choice is None:
        return None  # Converse defaults to auto
    if choice == "auto":
        return {"auto": {}}
    if choice == "required":
        return {"any": {}}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str) and name:
            return {"tool": {"name": name}}
    raise TranslationError(f"tool_choice {choice!r} is not supported by Bedrock", "tool_choice")


def _uses_tools(turns: list[Json]) -> bool:
    return any("toolUse" in block or "toolResult" in block for turn in turns for block in turn["content"])


# --------------------------------------------------------------------------- responses


def converse_response_to_chat(body: object, *, model: str) -> Json:
    """A Converse response body → a `chat.completion` (Converse has no id, so one is minted).

    A body that is not a Converse response is a ProviderShapeError.
    """
    response = provider_value(body, wire.Response, "Converse response")
    message = response.output.message if response.output is not None else None
    blocks = message.content if message is not None else None
    text: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[Json] = []
    for block in blocks or []:
        if block.text is not None:
            text.append(block.text)
        elif block.tool_use is not None:
            tool_calls.append(_chat_tool_call(block.tool_use))
        elif block.reasoning_content is not None:
            reasoning_text = block.reasoning_content.reasoning_text
            reasoning.append(reasoning_text.text if reasoning_text is not None else "")
        # images, documents, citations, guard content: Chat has nowhere to put them
    chat_message: Json = {"role": "assistant", "content": "".join(text) if text or not tool_calls else None}
    if any(reasoning):
        chat_message["reasoning_content"] = "".join(reasoning)
    if tool_calls:
        chat_message["tool_calls"] = tool_calls
    completion: Json = {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": chat_message,
                "logprobs": None,
                "finish_reason": finish_reason(response.stop_reason),
            }
        ],
    }
    if response.usage is not None:
        completion["usage"] = chat_usage(response.usage)
    return completion


def _chat_tool_call(tool_use: wire.ToolUse) -> Json:
    return {
        "id": tool_use.tool_use_id,
        "type": "function",
        "function": {"name": tool_use.name, "arguments": provider_arguments(tool_use.input)},
    }


# --------------------------------------------------------------------------- streaming


def converse_stream_event(message: EventMessage) -> Json:
    """One decoded event-stream frame → the input `ConverseStreamToChat.feed` expects.

    This is the edge's half of the contract, kept next to the translator so
    both agree: `event` frames become `{"event_type", "payload"}`; modelled
    `exception` frames (and unmodelled `error` frames, whose text is in
    headers) become `{"exception_type", "payload"}`.  Payloads are the decoded
    JSON objects, `p` padding included.  A payload that is not a JSON object
    is a BedrockStreamError.
    """
    kind = message.message_type
    if kind == "error":
        return {
            "exception_type": message.error_code or "unknownError",
            "payload": {"message": message.error_message or ""},
        }
    try:
        payload = msgspec.json.decode(message.payload) if message.payload else {}
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BedrockStreamError(f"undecodable ConverseStream payload: {exc}") from None
    if not isinstance(payload, dict):
        raise BedrockStreamError("ConverseStream payload is not a JSON object")
    if kind == "exception":
        # AWS names the exception in `:exception-type`; Plano reads `:event-type`.
        name = message.exception_type or message.event_type or "unknownException"
        return {"exception_type": name, "payload": payload}
    if kind == "event":
        return {"event_type": message.event_type, "payload": payload}
    raise BedrockStreamError(f"unknown event-stream message type {kind!r}")


_read_event = EventReader(wire.StreamEvent, "ConverseStream event")


class ConverseStreamToChat:
    """ConverseStream events → `chat.completion.chunk` dicts.

    Input contract (see `converse_stream_event`): each event is
    `{"event_type": <:event-type>, "payload": <JSON object>}`, or
    `{"exception_type": <name>, "payload": {"message": ...}}` for an exception
    frame, which raises `BedrockStreamError` (the stream cannot continue).
    An event of the wrong shape raises ProviderShapeError.

    `messageStart` → role chunk; `contentBlockStart` with `toolUse` → a
    tool_call chunk (id, name, empty arguments) at the next tool index;
    `contentBlockDelta` → `content`, the tool's `arguments` fragment, or
    `reasoning_content`; `messageStop` → the finish chunk; `metadata` → a
    usage chunk with `choices: []`.  `contentBlockStop` and unknown events
    carry nothing for Chat.  The edge appends `data: [DONE]` after `finish()`.
    """

    __slots__ = ("_created", "_id", "_model", "_stopped", "_tool_index")

    def __init__(self, model: str) -> None:
        self._model = model
        self._id = _completion_id()
        self._created = int(time.time())
        # Converse content-block index → Chat tool_calls index of the tool it streams.
        self._tool_index: dict[int, int] = {}
        self._stopped = False

    def feed(self, event: UpstreamEvent) -> list[Json]:
        if isinstance(event, dict) and "exception_type" in event:
            exception = provider_value(event, wire.StreamException, "ConverseStream exception")
            detail = exception.payload.message or exception.payload.original_message or "no message"
            kind = exception.exception_type
            raise BedrockStreamError(f"Bedrock stream {kind}: {detail}", kind)
        match _read_event(event):
            case wire.ContentBlockDelta(payload=payload):  # first: nearly every event is one
                return self._block_delta(payload)
            case wire.MessageStart():
                return [self._chunk({"role": "assistant", "content": ""})]
            case wire.ContentBlockStart(payload=payload):
                return self._block_start(payload)
            case wire.MessageStop(payload=payload):
                self._stopped = True
                return [self._chunk({}, finish_reason(payload.stop_reason))]
            case wire.Metadata(payload=wire.MetadataPayload(usage=wire.Usage() as usage)):
                return [self._envelope(choices=[], usage=chat_usage(usage))]
            case _:
                return []

    def finish(self) -> list[Json]:
        if not self._stopped:
            raise BedrockStreamError("stream ended early")
        return []

    def _block_start(self, payload: wire.BlockStartPayload) -> list[Json]:
        tool_use = payload.start.tool_use if payload.start is not None else None
        if tool_use is None:
            return []  # text/reasoning blocks start implicitly with their first delta
        index = len(self._tool_index)
        self._tool_index[payload.content_block_index] = index
        call = {
            "index": index,
            "id": tool_use.tool_use_id,
            "type": "function",
            "function": {"name": tool_use.name, "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, payload: wire.BlockDeltaPayload) -> list[Json]:
        delta = payload.delta or wire.BlockDelta()
        if delta.text:
            return [self._chunk({"content": delta.text})]
        if delta.tool_use is not None:
            return self._arguments(payload.content_block_index, delta.tool_use.input)
        if delta.reasoning_content is not None and delta.reasoning_content.text:
            return [self._chunk({"reasoning_content": delta.reasoning_content.text})]
        return []  # empty text, reasoning signatures, citations

    def _arguments(self, block: int, fragment: str) -> list[Json]:
        if block not in self._tool_index:
            raise BedrockStreamError(f"toolUse delta for content block {block} that never started")
        if not fragment:
            return []
        call = {"index": self._tool_index[block], "function": {"arguments": fragment}}
        return [self._chunk({"tool_calls": [call]})]

    def _chunk(self, delta: Json, finish: str | None = None) -> Json:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._envelope(choices=[choice])

    def _envelope(self, **fields: Any) -> Json:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            **fields,
        }
