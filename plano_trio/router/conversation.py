"""The conversation a routing decision looks at, read from any client API's request JSON.

Plano converts every client request (Chat, Anthropic Messages, OpenAI
Responses) to a list of Chat messages before it routes, and everything the
router stage reads comes from that list: the texts of the router prompt, the
"is this a fresh user turn?" test of `route_on_user_only`, and the texts the
implicit session key is hashed from.  This module does the same conversion,
keeping only what those three readers need: each message's role, its text
(text parts joined with a newline, as Plano joins them) or no content at all,
and whether it carried a non-text part (an image).

Per client API, as Plano converts them:

- Chat: `messages` as they are.  A content string is the text; a parts list
  yields its `text` parts joined with "\\n"; `null` or missing content is no
  content.  An `image_url` part is non-text.
- Anthropic Messages: `system` (a string, or text blocks joined with "\\n")
  becomes a leading system message.  A message with a string content is one
  message.  A message with blocks becomes one `tool` message per tool-result
  block (`tool_result`, `web_search_tool_result`, `code_execution_tool_result`,
  `mcp_tool_result`), then, if it had text or image blocks or tool calls, one
  message of its own role.  Thinking, document and container-upload blocks are
  dropped, so a message made only of them (or an empty block list) disappears.
- Responses: `instructions` becomes a leading system message; a string
  `input` is one user message; an item list (or one item) converts items in
  order: messages (a single text item is its text; otherwise text and image
  items become parts, file and audio items are dropped), function and custom
  tool outputs become `tool` messages, function and custom tool calls attach
  to an assistant message, references and reasoning items are dropped.

Plano rejects a request whose JSON does not fit its types (a 400 before any
routing); this module never rejects anything.  A value of the wrong shape is
skipped (a message with an unknown role, a part that is not an object) and a
content of the wrong type counts as no content.  The one deliberate
difference in kind: a Chat content part of a type Plano does not know
(`input_audio`, `file`) counts as a non-text part rather than failing the
request, so an audio-only user message still opens a turn.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Mapping
from typing import Any, NamedTuple

from plano_trio.apis.kind import Api

SYSTEM = "system"
USER = "user"
ASSISTANT = "assistant"
TOOL = "tool"
DEVELOPER = "developer"

_CHAT_ROLES = frozenset((SYSTEM, USER, ASSISTANT, TOOL, DEVELOPER))
_ANTHROPIC_ROLES = frozenset((USER, ASSISTANT, SYSTEM))
_ANTHROPIC_TOOL_RESULTS = frozenset(
    ("tool_result", "web_search_tool_result", "code_execution_tool_result", "mcp_tool_result")
)
_ANTHROPIC_TOOL_USES = frozenset(("tool_use", "server_tool_use", "mcp_tool_use"))

INJECTED_USER_ENVELOPES = (
    ("<system-reminder>", "</system-reminder>"),
    ("<user-prompt-submit-hook>", "</user-prompt-submit-hook>"),
)
"""Text a coding harness (Claude Code) injects as user-role text: not the user speaking."""

_RUST_WHITESPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
"""Unicode White_Space, what Plano's `str::trim` strips (Python's `isspace` also counts \\x1c-\\x1f)."""


class RouterMessage(NamedTuple):
    """One message as the router prompt shows it: a role and its text."""

    role: str
    content: str


class ChatTurn(NamedTuple):
    """One message of the normalized conversation.

    `content` is None when the message has no content at all (a Chat message
    with `null` content, an assistant message that only calls tools), which
    the session key tells apart from an empty text.
    """

    role: str
    content: str | None
    has_attachment: bool = False
    """A non-text part (an image): the user speaking even without a caption."""


class AffinityParts(NamedTuple):
    """The texts the implicit session key is hashed from, joined as Plano joins them.

    `first_user` is None when the conversation has no user message (or its
    first one has no content): then there is no implicit key at all.
    """

    system_text: str
    """Every system and developer message's text, in order, joined with "\\n"."""
    tool_names: str
    """The request's tool names joined with ","."""
    first_user: str | None


