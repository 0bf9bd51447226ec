"""Watch a relayed OpenAI chat stream without changing a byte of it.

The proxy forwards upstream bytes untouched; this observer parses the same
bytes incrementally to learn what logs and metrics need (did the stream end
with `[DONE]`, what usage did the last chunk report).  Only events that
mention `"usage"` are decoded, so a plain content chunk costs one substring
search.
"""

from __future__ import annotations

import msgspec

from plano_trio.apis.openai_chat import Usage, decode_usage
from plano_trio.translate.sse import DONE, SseParser


class ChatStreamObserver:
    __slots__ = ("done", "events", "model", "parser", "usage")

    def __init__(self) -> None:
        self.parser = SseParser()
        self.done = False
        self.events = 0
        self.usage: Usage | None = None
        self.model: str | None = None

    def feed(self, chunk: bytes) -> None:
        for event in self.parser.feed(chunk):
            self.events += 1
            data = event.data
            if data == DONE:
                self.done = True
            elif b'"usage"' in data:
                self.observe_body(data)

    def observe_body(self, data: bytes) -> None:
        """Record usage/model from a JSON completion or chunk; ignore what isn't one."""
        try:
            view = decode_usage(data)
        except msgspec.DecodeError:
            return
        if view.usage is not None:
            self.usage = view.usage
        if view.model:
            self.model = view.model
