"""The relayed stream's per-token shortcuts: `SseEventFramer.feed` on a chunk that ends an event with
nothing held, and `UsageWatcher.feed` on a chunk of whole events that does not mention usage.

Each shortcut must leave the object exactly where the long way would: the next chunk, whatever it is,
must come out the same.
"""

from __future__ import annotations

import pytest

from plano_trio.apis.openai_chat import Usage
from plano_trio.gateway.usage import UsageWatcher
from plano_trio.translate.sse import SseEventFramer


@pytest.mark.parametrize(
    ("pieces", "outputs", "pending"),
    [
        ([b"data: a\n\n", b"data: b\n\n"], [b"data: a\n\n", b"data: b\n\n"], b""),
        # After the shortcut the framer stands at an event boundary: a lone line ending is a blank line.
        ([b"data: a\n\n", b"\n"], [b"data: a\n\n", b"\n"], b""),
        ([b"data: a\r\r", b"\n"], [b"data: a\r\r", b"\n"], b""),
        ([b"data: a\n\r", b"\r"], [b"data: a\n\r", b"\r"], b""),
        ([b"data: a\n\n", b"data: b"], [b"data: a\n\n", b""], b"data: b"),
        # Something held: the chunk that completes it goes out joined to it (the long way).
        ([b"data: a", b"\n\n"], [b"", b"data: a\n\n"], b""),
        ([b"data: a\n", b"\n"], [b"", b"data: a\n\n"], b""),
        ([b"data: a\n\ndata: b", b"\n\n"], [b"data: a\n\n", b"data: b\n\n"], b""),
        ([b"", b"data: a\n\n", b""], [b"", b"data: a\n\n", b""], b""),
        ([b"\n\n"], [b"\n\n"], b""),
    ],
)
def test_framer(pieces: list[bytes], outputs: list[bytes], pending: bytes) -> None:
    framer = SseEventFramer()
    assert [framer.feed(piece) for piece in pieces] == outputs
    assert framer.pending == pending


USAGE = (
    b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7},"model":"m"}\n\n'
)


@pytest.mark.parametrize(
    ("pieces", "usage"),
    [
        ([b'data: {"choices":[]}\n\n', USAGE], Usage(3, 4, 7, None)),
        ([b'data: {"choices":[]}\n\n' + USAGE], Usage(3, 4, 7, None)),
        ([b'data: {"choices":[],"usage":null}\n\n', USAGE], Usage(3, 4, 7, None)),
        # Mid-event: the next chunk is parsed even though it mentions no usage...
        ([b'data: {"choices":[]', b"}\n\n", USAGE], Usage(3, 4, 7, None)),
        # ...and a usage split across chunks is still found.
        ([USAGE[:20], USAGE[20:]], Usage(3, 4, 7, None)),
        ([b'data: {"choices":[]}\n\ndata: {"x":', USAGE[6:]], None),  # one event, `{"x":{"choices"…`
        ([b'data: {"choices":[]}\r\n\r\n', USAGE], Usage(3, 4, 7, None)),
        ([b'data: {"choices":[]}\n\n'], None),
    ],
)
def test_usage_watcher(pieces: list[bytes], usage: Usage | None) -> None:
    watcher = UsageWatcher()
    for piece in pieces:
        watcher.feed(piece)
    assert watcher.usage == usage
