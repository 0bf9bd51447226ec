"""OpenAI Responses clients on a Chat Completions provider: the request and the response object.

Every provider that does not speak the Responses API natively (Anthropic's
OpenAI-compatible endpoint, Groq, Mistral, local servers...) is reached by
turning the Responses request into a Chat Completions request and the chat
answer back into a Responses `response` object.  The streaming direction
lives in `client_responses_stream.py` and shares `build_response` and the item
builders defined here, so a streamed and a buffered turn look identical.

Choices where the Responses API is richer than Chat (each documented at the
rule that applies it):

* Anything Chat cannot express is a `TranslationError` naming the field, not
  a silent drop: hosted tools, `input_file`, `item_reference`, images given
  by `file_id`, `background`, `conversation`, `prompt` templates.
* State is a separate layer: it resolves `previous_response_id` into input
  items and strips it before calling `responses_request_to_chat`, so a
  `previous_response_id` still present here is an error (no silent amnesia).
* Dropped because Chat has no equivalent and the turn is still correct:
  `reasoning` input items (opaque, provider-specific), `metadata` (Chat only
  keeps it with `store`), `store`, `truncation`, `include`, `text.verbosity`,
  `service_tier`, `prompt_cache_key`, `max_tool_calls`.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from plano_trio.apis import provider_chat as chat_wire
from plano_trio.translate.base import Json, TranslationError, provider_value

CHAT_ONLY = "the upstream provider speaks Chat Completions only"

DEFAULT_PARAMETERS: Json = {"type": "object", "properties": {}}
"""Chat providers (Anthropic's in particular) reject a function tool without a schema."""

TEXT_JOINER = "\n"
"""Separates several text parts collapsed into one Chat string (see `_collapse`)."""

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
"""`developer` becomes `system`: the providers behind this path predate the developer role."""

_INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
"""Chat finish reasons that end a Responses turn as `incomplete` (with this reason)."""

_COPIED_FIELDS = (
    ("model", "model"),
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    # `max_tokens` rather than `max_completion_tokens`: every Chat-compatible server knows it.
    ("max_output_tokens", "max_tokens"),
    ("user", "user"),
)

_UNSUPPORTED_FIELDS = {
    "previous_response_id": "previous_response_id is resolved by the conversation-state layer; "
    "it cannot reach a Chat Completions provider",
    "conversation": f"conversation objects are stored by OpenAI; {CHAT_ONLY}",
    "prompt": f"prompt templates are stored by OpenAI; {CHAT_ONLY}",
}


# --- ids -------------------------------------------------------------------


def response_id() -> str:
    """A fresh `resp_<32 hex>` id, the shape OpenAI (and Plano's state store) uses."""
    return "resp_" + uuid.uuid4().hex


def item_id(prefix: str) -> str:
    """A fresh output item id such as `msg_<32 hex>`, `fc_<32 hex>` or `call_<32 hex>`."""
    return f"{prefix}_{uuid.uuid4().hex}"


_fresh_response_id = response_id  # parameters below are named `response_id` too


# --- request: Responses -> Chat ---------------------------------------------


def responses_request_to_chat(body: Json) -> Json:
    """Translate a Responses `create` body (state already merged) into a Chat Completions body."""
    _reject_unsupported(body)
    messages = _instructions(body.get("instructions")) + _input_messages(body.get("input"))
    if not messages:
        raise TranslationError("input is required", "input")
    chat: Json = {"messages": messages}
    for source, target in _COPIED_FIELDS:
        _copy(body, source, chat, target)
    if body.get("tools"):
        if not isinstance(body["tools"], list):
            raise TranslationError("tools must be a list", "tools")
        chat["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(body["tools"])]
        # OpenAI rejects parallel_tool_calls without tools, so it only travels with them.
        _copy(body, "parallel_tool_calls", chat, "parallel_tool_calls")
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        chat["reasoning_effort"] = effort
    if body.get("stream"):
        chat["stream"] = True
        # Without this the chat stream carries no usage and `response.completed` could not report it.
        chat["stream_options"] = {"include_usage": True}
    return chat


def _reject_unsupported(body: Json) -> None:
    for field, why in _UNSUPPORTED_FIELDS.items():
        if body.get(field) is not None:
            raise TranslationError(why, field)
    if body.get("background"):
        raise TranslationError(f"background responses need server-side storage; {CHAT_ONLY}", "background")


def _copy(source: Json, key: str, target: Json, target_key: str) -> None:
    if source.get(key) is not None:
        target[target_key] = source[key]


def _object(value: Any, where: str) -> Json:
    """Items, parts and tools must be JSON objects; anything else is the client's error."""
    if not isinstance(value, dict):
        raise TranslationError(f"{where} must be an object", where)
    return value


def _required(obj: Json, key: str, where: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise TranslationError(f"{where}.{key} is required", f"{where}.{key}")
    return value


def _instructions(instructions: Any) -> list[Json]:
    if instructions is None or instructions == "":
        return []
    if not isinstance(instructions, str):
        raise TranslationError("instructions must be a string", "instructions")
    return [{"role": "system", "content": instructions}]


def _input_messages(value: Any) -> list[Json]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise TranslationError("input must be a string or a list of items", "input")
    messages: list[Json] = []
    for index, item in enumerate(value):
        where = f"input[{index}]"
        kind = _object(item, where).get("type", "message")  # EasyInputMessage may omit `type`
        handler = _ITEM_HANDLERS.get(kind)
        if handler is None:
            raise TranslationError(f"input item type {kind!r} is not supported: {CHAT_ONLY}", f"{where}.type")
        handler(messages, item, where)
    return messages


def _message_item(messages: list[Json], item: Json, where: str) -> None:
    role = _ROLES.get(item.get("role", ""))
    if role is None:
        raise TranslationError(f"message role {item.get('role')!r} is not supported", f"{where}.role")
    content = _content(item.get("content"), where, role)
    if role == "assistant" and not content:
        return  # e.g. a replayed refusal-only answer: nothing Chat could carry
    messages.append({"role": role, "content": content})


def _function_call_item(messages: list[Json], item: Json, where: str) -> None:
    """Consecutive calls (and the assistant text before them) form ONE assistant turn in Chat."""
    arguments = item.get("arguments", "")
    call = {
        "id": _required(item, "call_id", where),
        "type": "function",
        "function": {
            "name": _required(item, "name", where),
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        },
    }
    if messages and messages[-1]["role"] == "assistant":
        messages[-1].setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "tool_calls": [call]})


def _function_call_output_item(messages: list[Json], item: Json, where: str) -> None:
    output = _required(item, "output", where)
    content = output if isinstance(output, str) else _collapse(_parts(output, f"{where}.output", "tool"))
    messages.append({"role": "tool", "tool_call_id": _required(item, "call_id", where), "content": content})


def _reasoning_item(messages: list[Json], item: Json, where: str) -> None:
    """Reasoning items are opaque to (and unverifiable by) another provider: dropped."""


def _item_reference(messages: list[Json], item: Json, where: str) -> None:
    raise TranslationError(f"item_reference needs OpenAI's stored items; {CHAT_ONLY}", where)


_ITEM_HANDLERS: dict[str, Callable[[list[Json], Json, str], None]] = {
    "message": _message_item,
    "function_call": _function_call_item,
    "function_call_output": _function_call_output_item,
    "reasoning": _reasoning_item,
    "item_reference": _item_reference,
}


def _content(content: Any, where: str, role: str) -> str | list[Json]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TranslationError(f"{where}.content must be a string or a list of parts", f"{where}.content")
    return _collapse(_parts(content, f"{where}.content", role))


def _parts(parts: Any, where: str, role: str) -> list[Json]:
    if not isinstance(parts, list):
        raise TranslationError(f"{where} must be a string or a list of parts", where)
    chat_parts = (_part(part, f"{where}[{index}]", role) for index, part in enumerate(parts))
    return [part for part in chat_parts if part is not None]


def _part(part: Any, where: str, role: str) -> Json | None:
    kind = _object(part, where).get("type")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": part.get("text", "")}
    if kind == "refusal":
        return None  # a refusal is the model's own non-answer; replaying it adds nothing
    if kind == "input_image":
        return _image_part(part, where, role)
    if kind == "input_file":
        raise TranslationError(f"input_file content is not supported: {CHAT_ONLY}", where)
    raise TranslationError(f"content part type {kind!r} is not supported: {CHAT_ONLY}", f"{where}.type")


def _image_part(part: Json, where: str, role: str) -> Json:
    if role != "user":
        raise TranslationError(
            f"input_image is only allowed in user messages by Chat Completions ({role})", where
        )
    url = part.get("image_url")
    if not url:
        if part.get("file_id"):
            raise TranslationError(
                f"images by file_id need OpenAI's file store; {CHAT_ONLY}", f"{where}.file_id"
            )
        raise TranslationError("input_image needs an image_url", f"{where}.image_url")
    image: Json = {"url": url}
    _copy(part, "detail", image, "detail")
    return {"type": "image_url", "image_url": image}


def _collapse(parts: list[Json]) -> str | list[Json]:
    """Text-only content becomes one string: every Chat server accepts that for every role."""
    if all(part["type"] == "text" for part in parts):
        return TEXT_JOINER.join(part["text"] for part in parts)
    return parts


def _tool(tool: Any, where: str) -> Json:
    kind = _object(tool, where).get("type")
    if kind != "function":
        raise TranslationError(
            f"tool type {kind!r} is not supported: {CHAT_ONLY}, which only has function tools",
            f"{where}.type",
        )
    function: Json = {
        "name": _required(tool, "name", where),
        "parameters": tool.get("parameters") or copy.deepcopy(DEFAULT_PARAMETERS),
    }
    _copy(tool, "description", function, "description")
    _copy(tool, "strict", function, "strict")
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if choice in ("none", "auto", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    shown = choice.get("type") if isinstance(choice, dict) else choice
    raise TranslationError(f"tool_choice {shown!r} is not supported: {CHAT_ONLY}", "tool_choice")


def _response_format(text: Any) -> Json | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not fmt or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema: Json = {
            "name": _required(fmt, "name", "text.format"),
            "schema": _required(fmt, "schema", "text.format"),
        }
        _copy(fmt, "description", schema, "description")
        _copy(fmt, "strict", schema, "strict")
        return {"type": "json_schema", "json_schema": schema}
    raise TranslationError(f"text.format type {fmt.get('type')!r} is not supported", "text.format.type")


# --- response: Chat -> Responses ---------------------------------------------


def finish_status(finish_reason: str | None) -> tuple[str, str | None]:
    """(`completed`, None) or (`incomplete`, reason) for a Chat finish_reason.

    `content_filter` is `incomplete` (reason `content_filter`, which the SDK
    allows) rather than Plano's `failed`: the partial output is still valid.
    """
    reason = _INCOMPLETE_REASONS.get(finish_reason or "")
    return ("incomplete", reason) if reason else ("completed", None)


def chat_usage_to_responses(usage: chat_wire.Usage | None) -> Json | None:
    """Chat `usage` in Responses shape (None when the provider reported none)."""
    if usage is None:
        return None
    prompt_details = usage.prompt_tokens_details or chat_wire.PromptTokensDetails()
    completion_details = usage.completion_tokens_details or chat_wire.CompletionTokensDetails()
    input_tokens = usage.prompt_tokens or 0
    output_tokens = usage.completion_tokens or 0
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {
            "cached_tokens": prompt_details.cached_tokens or 0,
            "cache_write_tokens": prompt_details.cache_write_tokens or 0,
        },
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": completion_details.reasoning_tokens or 0},
        "total_tokens": usage.total_tokens or input_tokens + output_tokens,
    }


def output_text_part(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def refusal_part(refusal: str) -> Json:
    return {"type": "refusal", "refusal": refusal}


def message_item(id_: str, content: list[Json], status: str) -> Json:
    return {"id": id_, "type": "message", "status": status, "role": "assistant", "content": content}


def function_call_item(id_: str, *, call_id: str, name: str, arguments: str, status: str) -> Json:
    return {
        "id": id_,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def _echo_defaults() -> Json:
    """What OpenAI echoes for request fields the client left out (fresh dicts every time)."""
    return {
        "background": False,
        "instructions": None,
        "max_output_tokens": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": None,
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "user": None,
    }


def build_response(
    request: Json,
    *,
    response_id: str,
    created_at: int,
    model: str,
    output: list[Json],
    status: str,
    usage: Json | None,
    incomplete_reason: str | None = None,
) -> Json:
    """The Responses `response` object, shared by the buffered and the streamed path.

    The request's own settings are echoed (the SDK requires `tools`,
    `tool_choice`, `parallel_tool_calls`; clients read the rest back).
    """
    echoed = {
        key: request[key] if request.get(key) is not None else default
        for key, default in _echo_defaults().items()
    }
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": incomplete_reason} if status == "incomplete" else None,
        "model": model,
        "output": output,
        "usage": usage,
        **echoed,
    }


def chat_response_to_responses(body: object, *, request: Json, response_id: str | None = None) -> Json:
    """A `chat.completion` as the Responses object the client asked for.

    A body that is not a `chat.completion` is a ProviderShapeError.
    """
    completion = provider_value(body, chat_wire.Completion, "chat.completion")
    choice = completion.choices[0] if completion.choices else chat_wire.Choice()
    status, reason = finish_status(choice.finish_reason)
    output = _output_items(choice.message or chat_wire.Message())
    if output and status == "incomplete":
        output[-1]["status"] = "incomplete"  # the item being generated when the turn was cut
    return build_response(
        request,
        response_id=response_id or _fresh_response_id(),
        created_at=completion.created or int(time.time()),
        model=completion.model or request.get("model") or "",
        output=output,
        status=status,
        usage=chat_usage_to_responses(completion.usage),
        incomplete_reason=reason,
    )


def _output_items(message: chat_wire.Message) -> list[Json]:
    content: list[Json] = []
    text = message.text()
    if text:
        content.append(output_text_part(text))
    if message.refusal:
        content.append(refusal_part(message.refusal))
    items = [message_item(item_id("msg"), content, "completed")] if content else []
    for call in message.tool_calls or []:
        function = call.function or chat_wire.Function()
        items.append(
            function_call_item(
                item_id("fc"),
                call_id=call.id or item_id("call"),
                name=function.name or "",
                arguments=function.arguments or "",
                status="completed",
            )
        )
    return items
