"""Token usage, read from a relayed OpenAI Chat answer without changing a byte of it.

The proxy forwards provider bytes untouched; this watcher parses the same
bytes incrementally for the one thing logs (and later metrics) need: the
`usage` the provider reported.  Only events that mention `"usage"` are
decoded, so a plain content chunk costs one substring search.
"""

from __future__ import annotations

from typing import Any

import msgspec

from plano_trio.apis.openai_chat import PromptTokensDetails, Usage, decode_usage
from plano_trio.translate.base import Json
from plano_trio.translate.sse import SseParser


class UsageWatcher:
    __slots__ = ("model", "parser", "usage")

    def __init__(self) -> None:
        self.parser = SseParser()
        self.usage: Usage | None = None
        self.model: str | None = None
        """The `model` the provider named next to its usage (the model it says it ran)."""

    def feed(self, chunk: bytes) -> None:
        """Watch a piece of a Chat SSE stream (events may be split anywhere)."""
        for event in self.parser.feed(chunk):
            if b'"usage"' in event.data:
                self.observe_body(event.data)

    def observe_body(self, data: bytes) -> None:
        """Record the usage of a JSON completion or chunk; ignore what isn't one."""
        try:
            view = decode_usage(data)
        except msgspec.DecodeError:
            return
        if view.usage is not None:
            self.usage = view.usage
            self.model = view.model


def usage_of_answer(answer: Json | None) -> Usage | None:
    """The usage of a whole answer in any client API's shape, as OpenAI Chat counts it.

    Chat reports `prompt_tokens` (cached ones included); Anthropic Messages
    and OpenAI Responses report `input_tokens`.  Anthropic's excludes cache
    reads and writes, which are added back here so that `prompt_tokens`
    always means the whole context the provider read.
    """
    if not isinstance(answer, dict):
        return None
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        return None
    if "prompt_tokens" in usage:
        prompt, completion = _count(usage, "prompt_tokens"), _count(usage, "completion_tokens")
        details = usage.get("prompt_tokens_details")
        cached = _count(details, "cached_tokens") if isinstance(details, dict) else 0
    elif "input_tokens" in usage:
        read, written = _count(usage, "cache_read_input_tokens"), _count(usage, "cache_creation_input_tokens")
        details = usage.get("input_tokens_details")
        cached = read or (_count(details, "cached_tokens") if isinstance(details, dict) else 0)
        prompt = _count(usage, "input_tokens") + read + written
        completion = _count(usage, "output_tokens")
    else:
        return None
    return Usage(prompt, completion, prompt + completion, PromptTokensDetails(cached) if cached else None)


def _count(fields: dict[str, Any], key: str) -> int:
    value = fields.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
