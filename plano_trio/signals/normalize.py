"""A request (and its answer) in any client API as the rows the analysis reads, bounded.

Plano converts every client request to Chat messages and those to ShareGPT
rows (`analyzer` describes the rows):

- a user message is a `human` row, even when it has no text;
- an assistant message is a `gpt` row when it has text, then one
  `function_call` row per tool call, `{"name": ..., "arguments": ...}`
  with the arguments as the call's JSON text;
- a tool message is an `observation` row;
- system and developer messages are dropped.

A message's text is its string content, or its text parts joined with
"\\n" (images, files, audio and thinking carry none).  Per client API, as
Plano converts them:

- Chat: `messages` as they are; `tool_calls[].function` gives the calls.
- Anthropic Messages: a message's tool results (`tool_result`,
  `web_search_tool_result`, `code_execution_tool_result`,
  `mcp_tool_result`) become tool messages first, then the message itself
  if it has text or image blocks or tool calls (`tool_use`,
  `server_tool_use`, `mcp_tool_use`, the input written as compact JSON).
  A user message of tool results only is therefore not a user turn.
- Responses: a string `input` is one user message; items in order:
  messages (dropped, as Plano drops them, when a content entry is not
  one it reads), `function_call_output`/`custom_tool_call_output` as tool
  messages (a non-string output as compact JSON), `function_call` and
  `custom_tool_call` as calls (a custom call's arguments are
  `{"input": ...}`), references and reasoning dropped.

Plano analyses the request's messages only.  `conversation` can also
append the answer (a Chat completion's first choice, an Anthropic message's
content, a Responses `output`), read the same way as an assistant turn.

Nothing here rejects a value of the wrong shape inside the request (Plano
would have answered 400 before analysing): such a message, part or call is
skipped.  Only a request that is not an object at all raises
`ConversationError`.

Bounds, on the last `MAX_MESSAGES` rows only (the rest is never looked at
past its conversion): text of at most `MAX_MESSAGE_LENGTH` characters (the
first fifth and last four fifths, as Plano cuts the messages it reads);
a call's name cut the same way, and its arguments, when longer, replaced
by their start and a digest, which keeps "equal arguments" exactly as
decided on the full text (only equality is ever asked of them).  Lone
surrogates, which no UTF-8 exporter can send, become U+FFFD.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

try:  # hashlib's own BLAKE2 (`hashlib.blake2b is _blake2.blake2b`), without hashlib loading OpenSSL:
    from _blake2 import blake2b  # OpenSSL would be ~3.5 MB of the signals worker's memory for nothing
except ImportError:  # an interpreter built without it
    from hashlib import blake2b

from plano_trio.apis.kind import Api

from .analyzer import MAX_MESSAGE_LENGTH, MAX_MESSAGES
from .text import head_and_tail

Row = tuple[str, str]

MAX_CALL_ROW = 20_000
"""Most characters of a `function_call` row: a bounded name and arguments, JSON-escaped."""

_ANTHROPIC_TOOL_RESULTS = frozenset(
    ("tool_result", "web_search_tool_result", "code_execution_tool_result", "mcp_tool_result")
)
_ANTHROPIC_TOOL_USES = frozenset(("tool_use", "server_tool_use", "mcp_tool_use"))
_RESPONSES_TEXT = frozenset(("input_text", "text", "output_text"))
_ROLES = frozenset(("user", "assistant", "tool", "system", "developer"))
_ANTHROPIC_ROLES = frozenset(("user", "assistant", "system"))


class ConversationError(ValueError):
    """The request is not a JSON object, so it holds no conversation."""


class Call(NamedTuple):
    name: str
    arguments: str


class Message(NamedTuple):
    """A Chat message as far as the rows need it."""

    role: str
    text: str
    calls: tuple[Call, ...] = ()


def conversation(api: Api, request: object, response: object = None) -> tuple[Row, ...]:
    """The bounded rows of `request`'s conversation, with `response`'s turn appended when given."""
    if not isinstance(request, Mapping):
        raise ConversationError(f"a {api.value} request must be a JSON object, not {type(request).__name__}")
    rows = [row for message in _messages(api, request, response) for row in _rows(message)]
    return tuple(_bounded(role, value) for role, value in rows[-MAX_MESSAGES:])


def _messages(api: Api, request: Mapping[str, Any], response: object) -> Iterator[Message]:
    if api is Api.CHAT:
        yield from _chat(request.get("messages"))
        if isinstance(response, Mapping):
            yield from _chat(_first_choice_message(response))
    elif api is Api.MESSAGES:
        yield from _anthropic(request.get("messages"))
        if isinstance(response, Mapping):
            yield from _anthropic([{"role": "assistant", "content": response.get("content")}])
    elif api is Api.RESPONSES:
        yield from _responses(request.get("input"))
        if isinstance(response, Mapping):
            yield from _responses(response.get("output"))


def _rows(message: Message) -> Iterator[Row]:
    if message.role == "user":
        yield "human", message.text
    elif message.role == "assistant":
        if message.text:
            yield "gpt", message.text
        for call in message.calls:
            yield "function_call", _call_row(call)
    elif message.role == "tool":
        yield "observation", message.text


def _call_row(call: Call) -> str:
    return json.dumps(
        {"name": call.name, "arguments": call.arguments}, ensure_ascii=False, separators=(",", ":")
    )


def _bounded(role: str, value: str) -> Row:
    if role != "function_call":
        return role, _utf8(head_and_tail(value, MAX_MESSAGE_LENGTH))
    return role, _utf8(value if len(value) <= MAX_MESSAGE_LENGTH else _bounded_call(value))


def _bounded_call(value: str) -> str:
    call = json.loads(value)  # written by `_call_row` just before
    arguments: str = call["arguments"]
    if len(arguments) > MAX_MESSAGE_LENGTH:
        digest = blake2b(arguments.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        arguments = f"{arguments[: MAX_MESSAGE_LENGTH // 2]}\u2026blake2b:{digest}"
    return _call_row(Call(head_and_tail(call["name"], MAX_MESSAGE_LENGTH), arguments))


def _utf8(text: str) -> str:
    """`text` with any lone surrogate replaced by U+FFFD (pairs written as two halves are joined)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _name(value: object) -> str | None:
    """`value` if it is a string: roles and types are looked up in sets, where a list would raise."""
    return value if isinstance(value, str) else None


