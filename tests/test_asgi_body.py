"""Reading a request body: the already-received fast path and the bounded path give the same answers."""

from __future__ import annotations

import pytest
import trio

from plano_trio.gateway.asgi import BodyLimits, ClientDisconnected, carries_body, read_body
from plano_trio.gateway.errors import ApiError

LIMITS = BodyLimits(max_bytes=10, stall_s=0.2, total_s=1.0)
Message = dict[str, object]


def channel(*messages: Message) -> tuple[trio.MemorySendChannel[Message], trio.MemoryReceiveChannel[Message]]:
    send, receive = trio.open_memory_channel[Message](10)
    for message in messages:
        send.send_nowait(message)
    return send, receive


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([{"type": "http.request", "body": b"abc"}], b"abc"),  # the fast path: queued and complete
        (
            [
                {"type": "http.request", "body": b"ab", "more_body": True},
                {"type": "http.request", "body": b"c"},
            ],
            b"abc",
        ),
        ([{"type": "http.request", "body": b""}], b""),
    ],
)
async def test_queued_body_is_read_whole(messages: list[Message], expected: bytes) -> None:
    _, receive = channel(*messages)
    assert await read_body(receive.receive, [], LIMITS) == expected


async def test_body_arriving_later_is_waited_for() -> None:
    send, receive = channel()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_later, send, {"type": "http.request", "body": b"late"})
        assert await read_body(receive.receive, [], LIMITS) == b"late"


async def test_a_body_whose_declared_length_arrived_waits_for_its_end_message() -> None:
    """The end-of-body message means the server's HTTP/1.1 parser has read the request's end: answering
    before it made hypercorn close the keep-alive connection after the answer (without a
    `connection: close`), so a client's next request on it failed (seen with httpx after a 400)."""
    send, receive = channel({"type": "http.request", "body": b"abc", "more_body": True})
    ended = trio.Event()

    async def end() -> None:
        await trio.sleep(0.05)
        ended.set()
        await send.send({"type": "http.request", "body": b"", "more_body": False})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(end)
        assert await read_body(receive.receive, [(b"content-length", b"3")], LIMITS) == b"abc"
        assert ended.is_set()


async def _later(send: trio.MemorySendChannel[Message], message: Message) -> None:
    await trio.sleep(0.05)
    await send.send(message)


@pytest.mark.parametrize(
    ("messages", "status"),
    [
        ([{"type": "http.request", "body": b"x" * 11}], 413),  # fast path, over the limit
        (
            [
                {"type": "http.request", "body": b"x" * 6, "more_body": True},
                {"type": "http.request", "body": b"x" * 6},
            ],
            413,
        ),
        ([{"type": "http.request", "body": b"x", "more_body": True}], 408),  # then nothing: stalled
    ],
)
async def test_limits_hold_on_both_paths(messages: list[Message], status: int) -> None:
    _, receive = channel(*messages)
    with pytest.raises(ApiError) as raised:
        await read_body(receive.receive, [], LIMITS)
    assert raised.value.status == status


async def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    _, receive = channel()
    with pytest.raises(ApiError) as raised:
        await read_body(receive.receive, [(b"content-length", b"11")], LIMITS)
    assert raised.value.status == 413


async def test_disconnect_first_is_reported() -> None:
    _, receive = channel({"type": "http.disconnect"})
    with pytest.raises(ClientDisconnected):
        await read_body(receive.receive, [], LIMITS)


async def test_a_plain_receive_callable_takes_the_bounded_path() -> None:
    _, receive = channel({"type": "http.request", "body": b"ok"})

    async def plain() -> Message:  # not a channel method: no fast path
        return await receive.receive()

    assert await read_body(plain, [], LIMITS) == b"ok"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], False),
        ([(b"host", b"x")], False),
        ([(b"content-length", b"0")], False),
        ([(b"content-length", b"000")], False),
        ([(b"content-length", b"12")], True),
        ([(b"content-length", b"10")], True),
        ([(b"content-length", b"x")], True),  # malformed: the server's parser decides, assume a body
        ([(b"transfer-encoding", b"chunked")], True),
        ([(b"content-length", b"0"), (b"transfer-encoding", b"chunked")], True),
    ],
)
def test_carries_body(headers: list[tuple[bytes, bytes]], expected: bool) -> None:
    assert carries_body(headers) is expected
