"""OpenAI Chat Completions as a provider sends it: the `chat.completion` and its stream chunks.

Provider output is untrusted input.  Translators convert it into these
Structs before reading a field, so a wrong shape is a validation error at
the boundary, reported as the provider's fault, instead of a TypeError deep
inside a translator.  Only the fields translators read are described; any
other field is ignored.  Many servers speak this API (vLLM, Ollama, Groq,
DeepSeek...), so optional fields default rather than being required.
"""

from __future__ import annotations

import msgspec


class PromptTokensDetails(msgspec.Struct):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class CompletionTokensDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class Function(msgspec.Struct):
    """A tool call's function (whole, or a streamed fragment with some fields absent)."""

    name: str | None = None
    arguments: str | None = None


class ToolCall(msgspec.Struct):
    """A tool call, or a streamed fragment of one (`index` names the call across fragments)."""

    index: int | None = None
    id: str | None = None
    type: str | None = None
    function: Function | None = None


class ContentPart(msgspec.Struct):
    """A part of a message's `content` when a server answers with parts instead of a string."""

    type: str | None = None
    text: str = ""


class Message(msgspec.Struct):
    """A completion's message or a chunk's delta.

    Reasoning text comes as `reasoning_content` (DeepSeek, vLLM) or
    `reasoning` (OpenRouter, Ollama); `function_call` is the legacy
    single-function form of `tool_calls`.
    """

    content: str | list[ContentPart] | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: Function | None = None

    def text(self) -> str:
        """The content as one string: servers answer with a string, null, or a list of text parts."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content or [] if part.type == "text")

    def reasoning_text(self) -> str:
        """The reasoning text, under whichever of the two names the server uses ("" if none)."""
        return self.reasoning_content or self.reasoning or ""


class Choice(msgspec.Struct):
    index: int = 0
    message: Message | None = None
    delta: Message | None = None
    finish_reason: str | None = None


class Completion(msgspec.Struct):
    """A `chat.completion`, or one `chat.completion.chunk` of a stream.

    One model for both: they share every field translators read, a chunk's
    choices carry `delta` where a completion's carry `message`, and `error`
    is the in-band error some servers send mid-stream (any shape).
    """

    id: str | None = None
    model: str | None = None
    created: int | None = None
    choices: list[Choice] | None = None
    usage: Usage | None = None
    error: object = None
