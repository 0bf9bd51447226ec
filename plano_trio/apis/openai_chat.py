"""Typed *views* of OpenAI Chat Completions messages.

Views decode only the fields the gateway acts on; everything else in the
body is forwarded as the client sent it, because decoding a whole body into
dicts costs several times what a view of a few fields does, and re-encoding
it costs more again.
"""

from __future__ import annotations

import msgspec


class PromptTokensDetails(msgspec.Struct):
    cached_tokens: int | None = None


class CompletionTokensDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class UsageView(msgspec.Struct):
    """The `usage` of a completion or of the final stream chunk (null elsewhere)."""

    usage: Usage | None = None
    model: str | None = None


decode_usage = msgspec.json.Decoder(UsageView).decode
decode_top_level = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
encode = msgspec.json.Encoder().encode
