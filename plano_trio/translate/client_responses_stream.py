"""Chat Completions chunks → the full OpenAI Responses streaming event sequence.

Plano synthesizes a reduced sequence (no `response.content_part.*`, `usage`
null in `response.completed`); the official SDK's stream accumulator and
strict clients expect the complete one, so this emits it all:

    response.created, response.in_progress
    per message item:  output_item.added, content_part.added,
                       output_text.delta..., output_text.done,
                       content_part.done, output_item.done
    per tool call:     output_item.added, function_call_arguments.delta...,
                       function_call_arguments.done, output_item.done
    response.completed | response.incomplete   (full object, real usage)

Every event carries a strictly increasing `sequence_number`.  The message
item closes as soon as a tool call starts (text after tool calls opens a new
message item), but tool-call items stay open until the chat finish_reason:
Chat streams may interleave the argument deltas of parallel calls, and no
delta may follow an item's `.done`.  The terminal event waits for `finish()`
because the usage chunk arrives *after* the finish_reason chunk.  An in-band
`{"error": ...}` chunk raises `StreamError` for the edge to report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from plano_trio.apis import provider_chat as chat_wire
from plano_trio.translate.base import EventValue, Json, UpstreamEvent, stream_error
from plano_trio.translate.client_responses import (
    build_response,
    chat_usage_to_responses,
    finish_status,
    function_call_item,
    item_id,
    message_item,
    output_text_part,
    refusal_part,
)
from plano_trio.translate.client_responses import response_id as new_response_id


@dataclass(frozen=True)
class _PartKind:
    """How one kind of message content part is built and streamed."""

    event: str  # prefix of the delta/done event types
    field: str  # the full text's field name in the `.done` event
    part: Callable[[str], Json]  # the content part holding that text
    has_logprobs: bool  # output_text delta/done events require `logprobs` (we have none)

    def extra(self) -> Json:
        """Additional delta/done fields, fresh each time so no two events share a list."""
        return {"logprobs": []} if self.has_logprobs else {}


TEXT = _PartKind("response.output_text", "text", output_text_part, has_logprobs=True)
REFUSAL = _PartKind("response.refusal", "refusal", refusal_part, has_logprobs=False)


class _Text:
    """Text that grows by a delta at a time, joined only when read.

    `item.text += delta` copies the whole text on every delta (CPython appends in place only to a
    local name), so an answer of n deltas cost O(n²); this keeps the pieces and joins them once.
    """

    __slots__ = ("_pieces",)

    def __init__(self) -> None:
        self._pieces: list[str] = []

    def add(self, piece: str) -> None:
        self._pieces.append(piece)

    @property
    def value(self) -> str:
        pieces = self._pieces
        if len(pieces) > 1:
            pieces[:] = ["".join(pieces)]
        return pieces[0] if pieces else ""


@dataclass
class _Part:
    kind: _PartKind
    buffer: _Text = field(default_factory=_Text)

    @property
    def text(self) -> str:
        return self.buffer.value


@dataclass
class _MessageItem:
    id: str
    output_index: int
    parts: list[_Part] = field(default_factory=list)
    status: str = "in_progress"

    def json(self) -> Json:
        return message_item(self.id, [part.kind.part(part.text) for part in self.parts], self.status)


@dataclass
class _CallItem:
    id: str
    output_index: int
    call_id: str
    name: str
    buffer: _Text = field(default_factory=_Text)
    status: str = "in_progress"

    @property
    def arguments(self) -> str:
        return self.buffer.value

    def json(self) -> Json:
        return function_call_item(
            self.id, call_id=self.call_id, name=self.name, arguments=self.arguments, status=self.status
        )


_read_chunk = EventValue(chat_wire.Completion, "chat.completion.chunk")


class ChatStreamToResponses:
    """StreamTranslator: decoded `chat.completion.chunk` dicts in, Responses events out.

    After `finish()`, `response` holds the final response object and `usage`
    its Responses-shaped usage, so the state layer can store the turn.
    """

    def __init__(self, request: Json, *, response_id: str | None = None) -> None:
        self.id = response_id or new_response_id()
        self.response: Json | None = None
        self.usage: Json | None = None
        self._request = request
        self._model: str = request.get("model") or ""
        self._created_at = int(time.time())
        self._sequence = 0
        self._started = False
        self._finished = False
        self._items: list[_MessageItem | _CallItem] = []
        self._message: _MessageItem | None = None  # the open message item, if any
        self._calls: dict[object, _CallItem] = {}  # open tool-call items by chat key
        self._finish_reason: str | None = None
        self._chat_usage: chat_wire.Usage | None = None

    # --- StreamTranslator --------------------------------------------------

    def feed(self, event: UpstreamEvent) -> list[Json]:
        """Translate one chat chunk (decoded, or its JSON bytes); an in-stream `error` or a wrong shape
        raises StreamError."""
        if self._finished:
            return []
        chunk = _read_chunk(event)
        if chunk.error is not None:
            raise stream_error(chunk.error)
        out = self._start(chunk)
        if chunk.usage is not None:
            self._chat_usage = chunk.usage
        for choice in chunk.choices or []:
            if choice.index != 0:
                continue  # Responses has no `n`; only the first choice is a turn
            out += self._delta(choice.delta or chat_wire.Message())
            if choice.finish_reason:
                out += self._close_all(choice.finish_reason)
        return out

    def finish(self) -> list[Json]:
        if self._finished:
            return []
        out = self._start(chat_wire.Completion())
        out += self._close_all(None)
        status, reason = finish_status(self._finish_reason)
        self.usage = chat_usage_to_responses(self._chat_usage)
        self.response = self._snapshot(status, reason)
        self._finished = True
        out.append(self._event(f"response.{status}", response=self.response))
        return out

    # --- envelope ----------------------------------------------------------

    def _event(self, type_: str, **fields: Any) -> Json:
        event = {"type": type_, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _item_event(self, stage: str, item: _MessageItem | _CallItem) -> Json:
        """`response.output_item.added` / `.done` carrying the item as it is now."""
        return self._event(f"response.output_item.{stage}", output_index=item.output_index, item=item.json())

    def _snapshot(self, status: str, reason: str | None = None) -> Json:
        return build_response(
            self._request,
            response_id=self.id,
            created_at=self._created_at,
            model=self._model,
            output=[item.json() for item in self._items],
            status=status,
            usage=self.usage,
            incomplete_reason=reason,
        )

    def _start(self, chunk: chat_wire.Completion) -> list[Json]:
        if self._started:
            return []
        self._started = True
        self._created_at = chunk.created or self._created_at
        self._model = chunk.model or self._model
        return [
            self._event("response.created", response=self._snapshot("in_progress")),
            self._event("response.in_progress", response=self._snapshot("in_progress")),
        ]

    def _close_all(self, finish_reason: str | None) -> list[Json]:
        """Close every open item; the finish_reason decides whether they were cut short."""
        if finish_reason and self._finish_reason is None:
            self._finish_reason = finish_reason
        status = "completed" if finish_status(finish_reason)[0] == "completed" else "incomplete"
        open_items: list[_MessageItem | _CallItem] = list(self._calls.values())
        if self._message is not None:
            open_items.append(self._message)
        self._message = None
        self._calls = {}
        out: list[Json] = []
        for item in sorted(open_items, key=lambda item: item.output_index):
            out += (
                self._close_message(item, status)
                if isinstance(item, _MessageItem)
                else self._close_call(item, status)
            )
        return out

    # --- message items ------------------------------------------------------

    def _delta(self, delta: chat_wire.Message) -> list[Json]:
        out: list[Json] = []
        if text := delta.text():
            out += self._text(TEXT, text)
        if delta.refusal:
            out += self._text(REFUSAL, delta.refusal)
        for call in delta.tool_calls or []:
            out += self._tool_call(call)
        return out

    def _text(self, kind: _PartKind, chunk: str) -> list[Json]:
        out: list[Json] = []
        message = self._message
        if message is None:
            message = self._message = _MessageItem(item_id("msg"), len(self._items))
            self._items.append(message)
            out.append(self._item_event("added", message))
        if not message.parts or message.parts[-1].kind is not kind:
            if message.parts:
                out += self._close_part(message)
            message.parts.append(_Part(kind))
            out.append(self._part_event("response.content_part.added", message, part=kind.part("")))
        message.parts[-1].buffer.add(chunk)
        out.append(self._part_event(f"{kind.event}.delta", message, delta=chunk, **kind.extra()))
        return out

    def _part_event(self, type_: str, message: _MessageItem, **fields: Any) -> Json:
        return self._event(
            type_,
            item_id=message.id,
            output_index=message.output_index,
            content_index=len(message.parts) - 1,
            **fields,
        )

    def _close_part(self, message: _MessageItem) -> list[Json]:
        part = message.parts[-1]
        kind = part.kind
        return [
            self._part_event(f"{kind.event}.done", message, **{kind.field: part.text}, **kind.extra()),
            self._part_event("response.content_part.done", message, part=kind.part(part.text)),
        ]

    def _close_message(self, message: _MessageItem, status: str) -> list[Json]:
        out = self._close_part(message) if message.parts else []
        message.status = status
        out.append(self._item_event("done", message))
        return out

    # --- function_call items ------------------------------------------------

    def _tool_call(self, call: chat_wire.ToolCall) -> list[Json]:
        out: list[Json] = []
        function = call.function or chat_wire.Function()
        key = self._call_key(call)
        item = self._calls.get(key)
        if item is None:
            if self._message is not None:  # text before the calls is finished
                out += self._close_message(self._message, "completed")
                self._message = None
            item = _CallItem(item_id("fc"), len(self._items), call.id or item_id("call"), function.name or "")
            self._items.append(item)
            self._calls[key] = item
            out.append(self._item_event("added", item))
        elif function.name and not item.name:
            item.name = function.name
        if function.arguments:
            item.buffer.add(function.arguments)
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item.id,
                    output_index=item.output_index,
                    delta=function.arguments,
                )
            )
        return out

    def _call_key(self, call: chat_wire.ToolCall) -> object:
        """Chat's `index` names the call; servers that omit it get keyed by id, else by the last call."""
        if call.index is not None:
            return call.index
        if call.id:
            return ("id", call.id)
        return next(reversed(self._calls), 0)

    def _close_call(self, item: _CallItem, status: str) -> list[Json]:
        item.status = status
        return [
            self._event(
                "response.function_call_arguments.done",
                item_id=item.id,
                output_index=item.output_index,
                name=item.name,
                arguments=item.arguments,
            ),
            self._item_event("done", item),
        ]
