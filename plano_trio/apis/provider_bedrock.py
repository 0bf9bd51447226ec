"""Amazon Bedrock Converse as a provider sends it: the Converse response and ConverseStream events.

Provider output is untrusted input.  Translators convert it into these
Structs before reading a field, so a wrong shape is a validation error at
the boundary, reported as the provider's fault, instead of a TypeError deep
inside a translator.  Only the fields translators read are described; any
other field (`metrics`, `trace`, the `p` padding of stream payloads) is
ignored.  Field names are AWS's camelCase on the wire.

A ConverseStream event reaches the translator as the edge decodes an
event-stream frame: `{"event_type": <:event-type header>, "payload": <JSON>}`,
or `{"exception_type": <name>, "payload": <JSON>}` for an exception frame.
"""

from __future__ import annotations

import msgspec


class Usage(msgspec.Struct, rename="camel"):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_write_input_tokens: int | None = None


class ToolUse(msgspec.Struct, rename="camel"):
    """A whole `toolUse` block (response) or the start of one (stream: no `input` yet)."""

    tool_use_id: str = ""
    name: str = ""
    input: object = msgspec.field(default_factory=dict)


class ReasoningText(msgspec.Struct):
    text: str = ""


class ReasoningContent(msgspec.Struct, rename="camel"):
    reasoning_text: ReasoningText | None = None


class ContentBlock(msgspec.Struct, rename="camel"):
    """One response content block: exactly one member is set; images, documents and others are not read."""

    text: str | None = None
    tool_use: ToolUse | None = None
    reasoning_content: ReasoningContent | None = None


class Message(msgspec.Struct):
    content: list[ContentBlock] | None = None


class Output(msgspec.Struct):
    message: Message | None = None


class Response(msgspec.Struct, rename="camel"):
    """A Converse response body (Converse has no id and no model in it)."""

    output: Output | None = None
    stop_reason: str | None = None
    usage: Usage | None = None


# --- ConverseStream -----------------------------------------------------------------------------------


class BlockStart(msgspec.Struct, rename="camel"):
    tool_use: ToolUse | None = None


class ToolUseDelta(msgspec.Struct):
    input: str = ""


class ReasoningDelta(msgspec.Struct):
    text: str = ""


class BlockDelta(msgspec.Struct, rename="camel"):
    text: str | None = None
    tool_use: ToolUseDelta | None = None
    reasoning_content: ReasoningDelta | None = None


class BlockStartPayload(msgspec.Struct, rename="camel"):
    start: BlockStart | None = None
    content_block_index: int = 0


class BlockDeltaPayload(msgspec.Struct, rename="camel"):
    delta: BlockDelta | None = None
    content_block_index: int = 0


class StopPayload(msgspec.Struct, rename="camel"):
    stop_reason: str | None = None


class MetadataPayload(msgspec.Struct):
    usage: Usage | None = None


class MessageStart(msgspec.Struct, tag_field="event_type", tag="messageStart"):
    pass


class ContentBlockStart(msgspec.Struct, tag_field="event_type", tag="contentBlockStart"):
    payload: BlockStartPayload


class ContentBlockDelta(msgspec.Struct, tag_field="event_type", tag="contentBlockDelta"):
    payload: BlockDeltaPayload


class MessageStop(msgspec.Struct, tag_field="event_type", tag="messageStop"):
    payload: StopPayload


class Metadata(msgspec.Struct, tag_field="event_type", tag="metadata"):
    payload: MetadataPayload


StreamEvent = MessageStart | ContentBlockStart | ContentBlockDelta | MessageStop | Metadata
"""The events translators act on; `contentBlockStop` and later types are skipped."""


class ExceptionPayload(msgspec.Struct, rename="camel"):
    message: str | None = None
    original_message: str | None = None


class StreamException(msgspec.Struct):
    """An exception frame: the stream cannot continue."""

    exception_type: str
    payload: ExceptionPayload
