"""Provider stream bytes → decoded JSON events, for the stream translators.

Two framings: SSE (`data: <json>` events; `[DONE]` ends OpenAI streams) and
AWS event-stream (Bedrock's binary frames).  Anything malformed is a
`StreamError`, which the relay reports in the client's in-stream error shape.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from plano_trio.translate.base import Json, StreamError
from plano_trio.translate.eventstream import EventStreamDecoder, EventStreamError
from plano_trio.translate.matrix import converse_stream_event
from plano_trio.translate.sse import DONE, SseParser

_decode_json = msgspec.json.Decoder().decode


class EventSource(Protocol):
    def feed(self, chunk: bytes) -> list[Json]:
        """The events `chunk` completed (a partial event waits for the next chunk)."""

    def close(self) -> None:
        """The body ended: raise StreamError if it ended inside an event."""


class SseEvents:
    """Upstream SSE → decoded JSON events; `[DONE]` ends the stream."""

    def __init__(self, max_event_bytes: int) -> None:
        self.parser = SseParser(max_event_bytes=max_event_bytes)
        self.done = False

    def feed(self, chunk: bytes) -> list[Json]:
        out: list[Json] = []
        if self.done:  # read on to the end of the body so the connection can be reused
            return out
        for event in self.parser.feed(chunk):
            if event.data == DONE:
                self.done = True
                break
            if not event.data:
                continue
            try:
                value: Any = _decode_json(event.data)
            except msgspec.DecodeError:
                raise StreamError("provider sent a stream event that is not valid JSON") from None
            if not isinstance(value, dict):
                raise StreamError("provider sent a stream event that is not a JSON object")
            out.append(value)
        return out

    def close(self) -> None:
        """Nothing to check: a missing `[DONE]` is judged by the translator's own envelope."""


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