class Conversation(NamedTuple):
    """A request's conversation, read once, for the three things routing asks of it."""

    turns: tuple[ChatTurn, ...]
    tool_names: tuple[str, ...]

    def router_messages(self) -> list[RouterMessage]:
        """Every message with its text ("" when it has none); the prompt builder filters them."""
        return [RouterMessage(turn.role, turn.content or "") for turn in self.turns]

    def is_user_turn(self) -> bool:
        """Whether the last message is the user speaking, so routing should run (`route_on_user_only`).

        A trailing user message counts when it carries an attachment or text
        that survives removing the harness envelopes and surrounding
        whitespace.  A tool result, assistant output, an empty or
        envelope-only user message, or no message at all is a continuation.
        """
        if not self.turns:
            return False
        last = self.turns[-1]
        if last.role != USER:
            return False
        if last.has_attachment:
            return True
        remaining = strip_injected_envelopes(last.content or "")
        return any(char not in _RUST_WHITESPACE for char in remaining)

    def affinity_parts(self) -> AffinityParts:
        system_text = "\n".join(
            turn.content
            for turn in self.turns
            if turn.role in (SYSTEM, DEVELOPER) and turn.content is not None
        )
        first_user = next((turn for turn in self.turns if turn.role == USER), None)
        return AffinityParts(
            system_text=system_text,
            tool_names=",".join(self.tool_names),
            first_user=None if first_user is None else first_user.content,
        )


def read_conversation(api: Api, request: Mapping[str, Any]) -> Conversation:
    """The normalized conversation and tool names of a decoded client request; never raises."""
    if not isinstance(request, Mapping):
        return Conversation((), ())
    if api is Api.CHAT:
        return Conversation(tuple(_chat_turns(request.get("messages"))), _chat_tool_names(request))
    if api is Api.MESSAGES:
        return Conversation(tuple(_anthropic_turns(request)), _anthropic_tool_names(request.get("tools")))
    if api is Api.RESPONSES:
        return Conversation(tuple(_responses_turns(request)), _responses_tool_names(request.get("tools")))
    return Conversation((), ())


def router_messages(api: Api, request: Mapping[str, Any]) -> list[RouterMessage]:
    """All messages of the request (every role) with the text Plano derives for each."""
    return read_conversation(api, request).router_messages()


def is_user_turn(api: Api, request: Mapping[str, Any]) -> bool:
    """Whether the request's last message is a fresh user utterance (see `Conversation.is_user_turn`)."""
    return read_conversation(api, request).is_user_turn()


def affinity_parts(api: Api, request: Mapping[str, Any]) -> AffinityParts:
    """The texts the implicit session key and prefix hash are derived from."""
    return read_conversation(api, request).affinity_parts()


def strip_injected_envelopes(text: str) -> str:
    """`text` without any `<system-reminder>…</system-reminder>` or hook-output span.

    As Plano does it: first every system-reminder span, then every hook span;
    each time the first opening tag of the (shrinking) text is removed
    through the first closing tag after it, and an unterminated opening tag
    swallows the rest (a truncated envelope is still harness output).  Plano
    rescans the text from the start after every removal, which is quadratic
    in the number of envelopes; this yields the same text in one pass.
    """
    for open_tag, close_tag in INJECTED_USER_ENVELOPES:
        text = _strip_spans(text, open_tag, close_tag)
    return text


def _strip_spans(text: str, open_tag: str, close_tag: str) -> str:
    """One pair of tags' spans removed, as repeated find-first-and-remove would leave the text.

    The kept text never contains a whole opening tag, so after each removal a
    new one can only form across the seam between the kept text and the
    rest: only the last len(open_tag) - 1 kept characters are searched again.
    The kept text is a list of chunks whose last one is used up to `last_end`,
    so cutting a tag's head off it copies nothing.
    """
    if open_tag not in text:
        return text
    width = len(open_tag)
    chunks: list[str] = []
    last_end = 0  # how much of chunks[-1] is kept
    position = 0
    while position < len(text):
        tail = _kept_tail(chunks, last_end, width - 1)
        at = (tail + text[position : position + width - 1]).find(open_tag)
        if 0 <= at < len(tail):
            # An opening tag across the seam: cut its head off the kept text.
            last_end = _cut(chunks, last_end, len(tail) - at)
            body_start = position + width - (len(tail) - at)
        else:
            found = text.find(open_tag, position)
            if found < 0:
                found = len(text)
            if found > position:
                if chunks and last_end < len(chunks[-1]):
                    chunks[-1] = chunks[-1][:last_end]
                chunks.append(text[position:found])
                last_end = found - position
            if found == len(text):
                break
            body_start = found + width
        close = text.find(close_tag, body_start)
        if close < 0:
            break
        position = close + len(close_tag)
    if chunks:
        chunks[-1] = chunks[-1][:last_end]
    return "".join(chunks)


def _kept_tail(chunks: list[str], last_end: int, count: int) -> str:
    """The last `count` kept characters (at most `count` chunks are visited: none is empty)."""
    pieces: list[str] = []
    needed = count
    index = len(chunks) - 1
    end = last_end
    while needed > 0 and index >= 0:
        start = max(end - needed, 0)
        pieces.append(chunks[index][start:end])
        needed -= end - start
        index -= 1
        if index >= 0:
            end = len(chunks[index])
    return "".join(reversed(pieces))


