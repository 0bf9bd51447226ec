"""Token usage, read from a relayed answer without changing a byte of it.

The proxy forwards provider bytes untouched; these watchers parse the same
bytes incrementally for the one thing logs, metrics and routing sessions
need: the `usage` the provider reported.  Only events that mention
`"usage"` are decoded, so a plain content chunk costs one substring search.
A translated stream is watched on its decoded client-API events instead
(`EventUsage`), which the translator has built anyway.

Each API reports usage its own way: Chat once, in the last chunk; Anthropic
Messages its input in `message_start` and its (running) output in
`message_delta`; Responses once, in the terminal `response.completed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from plano_trio.apis.kind import Api
from plano_trio.apis.openai_chat import PromptTokensDetails, Usage, decode_usage
from plano_trio.translate.base import Json
from plano_trio.translate.sse import SseEvent, SseParser


class UsageWatcher:
    __slots__ = ("_between_events", "model", "parser", "usage")

    def __init__(self) -> None:
        self.parser = SseParser()
        self._between_events = True
        """`parser.at_event_boundary` after `_events` last fed it (only `_events` feeds it here)."""
        self.usage: Usage | None = None
        self.model: str | None = None
        """The `model` the provider named next to its usage (the model it says it ran)."""

    def feed(self, chunk: bytes) -> None:
        """Watch a piece of a Chat SSE stream (events may be split anywhere)."""
        if self._between_events and chunk.endswith(b"\n\n") and b'"usage"' not in chunk:
            return  # the usual token (see `_events`), skipped here: one call less per token
        for event in self._events(chunk):
            if b'"usage"' in event.data:
                self.observe_body(event.data)

    def _events(self, chunk: bytes) -> Sequence[SseEvent]:
        """The events `chunk` completes, or none when it cannot hold usage.

        A provider writes whole events per chunk as a rule: a chunk that
        starts and ends on an event boundary and does not mention `"usage"`
        holds no event that does, and leaves the parser where it was, so it
        is not parsed at all (a substring search or two instead of a pass
        over every line: most of what watching a relayed stream cost)."""
        # `in` before `_may_hold_usage`: the usual token mentions no usage at all.
        if (
            self._between_events
            and chunk.endswith(b"\n\n")
            and (b'"usage"' not in chunk or not _may_hold_usage(chunk))
        ):
            return ()
        self._between_events = False  # until the parser says so (it may raise)
        events = self.parser.feed(chunk)
        self._between_events = self.parser.at_event_boundary
        return events

    def observe_body(self, data: bytes) -> None:
        """Record the usage of a JSON completion or chunk; ignore what isn't one."""
        try:
            view = decode_usage(data)
        except msgspec.DecodeError:
            return
        if view.usage is not None:
            self.usage = view.usage
            self.model = view.model


def _may_hold_usage(chunk: bytes) -> bool:
    """Whether `chunk` mentions `"usage"` other than as `"usage":null`, which OpenAI puts in every
    chunk of a stream asked for usage but the last (a `"usage"` inside a JSON string is escaped,
    `\\"usage\\"`, and matches neither)."""
    mentions = chunk.count(b'"usage"')
    return mentions > 0 and mentions != chunk.count(b'"usage":null')


class EventUsage(UsageWatcher):
    """Usage in `api`'s shape: from decoded events (a translated stream's output, `observe`), from a
    relayed stream (`feed`: only events that mention usage are decoded) or from a whole answer."""

    __slots__ = ("_fields", "api")

    def __init__(self, api: Api) -> None:
        super().__init__()
        self.api = api
        self._fields: dict[str, Any] = {}
        """Anthropic's usage fields so far: `message_start` sends the input, `message_delta` the output."""

    def feed(self, chunk: bytes) -> None:
        for event in self._events(chunk):
            if b'"usage"' in event.data:
                try:
                    decoded = _decode_json(event.data)
                except msgspec.DecodeError:
                    continue
                if isinstance(decoded, dict):
                    self.observe(decoded)

    def observe_body(self, data: bytes) -> None:
        try:
            answer = _decode_json(data)
        except msgspec.DecodeError:
            return
        if isinstance(answer, dict):
            self._found(answer)

    def observe(self, event: Json) -> None:
        if self.api is Api.MESSAGES:
            kind = event.get("type")
            if kind == "message_start":
                message = event.get("message")
                fields = message.get("usage") if isinstance(message, dict) else None
                if isinstance(message, dict) and isinstance(message.get("model"), str):
                    self.model = message["model"]
            elif kind == "message_delta":
                fields = event.get("usage")
            else:
                return
            if isinstance(fields, dict):
                self._fields.update(fields)
                self.usage = usage_of_answer({"usage": self._fields}) or self.usage
            return
        if self.api is Api.RESPONSES:
            kind = event.get("type")
            answer = event.get("response") if isinstance(kind, str) and kind in _RESPONSES_TERMINAL else None
            if isinstance(answer, dict):
                self._found(answer)
        elif "usage" in event:  # Chat: most chunks carry none
            self._found(event)

    def _found(self, answer: Json) -> None:
        usage = usage_of_answer(answer)
        if usage is not None:
            self.usage = usage
            model = answer.get("model")
            self.model = model if isinstance(model, str) else self.model


_RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})

_decode_json = msgspec.json.Decoder().decode


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
