"""A response stream as output filters see it: one whole SSE event per call (pure).

Plano hands an output filter each chunk as it came off the provider's
socket.  Where TCP cuts an event in two, the filter gets two halves, and a
redaction filter looking for `SECRET_TOKEN` misses it when the cut falls
inside the word; a filter that parses the event's JSON fails on both halves.
Our relay forwards whole events only (`SseEventFramer` holds back an
unfinished one), so here a block of whole events is cut into single events,
each of which goes through the chain by itself, and a filter's reply is
made to end on an event boundary, so that whatever it returns cannot run
into the next event and break the client's framing.

Events that carry nothing a filter could rewrite are not sent: blank
lines, a lone comment line (keep-alives), and Chat's `data: [DONE]`.

Bytes are kept as they are: `b"".join(split_events(block)) == block`.
Everything is linear in the block's size (one regex scan), whatever a
hostile provider sends.
"""

from __future__ import annotations

import re

_EVENT_END = re.compile(rb"(?:\n\n|\n\r|\r\r)[\r\n]*")
"""A blank line (two line endings in a row; `\\r\\n` is one ending, so these three pairs are every
blank line's signature) and the further line endings after it, which belong to the same boundary."""

_DONE = (b"data: [DONE]", b"data:[DONE]")
_LINE_ENDINGS = b"\r\n"


def split_events(block: bytes) -> list[bytes]:
    """`block` cut after each event boundary; a trailing piece without one is kept as the last item."""
    pieces: list[bytes] = []
    start = 0
    for match in _EVENT_END.finditer(block):
        end = match.end()
        pieces.append(block[start:end])
        start = end
    if start < len(block):
        pieces.append(block[start:])
    return pieces


def carries_content(event: bytes) -> bool:
    """False for what an output filter has no use for: blank lines, a lone comment, `[DONE]`."""
    text = event.strip(_LINE_ENDINGS)
    if not text or text in _DONE:
        return False
    return not (text[:1] == b":" and b"\n" not in text and b"\r" not in text)


def terminated(reply: bytes) -> bytes:
    """A filter's reply for one event, ending on an event boundary (a blank line is added if needed).

    A filter that trims trailing whitespace, or answers with the event's
    `data:` line only, would otherwise glue its event to the next one.  An
    empty reply stays empty: the filter dropped the event.
    """
    body = reply.rstrip(_LINE_ENDINGS)
    if not body:
        return reply
    if _EVENT_END.search(reply, len(body)) is not None:
        return reply
    return reply + b"\n\n"