def _cut(chunks: list[str], last_end: int, count: int) -> int:
    """Drop the last `count` kept characters; returns the new `last_end`."""
    while count > 0:
        if count < last_end:
            return last_end - count
        count -= last_end
        chunks.pop()
        last_end = len(chunks[-1]) if chunks else 0
    return last_end


# -- Chat ------------------------------------------------------------------------------


def _role_contents(messages: object, roles: Container[str]) -> Iterable[tuple[str, object]]:
    """(role, content) of each message that is an object with one of `roles`; anything else is skipped."""
    if not isinstance(messages, list):
        return
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        role = message.get("role")
        if isinstance(role, str) and role in roles:
            yield role, message.get("content")


def _chat_turns(messages: object) -> Iterable[ChatTurn]:
    for role, content in _role_contents(messages, _CHAT_ROLES):
        if isinstance(content, str):
            yield ChatTurn(role, content)
        elif isinstance(content, list):
            texts: list[str] = []
            attachment = False
            for part in content:
                if not isinstance(part, Mapping):
                    continue
                kind = _kind(part)
                if kind == "text":
                    text = part.get("text")
                    if isinstance(text, str):
                        texts.append(text)
                elif isinstance(kind, str):
                    attachment = True
            yield ChatTurn(role, "\n".join(texts), attachment)
        else:
            yield ChatTurn(role, None)


def _chat_tool_names(request: Mapping[str, Any]) -> tuple[str, ...]:
    """`tools[].function.name`, else the deprecated `functions` list read the same way (as Plano does)."""
    for key in ("tools", "functions"):
        names = _function_names(request.get(key))
        if names:
            return names
    return ()


def _function_names(tools: object) -> tuple[str, ...]:
    if not isinstance(tools, list):
        return ()
    names: list[str] = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if isinstance(name, str):
            names.append(name)
    return tuple(names)


# -- Anthropic Messages ----------------------------------------------------------------


def _anthropic_turns(request: Mapping[str, Any]) -> Iterable[ChatTurn]:
    system = request.get("system")
    if isinstance(system, str):
        yield ChatTurn(SYSTEM, system)
    elif isinstance(system, list):
        yield ChatTurn(SYSTEM, _block_texts(system))
    for role, content in _role_contents(request.get("messages"), _ANTHROPIC_ROLES):
        if isinstance(content, str):
            yield ChatTurn(role, content)
        elif isinstance(content, list):
            yield from _anthropic_blocks(role, content)


def _anthropic_blocks(role: str, blocks: list[Any]) -> Iterable[ChatTurn]:
    """One message's blocks: its tool results first, then the message itself if anything is left."""
    texts: list[str] = []
    parts = 0
    images = False
    calls = False
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        kind = _kind(block)
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str):
                texts.append(text)
                parts += 1
        elif kind == "image":
            images = True
            parts += 1
        elif kind in _ANTHROPIC_TOOL_USES:
            calls = True
        elif kind in _ANTHROPIC_TOOL_RESULTS:
            result = block.get("content")
            yield ChatTurn(TOOL, result if isinstance(result, str) else _block_texts(result))
    if parts or calls:
        # Only tool calls: no content (Plano's `None`); otherwise the text parts joined.
        yield ChatTurn(role, "\n".join(texts) if parts else None, images)


def _block_texts(blocks: object) -> str:
    """The `text` blocks of a block list joined with "\\n" (Plano's text of a block list)."""
    if not isinstance(blocks, list):
        return ""
    return "\n".join(
        block["text"]
        for block in blocks
        if isinstance(block, Mapping) and block.get("type") == "text" and isinstance(block.get("text"), str)
    )


def _anthropic_tool_names(tools: object) -> tuple[str, ...]:
    if not isinstance(tools, list):
        return ()
    return tuple(
        tool["name"] for tool in tools if isinstance(tool, Mapping) and isinstance(tool.get("name"), str)
    )


# -- OpenAI Responses ------------------------------------------------------------------

_RESPONSES_ROLES = frozenset((USER, ASSISTANT, SYSTEM, DEVELOPER, TOOL))
_RESPONSES_TEXT_ITEMS = frozenset(("input_text", "text", "output_text"))


