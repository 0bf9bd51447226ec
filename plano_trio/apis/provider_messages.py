"""Anthropic Messages as a provider sends it: the response `message` and the stream events.

Provider output is untrusted input.  Translators convert it into these
Structs before reading a field, so a wrong shape (`content: "abc"`,
`delta: 42`) is a validation error at the boundary, reported as the
provider's fault, instead of a TypeError deep inside a translator.  Only the
fields translators read are described; any other field is ignored, so a
provider adding fields breaks nothing.
"""

from __future__ import annotations

import msgspec


class Usage(msgspec.Struct):
    """Token counts; `null` means not reported (message_delta repeats only what changed)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class ContentBlock(msgspec.Struct):
    """One content block, of any type.

    Flat rather than a tagged union: block types no translator reads
    (`redacted_thinking`, server-tool uses and results, future types) must
    pass unnoticed, and a tagged union refuses unknown tags.  A field read
    for one type has the same type in every block type that has it.
    """

    type: str
    text: str = ""
    thinking: str = ""
    id: str | None = None
    name: str | None = None
    input: object = None


class Message(msgspec.Struct):
    """A whole `message` (the non-streamed response, or the skeleton in `message_start`)."""

    id: str | None = None
    model: str | None = None
    content: list[ContentBlock] | None = None
    stop_reason: str | None = None
    usage: Usage | None = None


class BlockDelta(msgspec.Struct):
    """A `content_block_delta`'s `delta`; signature and citation deltas are not read."""

    type: str
    text: str = ""
    thinking: str = ""
    partial_json: str = ""


class MessageDeltaBody(msgspec.Struct):
    stop_reason: str | None = None


class MessageStart(msgspec.Struct, tag_field="type", tag="message_start"):
    message: Message | None = None


class ContentBlockStart(msgspec.Struct, tag_field="type", tag="content_block_start"):
    index: int
    content_block: ContentBlock


class ContentBlockDelta(msgspec.Struct, tag_field="type", tag="content_block_delta"):
    index: int
    delta: BlockDelta


class MessageDelta(msgspec.Struct, tag_field="type", tag="message_delta"):
    delta: MessageDeltaBody | None = None
    usage: Usage | None = None


class MessageStop(msgspec.Struct, tag_field="type", tag="message_stop"):
    pass


class Error(msgspec.Struct, tag_field="type", tag="error"):
    """An in-stream error; its body is passed on in whatever shape it came (the stream is failing anyway)."""

    error: object = None


StreamEvent = MessageStart | ContentBlockStart | ContentBlockDelta | MessageDelta | MessageStop | Error
"""The stream events translators act on; `ping`, `content_block_stop` and later types are skipped."""
