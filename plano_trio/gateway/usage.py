"""Token usage, read from a relayed OpenAI Chat answer without changing a byte of it.

The proxy forwards provider bytes untouched; this watcher parses the same
bytes incrementally for the one thing logs (and later metrics) need: the
`usage` the provider reported.  Only events that mention `"usage"` are
decoded, so a plain content chunk costs one substring search.
"""

from __future__ import annotations

import msgspec

from plano_trio.apis.openai_chat import Usage, decode_usage
from plano_trio.translate.sse import SseParser


class UsageWatcher:
    __slots__ = ("parser", "usage")

    def __init__(self) -> None:
        self.parser = SseParser()
        self.usage: Usage | None = None

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