def _responses_turns(request: Mapping[str, Any]) -> Iterable[ChatTurn]:
    instructions = request.get("instructions")
    items = request.get("input")
    if isinstance(items, Mapping):
        items = [items]  # some clients send one item instead of a list
    if not isinstance(items, (str, list)):
        return  # Plano cannot read the input at all (and rejects the request)
    if isinstance(instructions, str):
        yield ChatTurn(SYSTEM, instructions)
    if isinstance(items, str):
        yield ChatTurn(USER, items)
        return
    last_is_assistant = False
    for item in items:
        turn = _responses_item(item) if isinstance(item, Mapping) else None
        if turn is _TOOL_CALL:
            # A call attaches to the assistant message before it, or opens one without content.
            if not last_is_assistant:
                last_is_assistant = True
                yield ChatTurn(ASSISTANT, None)
        elif turn is not None and turn is not _DROPPED:
            last_is_assistant = turn.role == ASSISTANT
            yield turn


_TOOL_CALL = ChatTurn(ASSISTANT, None)
"""Marker: the item is a function or custom tool call."""
_DROPPED = ChatTurn(TOOL, None)
"""Marker: a readable item Plano drops (an item reference, a reasoning item)."""


def _responses_item(item: Mapping[str, Any]) -> ChatTurn | None:
    """An input item read as Plano reads it: by its `type` first, else as a message, else ignored.

    An item whose `type` is unknown, or that does not fit its type, is still
    a message when it has a readable `role` and `content`.
    """
    typed = _responses_typed(item)
    return typed if typed is not None else _responses_message(item)


def _responses_typed(item: Mapping[str, Any]) -> ChatTurn | None:
    kind = _kind(item)
    if not _optional_str(item, "id") or not _optional_str(item, "status"):
        return None
    if kind == "message":
        return _responses_message(item)
    if kind in ("function_call_output", "custom_tool_call_output"):
        if not isinstance(item.get("call_id"), str) or "output" not in item:
            return None
        output = item["output"]
        return ChatTurn(TOOL, output if isinstance(output, str) else _compact_json(output))
    if kind in ("function_call", "custom_tool_call"):
        payload = "arguments" if kind == "function_call" else "input"
        if all(isinstance(item.get(key), str) for key in ("name", payload, "call_id")):
            return _TOOL_CALL
        return None
    if kind == "item_reference":
        return _DROPPED if isinstance(item.get("id"), str) else None
    if kind == "reasoning":
        lists_ok = all(isinstance(item.get(key, []), list) for key in ("summary", "content"))
        return _DROPPED if lists_ok and _optional_str(item, "encrypted_content") else None
    return None


def _responses_message(item: Mapping[str, Any]) -> ChatTurn | None:
    role = item.get("role")
    if not isinstance(role, str) or role not in _RESPONSES_ROLES:
        return None
    content = item.get("content")
    if isinstance(content, str):
        return ChatTurn(role, content)
    if not isinstance(content, list):
        return None
    texts: list[str] = []
    images = False
    for entry in content:
        read = _responses_content(entry)
        if read is None:
            return None  # Plano cannot read this content list, so the message is dropped
        if read is _IMAGE:
            images = True
        elif isinstance(read, str):
            texts.append(read)
    return ChatTurn(role, "\n".join(texts), images)


_IMAGE = object()
_SKIPPED = object()


def _responses_content(entry: object) -> object:
    """A content item's text, `_IMAGE`, `_SKIPPED` (file, audio) or None when Plano cannot read it."""
    if not isinstance(entry, Mapping):
        return None
    kind = _kind(entry)
    if kind in _RESPONSES_TEXT_ITEMS:
        text = entry.get("text")
        return text if isinstance(text, str) else None
    if kind == "input_image":
        return _IMAGE if isinstance(entry.get("image_url"), str) and _optional_str(entry, "detail") else None
    if kind in ("input_file", "file"):
        return _SKIPPED if isinstance(entry.get("file_url"), str) else None
    if kind == "input_audio":
        return _SKIPPED if _optional_str(entry, "data") and _optional_str(entry, "format") else None
    return None


def _optional_str(entry: Mapping[str, Any], key: str) -> bool:
    value = entry.get(key)
    return value is None or isinstance(value, str)


def _compact_json(value: object) -> str:
    """A non-string tool output as compact JSON, as Plano stores it (non-ASCII kept)."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return ""


def _responses_tool_names(tools: object) -> tuple[str, ...]:
    if not isinstance(tools, list):
        return ()
    return tuple(
        tool["name"]
        for tool in tools
        if isinstance(tool, Mapping)
        and tool.get("type") in ("function", "custom")
        and isinstance(tool.get("name"), str)
    )


def _kind(value: Mapping[str, Any]) -> str | None:
    """A part's `type` when it is a string: a list or object there (hostile input) is no known kind,
    and must not reach a set lookup, where it would raise."""
    kind = value.get("type")
    return kind if isinstance(kind, str) else None
