"""Incremental Server-Sent Events parsing and encoding, without I/O.

Modelled on h11: bytes go in with `feed()`, complete events come out, and
whatever is left of a partial event waits in a buffer for the next call.
Upstream chunk boundaries fall anywhere (mid-line, mid-`\\r\\n`), so the parser
never assumes a chunk holds whole events.  It follows the WHATWG
event-stream rules: `\\n`, `\\r\\n` or `\\r` end a line, a blank line ends an
event, `:` starts a comment, one leading space after the colon is dropped,
and several `data:` lines join with `\\n`.
"""

from __future__ import annotations

from typing import NamedTuple


class SseEvent(NamedTuple):
    data: bytes
    event: str | None = None
    id: str | None = None


class SseParser:
    """Feed bytes, get complete events; a partial trailing event is kept."""

    __slots__ = ("_buffer", "_data", "_event", "_id", "_pending_cr")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._event: str | None = None
        self._id: str | None = None
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Consume `chunk` and return the events it completed, in order."""
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the `\n` of a `\r\n` split across two chunks
        self._pending_cr = False
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):
                self._pending_cr = True
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events: list[SseEvent] = []
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = buffer[start:end]
            start = end + 1
            if line:
                self._field(line)
            elif self._data or self._event is not None:
                events.append(SseEvent(b"\n".join(self._data), self._event, self._id))
                self._data = []
                self._event = None
        self._buffer = buffer[start:]
        return events

    def _field(self, line: bytes) -> None:
        name, sep, value = line.partition(b":")
        if not name:
            return  # a comment line
        if sep and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            self._id = value.decode("utf-8", "replace")
        # `retry` and unknown fields are ignored, as the spec says.

    @property
    def has_partial(self) -> bool:
        """True when bytes of an unfinished event are still buffered."""
        return bool(self._buffer or self._data or self._event is not None)


def encode_event(data: bytes, event: str | None = None) -> bytes:
    """One SSE event: optional `event:` line, the data, and the blank line."""
    if b"\n" in data:
        data = data.replace(b"\n", b"\ndata: ")
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


DONE = b"[DONE]"
"""OpenAI's end-of-stream sentinel (`data: [DONE]`)."""