def _compact(value: object) -> str:
    """A JSON value as compact JSON text (serde_json's `to_string`)."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return ""


def _joined(parts: object, kinds: frozenset[str]) -> str:
    """The `text` of the parts whose `type` is in `kinds`, joined with "\\n"."""
    if not isinstance(parts, list):
        return ""
    return "\n".join(
        part["text"]
        for part in parts
        if isinstance(part, Mapping)
        and _name(part.get("type")) in kinds
        and isinstance(part.get("text"), str)
    )


def _content_text(content: object, kinds: frozenset[str]) -> str:
    return content if isinstance(content, str) else _joined(content, kinds)


# -- Chat ---------------------------------------------------------------------------------------

_CHAT_TEXT = frozenset(("text",))


def _first_choice_message(response: Mapping[str, Any]) -> list[object]:
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        message = choices[0].get("message")
        if isinstance(message, Mapping):
            return [{**message, "role": "assistant"}]
    return []


def _chat(messages: object) -> Iterator[Message]:
    if not isinstance(messages, list):
        return
    for message in messages:
        if not isinstance(message, Mapping) or _name(message.get("role")) not in _ROLES:
            continue
        yield Message(
            message["role"],
            _content_text(message.get("content"), _CHAT_TEXT),
            _chat_calls(message.get("tool_calls")),
        )


def _chat_calls(calls: object) -> tuple[Call, ...]:
    if not isinstance(calls, list):
        return ()
    found = []
    for call in calls:
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            arguments = function.get("arguments", "")
            found.append(
                Call(function["name"], arguments if isinstance(arguments, str) else _compact(arguments))
            )
    return tuple(found)


# -- Anthropic Messages -------------------------------------------------------------------------


def _anthropic(messages: object) -> Iterator[Message]:
    if not isinstance(messages, list):
        return
    for message in messages:
        if not isinstance(message, Mapping) or _name(message.get("role")) not in (
            "user",
            "assistant",
            "system",
        ):
            continue
        role = message["role"]
        content = message.get("content")
        if isinstance(content, str):
            yield Message(role, content)
        elif isinstance(content, list):
            yield from _anthropic_blocks(role, content)


def _anthropic_blocks(role: str, blocks: list[Any]) -> Iterator[Message]:
    """Tool results first (as tool messages), then the message itself if it has parts or calls."""
    texts: list[str] = []
    parts = 0
    calls: list[Call] = []
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        kind = _name(block.get("type"))
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
            parts += 1
        elif kind == "image":
            parts += 1
        elif kind in _ANTHROPIC_TOOL_USES and isinstance(block.get("name"), str):
            calls.append(Call(block["name"], _compact(block.get("input"))))
        elif kind in _ANTHROPIC_TOOL_RESULTS:
            yield Message("tool", _content_text(block.get("content"), _CHAT_TEXT))
    if parts or calls:
        yield Message(role, "\n".join(texts), tuple(calls))


# -- OpenAI Responses ---------------------------------------------------------------------------


def _responses(items: object) -> Iterator[Message]:
    if isinstance(items, str):
        yield Message("user", items)
        return
    if isinstance(items, Mapping):
        items = [items]  # some clients send one item instead of a list
    if not isinstance(items, list):
        return
    for item in items:
        if isinstance(item, Mapping):
            message = _responses_item(item)
            if message is not None:
                yield message


def _responses_item(item: Mapping[str, Any]) -> Message | None:
    kind = _name(item.get("type"))
    if kind in ("function_call_output", "custom_tool_call_output"):
        if not isinstance(item.get("call_id"), str) or "output" not in item:
            return None
        output = item["output"]
        return Message("tool", output if isinstance(output, str) else _compact(output))
    if kind in ("function_call", "custom_tool_call"):
        payload = "arguments" if kind == "function_call" else "input"
        if not all(isinstance(item.get(key), str) for key in ("name", payload, "call_id")):
            return None  # Plano drops a call it cannot read
        arguments = item[payload] if kind == "function_call" else _compact({"input": item["input"]})
        return Message("assistant", "", (Call(item["name"], arguments),))
    if kind in ("item_reference", "reasoning"):
        return None
    role = _name(item.get("role"))
    content = item.get("content")
    if role not in _ROLES or not isinstance(content, (str, list)):
        return None
    if isinstance(content, list) and not all(map(_readable_content, content)):
        return None  # Plano cannot read the message, and drops it
    return Message(role, _content_text(content, _RESPONSES_TEXT))


def _readable_content(entry: object) -> bool:
    """Whether Plano reads a Responses content entry: text, image, file or audio with their fields' types."""
    if not isinstance(entry, Mapping):
        return False
    kind = _name(entry.get("type"))
    if kind in _RESPONSES_TEXT:
        return isinstance(entry.get("text"), str)
    if kind == "input_image":
        return isinstance(entry.get("image_url"), str) and _optional_str(entry, "detail")
    if kind in ("input_file", "file"):
        return isinstance(entry.get("file_url"), str)
    return kind == "input_audio" and _optional_str(entry, "data") and _optional_str(entry, "format")


def _optional_str(entry: Mapping[str, Any], key: str) -> bool:
    return isinstance(entry.get(key, ""), str)
