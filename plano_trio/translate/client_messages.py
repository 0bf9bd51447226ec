"""An Anthropic Messages client in front of an OpenAI-compatible Chat provider.

Requests go Messages → Chat (`messages_request_to_chat`); answers come back
Chat → Messages (`chat_response_to_messages`, `ChatStreamToMessages`).

Decisions where the two APIs disagree (each is also noted where it is made):

* the token limit is sent as `max_tokens`, not `max_completion_tokens` as
  Plano does: OpenAI still accepts `max_tokens` for chat models, while many
  OpenAI-compatible servers (Groq, Ollama, older vLLM, LM Studio) only know
  `max_tokens` and silently ignore the newer name;
* `top_k`, `thinking`, `service_tier`, `container` and `cache_control`
  markers have no Chat meaning and are dropped; thinking blocks in the
  history are dropped too (Chat providers cannot verify their signatures);
  `mcp_servers` and Anthropic server tools (web search, bash, ...) are a 400;
* `tool_result` blocks become `role: tool` messages placed before the rest
  of their user turn; Chat tool messages carry only text, so images inside
  a tool result move to the user message that follows them; `is_error` has
  no Chat field and the result text is kept as is;
* `system` blocks and the text blocks of a tool result are joined with
  `"\\n"` (they are separately written documents), assistant text blocks
  with `""` (they are pieces of one reply, split e.g. around citations);
* `stream: true` also asks for `stream_options.include_usage`, or the
  provider would never report the usage that `message_delta` must carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plano_trio.apis import provider_chat as chat_wire
from plano_trio.translate.anthropic_common import (
    ANTHROPIC_TO_CHAT_TOOL_CHOICE,
    anthropic_usage_from_chat,
    compact_json,
    data_url,
    expect_dict,
    expect_list,
    expect_str,
    new_id,
    parse_json_object,
    stop_reason_for,
)
from plano_trio.translate.base import (
    EventValue,
    Json,
    TranslationError,
    UpstreamEvent,
    provider_value,
    stream_error,
)

# --------------------------------------------------------------------------- requests


def messages_request_to_chat(body: Json) -> Json:
    """An Anthropic Messages request body as an OpenAI Chat Completions request body."""
    if body.get("mcp_servers"):
        raise TranslationError(
            "MCP servers cannot be used through a Chat Completions provider", "mcp_servers"
        )
    messages = _system_messages(body.get("system"))
    for i, raw in enumerate(expect_list(body.get("messages"), "messages")):
        messages.extend(_convert_message(expect_dict(raw, f"messages[{i}]"), f"messages[{i}]"))
    out: Json = {}
    if body.get("model") is not None:
        out["model"] = body["model"]
    out["messages"] = messages
    for source, target in (("max_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p")):
        if body.get(source) is not None:
            out[target] = body[source]
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    if body.get("stream") is not None:
        out["stream"] = body["stream"]
        if body["stream"]:
            out["stream_options"] = {"include_usage": True}
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id") is not None:
        out["user"] = metadata["user_id"]
    _add_tools(body, out)
    return out


def _system_messages(system: Any) -> list[Json]:
    """A leading system message for `system` (string or text blocks), or none."""
    if system is None:
        return []
    if isinstance(system, str):
        text = system
    else:
        blocks = expect_list(system, "system")
        text = "\n".join(
            expect_str(expect_dict(b, f"system[{k}]").get("text"), f"system[{k}].text")
            for k, b in enumerate(blocks)
        )
    return [{"role": "system", "content": text}] if text else []


def _convert_message(message: Json, where: str) -> list[Json]:
    """One Anthropic turn as one or more Chat messages."""
    role = message.get("role")
    content = message.get("content")
    if role not in ("user", "assistant"):
        raise TranslationError(f"message role {role!r} cannot be translated", f"{where}.role")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    blocks = [
        expect_dict(b, f"{where}.content[{j}]")
        for j, b in enumerate(expect_list(content, f"{where}.content"))
    ]
    if role == "user":
        return _user_messages(blocks, where)
    return _assistant_messages(blocks, where)


def _user_messages(blocks: list[Json], where: str) -> list[Json]:
    """Tool results as `role: tool` messages first, then the user's own parts (if any)."""
    tool_messages: list[Json] = []
    parts: list[Json] = []
    for j, block in enumerate(blocks):
        here = f"{where}.content[{j}]"
        if block.get("type") == "tool_result":
            message, images = _tool_message(block, here)
            tool_messages.append(message)
            parts.extend(images)
        else:
            parts.append(_user_part(block, here))
    if parts:
        tool_messages.append({"role": "user", "content": _collapse(parts)})
    return tool_messages


