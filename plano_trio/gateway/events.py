"""Provider stream bytes → stream events, for the stream translators.

Two framings: SSE (`data: <json>` events; `[DONE]` ends OpenAI streams) and
AWS event-stream (Bedrock's binary frames).  Anything malformed is a
`StreamError`, which the relay reports in the client's in-stream error shape.

The translating relay takes SSE events as their undecoded JSON (`SseData`):
each translator decodes an event straight into its typed wire model, so no
dict is built per token.  Readers that want the decoded object (an agent's
answer) use `SseEvents`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from plano_trio.translate.base import Json, StreamError, UpstreamEvent, decode_event
from plano_trio.translate.eventstream import EventStreamDecoder, EventStreamError
from plano_trio.translate.matrix import converse_stream_event
from plano_trio.translate.sse import DONE, SseParser


class EventSource(Protocol):
    def feed(self, chunk: bytes) -> Sequence[UpstreamEvent]:
        """The events `chunk` completed (a partial event waits for the next chunk)."""

    def close(self) -> None:
        """The body ended: raise StreamError if it ended inside an event."""


class SseData:
    """Upstream SSE → the JSON data of each event, undecoded; `[DONE]` ends the stream."""

    __slots__ = ("done", "parser")

    def __init__(self, max_event_bytes: int) -> None:
        self.parser = SseParser(max_event_bytes=max_event_bytes)
        self.done = False

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        if self.done:  # read on to the end of the body so the connection can be reused
            return out
        for data in self.parser.feed_data(chunk):
            if data == DONE:
                self.done = True
                break
            if data:
                out.append(data)
        return out

    def close(self) -> None:
        """Nothing to check: a missing `[DONE]` is judged by the translator's own envelope."""


class SseEvents:
    """Upstream SSE → decoded JSON objects; StreamError for an event that is not one."""

    __slots__ = ("data",)

    def __init__(self, max_event_bytes: int) -> None:
        self.data = SseData(max_event_bytes)

    def feed(self, chunk: bytes) -> list[Json]:
        return [decode_event(data) for data in self.data.feed(chunk)]

    def close(self) -> None:
        """Nothing to check (see `SseData.close`)."""


class BedrockEvents:
    """Upstream AWS event-stream frames → the dicts the Converse stream translator consumes."""

    def __init__(self, max_event_bytes: int) -> None:
        self.decoder = EventStreamDecoder(max_message_bytes=max_event_bytes)

    def feed(self, chunk: bytes) -> list[Json]:
        try:
            return [converse_stream_event(message) for message in self.decoder.feed(chunk)]
        except EventStreamError as error:
            raise StreamError(f"provider sent a malformed event-stream: {error}") from None

    def close(self) -> None:
        try:
            self.decoder.finish()
        except EventStreamError as error:
            raise StreamError(f"provider event-stream ended mid-frame: {error}") from None