def _collapse(parts: list[Json]) -> str | list[Json]:
    """A lone text part as a plain string, which every Chat server accepts."""
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def _user_part(block: Json, where: str) -> Json:
    """A user text/image/document block as a Chat content part."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": expect_str(block.get("text"), f"{where}.text")}
    if kind == "image":
        return _image_part(block, where)
    if kind == "document":
        return _document_part(block, where)
    raise TranslationError(f"content block type {kind!r} cannot be translated", f"{where}.type")


def _image_part(block: Json, where: str) -> Json:
    """Anthropic base64/URL image source as a Chat `image_url` part."""
    source = expect_dict(block.get("source"), f"{where}.source")
    kind = source.get("type")
    if kind == "base64":
        url = data_url(
            expect_str(source.get("media_type"), f"{where}.source.media_type"),
            expect_str(source.get("data"), f"{where}.source.data"),
        )
    elif kind == "url":
        url = expect_str(source.get("url"), f"{where}.source.url")
    else:
        raise TranslationError(f"image source type {kind!r} cannot be translated", f"{where}.source.type")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: Json, where: str) -> Json:
    """A base64 PDF as a Chat `file` part, a plain-text document as text; others cannot cross."""
    source = expect_dict(block.get("source"), f"{where}.source")
    if source.get("type") == "text":
        return {"type": "text", "text": expect_str(source.get("data"), f"{where}.source.data")}
    if source.get("type") == "base64" and source.get("media_type") == "application/pdf":
        file_data = data_url("application/pdf", expect_str(source.get("data"), f"{where}.source.data"))
        return {
            "type": "file",
            "file": {"filename": block.get("title") or "document.pdf", "file_data": file_data},
        }
    raise TranslationError("only base64 PDF and plain-text documents can be translated", f"{where}.source")


def _tool_message(block: Json, where: str) -> tuple[Json, list[Json]]:
    """(`role: tool` message with the result's text, image parts that must travel separately)."""
    call_id = expect_str(block.get("tool_use_id"), f"{where}.tool_use_id")
    content = block.get("content")
    texts: list[str] = []
    images: list[Json] = []
    if isinstance(content, str):
        texts.append(content)
    elif content is not None:
        for k, raw in enumerate(expect_list(content, f"{where}.content")):
            part = _user_part(expect_dict(raw, f"{where}.content[{k}]"), f"{where}.content[{k}]")
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                images.append(part)
    return {"role": "tool", "tool_call_id": call_id, "content": "\n".join(texts)}, images


def _assistant_messages(blocks: list[Json], where: str) -> list[Json]:
    """Assistant text and `tool_use` blocks as one message; a thinking-only turn vanishes."""
    texts: list[str] = []
    tool_calls: list[Json] = []
    for j, block in enumerate(blocks):
        here = f"{where}.content[{j}]"
        kind = block.get("type")
        if kind == "text":
            texts.append(expect_str(block.get("text"), f"{here}.text"))
        elif kind == "tool_use":
            tool_calls.append(_tool_call(block, here))
        elif kind not in ("thinking", "redacted_thinking"):
            raise TranslationError(f"content block type {kind!r} cannot be translated", f"{here}.type")
    if not texts and not tool_calls:
        return []
    message: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return [message]


def _tool_call(block: Json, where: str) -> Json:
    """A `tool_use` block as a Chat tool call with compact JSON `arguments`."""
    return {
        "id": expect_str(block.get("id"), f"{where}.id"),
        "type": "function",
        "function": {
            "name": expect_str(block.get("name"), f"{where}.name"),
            "arguments": compact_json(block.get("input") or {}),
        },
    }


def _add_tools(body: Json, out: Json) -> None:
    """`tools` as function tools, `tool_choice`, and `disable_parallel_tool_use`."""
    tools = body.get("tools")
    if tools:
        out["tools"] = [
            _function_tool(expect_dict(t, f"tools[{k}]"), f"tools[{k}]") for k, t in enumerate(tools)
        ]
    choice = body.get("tool_choice")
    if choice is None:
        return
    choice = expect_dict(choice, "tool_choice")
    kind = choice.get("type")
    if kind in ANTHROPIC_TO_CHAT_TOOL_CHOICE:
        out["tool_choice"] = ANTHROPIC_TO_CHAT_TOOL_CHOICE[kind]
    elif kind == "tool":
        name = expect_str(choice.get("name"), "tool_choice.name")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise TranslationError(f"tool_choice type {kind!r} cannot be translated", "tool_choice.type")
    if choice.get("disable_parallel_tool_use") and tools:  # OpenAI rejects the flag without tools
        out["parallel_tool_calls"] = False


def _function_tool(tool: Json, where: str) -> Json:
    """A custom (client-side) tool as a Chat function tool; server tools cannot run there."""
    if tool.get("type") not in (None, "custom"):
        raise TranslationError(
            f"Anthropic server tool {tool.get('type')!r} cannot be used through a Chat provider",
            f"{where}.type",
        )
    function: Json = {"name": expect_str(tool.get("name"), f"{where}.name")}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


# --------------------------------------------------------------------------- responses


def chat_response_to_messages(body: object, *, model: str | None = None) -> Json:
    """A `chat.completion` as an Anthropic `message` (`model` overrides the upstream's name).

    A body that is not a `chat.completion` is a ProviderShapeError.
    """
    completion = provider_value(body, chat_wire.Completion, "chat.completion")
    choice = completion.choices[0] if completion.choices else chat_wire.Choice()
    content = _response_blocks(choice.message or chat_wire.Message())
    used_tools = any(block["type"] == "tool_use" for block in content)
    return {
        "id": message_id_for(completion.id),
        "type": "message",
        "role": "assistant",
        "model": model if model is not None else completion.model,
        "content": content,
        "stop_reason": stop_reason_for(choice.finish_reason, used_tools=used_tools),
        "stop_sequence": None,
        "usage": anthropic_usage_from_chat(completion.usage),
    }


def message_id_for(chat_id: str | None) -> str:
    """`msg_<suffix>` from a `chatcmpl-<suffix>` id so logs correlate; a fresh id if there is none."""
    if not chat_id:
        return new_id("msg_")
    if chat_id.startswith("msg_"):
        return chat_id
    return "msg_" + chat_id.removeprefix("chatcmpl-")


def _response_blocks(message: chat_wire.Message) -> list[Json]:
    """Thinking, then text, then tool_use blocks, the order Anthropic itself produces."""
    blocks: list[Json] = []
    reasoning = message.reasoning_text()
    if reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.text() or message.refusal
    if text:
        blocks.append({"type": "text", "text": text})
    for call in message.tool_calls or []:
        function = call.function or chat_wire.Function()
        blocks.append(_tool_use(call.id, function.name, function.arguments))
    if message.function_call is not None:
        blocks.append(_tool_use(None, message.function_call.name, message.function_call.arguments))
    return blocks


def _tool_use(call_id: str | None, name: str | None, arguments: str | None) -> Json:
    """A tool_use block; arguments that are not a JSON object are kept as `{"_raw": text}`.

    A model can emit broken JSON (truncated by `length`, a weak model's
    syntax slip).  Failing the whole response would lose the text the model
    did produce, and `{}` would make the tool run with silently missing
    arguments; `_raw` keeps the evidence visible, and the client's schema
    validation rejects it so the model can retry.
    """
    text = arguments or ""
    tool_input = parse_json_object(text) if text.strip() else {}
    return {
        "type": "tool_use",
        "id": call_id or new_id("toolu_"),
        "name": name or "",
        "input": tool_input if tool_input is not None else {"_raw": text},
    }


# --------------------------------------------------------------------------- streaming


@dataclass(slots=True)
class _Block:
    """One Anthropic content block, from the first fragment seen to `content_block_stop`."""

    kind: str  # "text" | "thinking" | "tool_use"
    tool_id: str = ""
    name: str = ""
    index: int | None = None  # Anthropic content-block index, once opened
    pending: list[str] = field(default_factory=list)  # fragments waiting for the block to open
    sent: list[str] = field(default_factory=list)  # tool arguments already emitted
    closed: bool = False


_START = {"text": {"text": ""}, "thinking": {"thinking": "", "signature": ""}}
_DELTA = {
    "text": ("text_delta", "text"),
    "thinking": ("thinking_delta", "thinking"),
    "tool_use": ("input_json_delta", "partial_json"),
}


_read_chunk = EventValue(chat_wire.Completion, "chat.completion.chunk")


class ChatStreamToMessages:
    """`chat.completion.chunk` dicts → Anthropic stream events, in the exact Anthropic envelope.

    Anthropic blocks are strictly sequential (start, deltas, stop, next),
    while Chat may interleave text, reasoning and several tool calls.  Every
    fragment belongs to a block; the open ("active") block streams live and
    the others wait, buffered, in order of first appearance.  The active
    block is closed for a waiting one as soon as closing is safe: text and
    thinking always (a later fragment just opens a new block), a tool call
    only once its arguments parse as a complete JSON object, since nothing
    may be added to it after `content_block_stop`.  So sequential streams
    (OpenAI's) stream every block live, interleaved parallel tool calls
    stay correct, and only a tool call that arrives while another's JSON is
    still open is delayed.  Fragments arriving for a tool call after its
    JSON was complete (whitespace at most, for valid output) are dropped.
    Content-block indexes are allocated as blocks open, so a tool call never
    reuses the text block's index (Plano used the Chat index and collided).
    """

    def __init__(self, model: str | None = None) -> None:
        self._model = model
        self._message_id = new_id("msg_")
        self._started = False
        self._done = False
        self._next_index = 0
        self._active: _Block | None = None
        self._waiting: list[_Block] = []
        self._open_lanes: dict[str, _Block] = {}  # text/thinking block accepting fragments
        self._tools: dict[int, _Block] = {}  # by Chat tool-call index
        self._finish_reason: str | None = None
        self._usage: chat_wire.Usage | None = None

    def feed(self, event: UpstreamEvent) -> list[Json]:
        """Translate one chat chunk (decoded, or its JSON bytes); an in-stream `error` or a wrong shape
        raises StreamError."""
        if self._done:
            return []
        chunk = _read_chunk(event)
        if chunk.error is not None:
            raise stream_error(chunk.error)
        out = self._start(chunk.model)
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices or []:
            if choice.index == 0:
                out += self._on_choice(choice)
        return out

    def finish(self) -> list[Json]:
        """Close every block, then `message_delta` (stop reason, usage) and `message_stop`."""
        if self._done:
            return []
        out = self._start(None)
        out += self._close_active()
        for block in self._waiting:
            out += self._open(block)
            out += self._close_active()
        self._waiting.clear()
        self._done = True
        stop_reason = stop_reason_for(self._finish_reason, used_tools=bool(self._tools))
        out.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": anthropic_usage_from_chat(self._usage),
            }
        )
        out.append({"type": "message_stop"})
        return out

    def _start(self, chunk_model: str | None) -> list[Json]:
        """`message_start` once, before anything else (usage is unknown until the end)."""
        if self._started:
            return []
        self._started = True
        message: Json = {
            "id": self._message_id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self._model if self._model is not None else chunk_model or "",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": message}]

    def _on_choice(self, choice: chat_wire.Choice) -> list[Json]:
        """Reasoning, text and tool-call fragments of one delta, in the order a reader sees them."""
        delta = choice.delta or chat_wire.Message()
        out: list[Json] = []
        reasoning = delta.reasoning_text()
        if reasoning:
            out += self._fragment(self._lane("thinking"), reasoning)
        for text in (delta.text(), delta.refusal):
            if text:
                out += self._fragment(self._lane("text"), text)
        for position, call in enumerate(delta.tool_calls or []):
            out += self._on_tool_call(position, call)
        if choice.finish_reason is not None:
            self._finish_reason = choice.finish_reason
        return out

    def _lane(self, kind: str) -> _Block:
        """The text or thinking block accepting fragments, or a new one queued to open."""
        block = self._open_lanes.get(kind)
        if block is None:
            block = self._open_lanes[kind] = _Block(kind)
            self._waiting.append(block)
        return block

    def _on_tool_call(self, position: int, call: chat_wire.ToolCall) -> list[Json]:
        """A tool-call delta; its `index` (or list position, if a server omits it) names the call."""
        key = call.index if call.index is not None else position
        function = call.function or chat_wire.Function()
        block = self._tools.get(key)
        out: list[Json] = []
        if block is None:
            block = self._tools[key] = _Block("tool_use", tool_id=call.id or new_id("toolu_"))
            block.name = function.name or ""
            self._waiting.append(block)
            out += self._pump()
        elif block.index is None and function.name and not block.name:
            block.name = function.name  # still waiting, so the late name can be used
        if function.arguments:
            out += self._fragment(block, function.arguments)
        return out

    def _fragment(self, block: _Block, text: str) -> list[Json]:
        """Stream `text` now if its block is open, else queue it and see what can open."""
        if block is self._active:
            return [*self._delta(block, text), *self._pump()]
        if block.closed:
            return []  # after the tool's JSON was complete (see class docstring)
        block.pending.append(text)
        return self._pump()

    def _pump(self) -> list[Json]:
        """Open waiting blocks in order while the active one can safely close."""
        out: list[Json] = []
        while self._waiting:
            if self._active is not None:
                if not self._closable(self._active):
                    break
                out += self._close_active()
            out += self._open(self._waiting.pop(0))
        return out

    @staticmethod
    def _closable(block: _Block) -> bool:
        """Whether nothing more can belong to `block`: always for prose, a whole JSON object for a tool."""
        if block.kind != "tool_use":
            return True
        arguments = "".join(block.sent)
        return arguments.rstrip().endswith("}") and parse_json_object(arguments) is not None

    def _open(self, block: _Block) -> list[Json]:
        """`content_block_start` at the next free index, then whatever the block buffered."""
        block.index = self._next_index
        self._next_index += 1
        self._active = block
        if block.kind == "tool_use":
            content: Json = {"type": "tool_use", "id": block.tool_id, "name": block.name, "input": {}}
        else:
            content = {"type": block.kind, **_START[block.kind]}
        out = [{"type": "content_block_start", "index": block.index, "content_block": content}]
        if block.pending:
            out += self._delta(block, "".join(block.pending))
            block.pending.clear()
        return out

    def _delta(self, block: _Block, text: str) -> list[Json]:
        """A `content_block_delta` of the block's kind (tool arguments are remembered for `_closable`)."""
        delta_type, field_name = _DELTA[block.kind]
        if block.kind == "tool_use":
            block.sent.append(text)
        delta = {"type": delta_type, field_name: text}
        return [{"type": "content_block_delta", "index": block.index, "delta": delta}]

    def _close_active(self) -> list[Json]:
        """`content_block_stop` for the open block; the next prose fragment starts a new block."""
        block = self._active
        if block is None:
            return []
        self._active = None
        block.closed = True
        if self._open_lanes.get(block.kind) is block:
            del self._open_lanes[block.kind]
        return [{"type": "content_block_stop", "index": block.index}]
