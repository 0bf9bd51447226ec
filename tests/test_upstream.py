"""plano_trio.upstream against tiny real servers on 127.0.0.1.

Every server is a raw `trio.serve_tcp` handler writing hand-made HTTP/1.1
bytes, so tests control exactly what is on the wire (partial bodies, drops,
stalls) and can observe what the client does to the socket (reuse, EOF).
Synchronisation uses events, not sleeps, wherever ordering matters.
"""

from __future__ import annotations

import socket
import ssl
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import pytest
import trio

from plano_trio.upstream import (
    Origin,
    UpstreamError,
    UpstreamPool,
    UpstreamResponse,
    make_ssl_context,
)
from plano_trio.upstream.idle import IdleWatch
from plano_trio.upstream.origin import authority, host_header

if TYPE_CHECKING:
    from trustme import CA

JSON = b'{"ok":true}'


# --- server side -------------------------------------------------------------------------------------


@dataclass
class Request:
    line: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n == name), None)


class Peer:
    """The server's view of one accepted connection."""

    def __init__(self, stream: trio.abc.Stream, index: int) -> None:
        self.stream = stream
        self.index = index  # 1-based connection number on this server
        self._buf = bytearray()

    async def read_request(self) -> Request | None:
        """The next request (Content-Length bodies only), or None on EOF."""
        while b"\r\n\r\n" not in self._buf:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self._buf += data
        head, _, rest = bytes(self._buf).partition(b"\r\n\r\n")
        line, *lines = head.split(b"\r\n")
        headers = [(n.strip().lower(), v.strip()) for n, v in (h.split(b":", 1) for h in lines)]
        length = int(next((v for n, v in headers if n == b"content-length"), b"0"))
        buf = bytearray(rest)
        while len(buf) < length:
            data = await self.stream.receive_some(65536)
            assert data, "client closed mid-body"
            buf += data
        self._buf = buf[length:]
        return Request(line, headers, bytes(buf[:length]))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def wait_eof(self) -> None:
        """Return when the client closes its side (data it sends meanwhile is discarded)."""
        try:
            while await self.stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass


Handler = Callable[[Peer], Awaitable[None]]


@dataclass
class Server:
    handler: Handler
    port: int = 0
    connections: int = 0
    active: int = 0
    max_active: int = 0
    requests: list[Request] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    @property
    def origin(self) -> Origin:
        return Origin("http", "127.0.0.1", self.port)

    async def serve_one(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.handler(Peer(stream, self.connections))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception as exc:  # surfaced by the test, never crashes the listener
            self.errors.append(exc)
        finally:
            self.active -= 1
            await trio.aclose_forcefully(stream)


_servers: list[Server] = []


@pytest.fixture(autouse=True)
def _server_handlers_did_not_fail() -> Iterator[None]:
    """A failed assertion inside a server handler must fail the test, not vanish."""
    _servers.clear()
    yield
    assert [e for server in _servers for e in server.errors] == []


async def start(nursery: trio.Nursery, handler: Handler) -> Server:
    server = Server(handler)
    _servers.append(server)
    listeners = await nursery.start(partial(trio.serve_tcp, server.serve_one, 0, host="127.0.0.1"))
    server.port = listeners[0].socket.getsockname()[1]
    return server


def response(body: bytes = JSON, *, status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        status,
        len(body),
        extra,
        body,
    )


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def recording(server_requests: list[Request], reply: bytes = b"") -> Handler:
    """A keep-alive handler answering every request with `reply` (default: small JSON)."""

    async def handler(peer: Peer) -> None:
        while (req := await peer.read_request()) is not None:
            server_requests.append(req)
            await peer.send(reply or response())

    return handler


async def keepalive(peer: Peer) -> None:
    while await peer.read_request() is not None:
        await peer.send(response())


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    p = UpstreamPool(connect_timeout=2.0)
    try:
        yield p
    finally:
        await p.aclose()


async def get(pool: UpstreamPool, server: Server, **kw: float) -> UpstreamResponse:
    return await pool.request(server.origin, b"GET", b"/x", [], b"", **kw)


# --- keep-alive and framing --------------------------------------------------------------------------


async def test_keepalive_reuses_one_connection(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    server = await start(nursery, keepalive)
    for _ in range(3):
        async with await get(pool, server) as resp:
            assert resp.status == 200
            assert await resp.read() == JSON
    assert server.connections == 1


async def test_request_headers_and_body(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    seen: list[Request] = []
    server = await start(nursery, recording(seen))
    caller_headers = [
        (b"Content-Type", b"application/json"),
        (b"Content-Length", b"999"),  # wrong on purpose: the pool owns framing
        (b"transfer-encoding", b"chunked"),
        (b"authorization", b"Bearer k"),
    ]
    async with await pool.request(server.origin, b"POST", b"/v1/chat?a=1", caller_headers, b'{"m":1}') as r:
        assert r.headers == [(b"content-type", b"application/json"), (b"content-length", b"11")]
        await r.read()
    req = seen[0]
    assert req.line == b"POST /v1/chat?a=1 HTTP/1.1"
    assert req.headers[0] == (b"host", f"127.0.0.1:{server.port}".encode())
    assert req.header(b"content-length") == b"7"
    assert req.header(b"transfer-encoding") is None
    assert req.header(b"authorization") == b"Bearer k"
    assert req.body == b'{"m":1}'


async def test_host_override_and_caller_host(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    seen: list[Request] = []
    server = await start(nursery, recording(seen))
    sni_origin = Origin("http", "127.0.0.1", server.port, sni="api.example.com")
    await (await pool.request(sni_origin, b"GET", b"/", [], b"")).read()
    await (await pool.request(server.origin, b"GET", b"/", [(b"Host", b"mine")], b"")).read()
    assert [r.header(b"host") for r in seen] == [b"api.example.com", b"mine"]
    assert seen[0].header(b"content-length") is None  # GET without body: no framing header


def test_origin_strings() -> None:
    assert host_header(Origin("https", "api.openai.com", 443)) == b"api.openai.com"
    assert host_header(Origin("http", "localhost", 8080)) == b"localhost:8080"
    assert host_header(Origin("http", "::1", 80)) == b"[::1]"
    assert authority(Origin("http", "::1", 81)) == "[::1]:81"


async def test_chunked_body(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(CHUNKED_HEAD)
            await peer.send(chunk(b"hello, "))
            await peer.send(chunk(b"world") + b"0\r\n\r\n")

    server = await start(nursery, handler)
    for _ in range(2):
        async with await get(pool, server) as resp:
            assert await resp.read() == b"hello, world"
    assert server.connections == 1


async def test_chunks_arrive_incrementally(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    """Chunk n+1 is only sent after the client yielded chunk n: buffering would deadlock."""
    go = [trio.Event() for _ in range(3)]

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(CHUNKED_HEAD)
        for i, event in enumerate(go):
            await peer.send(chunk(b"data: %d\n\n" % i))
            await event.wait()
        await peer.send(b"0\r\n\r\n")

    server = await start(nursery, handler)
    got: list[bytes] = []
    with trio.fail_after(2):
        async with await get(pool, server) as resp:
            async for piece in resp:
                got.append(piece)
                go[len(got) - 1].set()
    assert got == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]


async def test_chunks_in_one_read_are_coalesced(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        body = b"".join(chunk(b"data: %d\n\n" % i) for i in range(3))
        await peer.send(CHUNKED_HEAD + body + b"0\r\n\r\n")

    server = await start(nursery, handler)
    async with await get(pool, server) as resp:
        got = [piece async for piece in resp]
    assert got == [b"data: 0\n\ndata: 1\n\ndata: 2\n\n"]
    assert all(type(piece) is bytes for piece in got)


async def test_bodiless_responses_keep_connection(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    async def handler(peer: Peer) -> None:
        while (req := await peer.read_request()) is not None:
            if req.line.startswith(b"HEAD"):
                await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n")
            else:
                await peer.send(b"HTTP/1.1 204 No Content\r\n\r\n")

    server = await start(nursery, handler)
    async with await pool.request(server.origin, b"HEAD", b"/", [], b"") as resp:
        assert resp.headers == [(b"content-length", b"1234")]  # body never read: aclose must still reuse
    async with await get(pool, server) as resp:
        assert resp.status == 204
    assert await (await get(pool, server)).read() == b""
    assert server.connections == 1


async def test_connection_close_response_not_reused(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(extra=b"connection: close\r\n"))

    server = await start(nursery, handler)
    for _ in range(2):
        assert await (await get(pool, server)).read() == JSON
    assert server.connections == 2


async def test_unread_body_closes_connection(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    first_closed = trio.Event()

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        if peer.index == 1:
            await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345")  # rest never comes
            await peer.wait_eof()
            first_closed.set()
        else:
            await peer.send(response())

    server = await start(nursery, handler)
    async with await get(pool, server) as resp:
        assert resp.status == 200
    with trio.fail_after(1):
        await first_closed.wait()
    assert await (await get(pool, server)).read() == JSON
    assert server.connections == 2
    with pytest.raises(UpstreamError) as err:
        await resp.read()  # closed early: never pretend the body was complete
    assert err.value.kind == "closed"


async def test_interim_100_continue_is_skipped(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            await peer.send(response())

    server = await start(nursery, handler)
    for _ in range(2):
        async with await pool.request(server.origin, b"POST", b"/", [], b"{}") as resp:
            assert (resp.status, await resp.read()) == (200, JSON)
    assert server.connections == 1


async def test_request_connection_close_not_reused(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    server = await start(nursery, keepalive)
    for _ in range(2):
        resp = await pool.request(server.origin, b"GET", b"/", [(b"Connection", b"close")], b"")
        assert await resp.read() == JSON
    assert server.connections == 2


@pytest.mark.parametrize(
    "reply",
    [
        response() + b"junk",  # more than Content-Length announced
        response().replace(b"HTTP/1.1", b"HTTP/1.0"),
    ],
    ids=["bytes-after-body", "http-1.0"],
)
async def test_unsafe_to_reuse_responses(nursery: trio.Nursery, pool: UpstreamPool, reply: bytes) -> None:
    server = await start(nursery, recording([], reply))
    for _ in range(2):
        async with await get(pool, server) as resp:
            assert await resp.read() == JSON
    assert server.connections == 2


async def test_close_delimited_body(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\npart one, ")
        await peer.send(b"part two")

    server = await start(nursery, handler)
    async with await get(pool, server) as resp:
        assert await resp.read() == b"part one, part two"
    assert await (await get(pool, server)).read() == b"part one, part two"
    assert server.connections == 2


async def test_malformed_chunk_is_protocol_error(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(CHUNKED_HEAD + chunk(b"ok") + b"zz\r\n")
        await peer.wait_eof()

    server = await start(nursery, handler)
    resp = await get(pool, server)
    with pytest.raises(UpstreamError) as err:
        await resp.read()
    assert err.value.kind == "protocol"
    assert f"127.0.0.1:{server.port}" in err.value.message


# --- reuse: a written request is never sent twice -----------------------------------------------------


async def test_request_on_reused_connection_is_never_resent(
    nursery: trio.Nursery, pool: UpstreamPool
) -> None:
    """The upstream reads the second request, then hangs up: it must see it once, the caller an error."""
    seen: list[Request] = []

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response())
        req = await peer.read_request()
        assert req is not None
        seen.append(req)  # and close without answering, as a crashing upstream would

    server = await start(nursery, handler)
    assert await (await get(pool, server)).read() == JSON
    with pytest.raises(UpstreamError) as err:
        await pool.request(server.origin, b"POST", b"/v1/chat", [], b'{"bill": "me"}')
    assert err.value.kind == "closed"
    assert f"127.0.0.1:{server.port}" in err.value.message
    assert [r.body for r in seen] == [b'{"bill": "me"}']
    assert server.connections == 1


async def test_fresh_connection_failure_not_retried(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()  # then close without answering

    server = await start(nursery, handler)
    with pytest.raises(UpstreamError) as err:
        await get(pool, server)
    assert err.value.kind == "closed"
    assert f"127.0.0.1:{server.port}" in err.value.message
    assert server.connections == 1


async def _reuse_after(
    nursery: trio.Nursery, pool: UpstreamPool, spoil: Callable[[Peer], Awaitable[None]]
) -> tuple[Server, list[Request]]:
    """Answer once on connection 1, `spoil` it while idle, then record anything the client still sends on it.

    Connection 1 keeps reading after being spoiled, so a request written to it
    (the bug) is seen by the server; a correct client polls the idle socket,
    finds it readable, and sends on connection 2 instead.
    """
    seen: list[Request] = []
    spoiled = trio.Event()

    async def handler(peer: Peer) -> None:
        if peer.index > 1:
            return await recording(seen)(peer)
        await peer.read_request()
        await peer.send(response())
        await spoil(peer)
        spoiled.set()
        while (req := await peer.read_request()) is not None:
            seen.append(req)

    server = await start(nursery, handler)
    assert await (await get(pool, server)).read() == JSON
    with trio.fail_after(1):
        await spoiled.wait()
    await trio.sleep(0.01)  # let the FIN / stray bytes reach the client's socket
    async with await pool.request(server.origin, b"POST", b"/v1/chat", [], b"{}") as resp:
        assert await resp.read() == JSON
    return server, seen


async def test_idle_connection_closed_by_upstream_is_not_reused(
    nursery: trio.Nursery, pool: UpstreamPool
) -> None:
    async def half_close(peer: Peer) -> None:
        assert isinstance(peer.stream, trio.SocketStream)
        await peer.stream.send_eof()  # FIN, as an idle timeout on the upstream would send

    server, seen = await _reuse_after(nursery, pool, half_close)
    assert [r.body for r in seen] == [b"{}"]  # once, and on the fresh connection
    assert server.connections == 2


async def test_idle_connection_with_stray_bytes_is_not_reused(
    nursery: trio.Nursery, pool: UpstreamPool
) -> None:
    async def babble(peer: Peer) -> None:
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")  # an answer nobody asked for

    server, seen = await _reuse_after(nursery, pool, babble)
    assert [r.body for r in seen] == [b"{}"]
    assert server.connections == 2


async def test_several_dead_idle_connections_are_all_skipped(
    nursery: trio.Nursery, pool: UpstreamPool
) -> None:
    gone = [trio.Event() for _ in range(3)]

    async def handler(peer: Peer) -> None:
        if peer.index > 3:
            return await keepalive(peer)
        await peer.read_request()
        await peer.send(response())
        await peer.stream.aclose()
        gone[peer.index - 1].set()

    server = await start(nursery, handler)
    responses = [await get(pool, server) for _ in range(3)]  # three connections open at once
    for resp in responses:
        assert await resp.read() == JSON
    for event in gone:
        await event.wait()
    await trio.sleep(0.01)
    assert await (await get(pool, server)).read() == JSON
    assert server.connections == 4


async def test_idle_timeout_discards_old_connections(nursery: trio.Nursery) -> None:
    server = await start(nursery, keepalive)
    pool = UpstreamPool(idle_timeout=0.0)
    try:
        await (await get(pool, server)).read()
        await trio.sleep(0.01)
        await (await get(pool, server)).read()
    finally:
        await pool.aclose()
    assert server.connections == 2


# --- failures ------------------------------------------------------------------------------------------


async def test_connection_refused(pool: UpstreamPool) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    with pytest.raises(UpstreamError) as err:
        await pool.request(Origin("http", "127.0.0.1", port), b"GET", b"/", [], b"")
    assert err.value.kind == "connect"
    assert err.value.message.startswith(f"cannot connect to 127.0.0.1:{port}: ")


async def test_head_timeout_waiting_for_head(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.wait_eof()

    server = await start(nursery, handler)
    with pytest.raises(UpstreamError) as err:
        await get(pool, server, head_timeout=0.05)
    assert err.value.kind == "timeout"
    assert f"127.0.0.1:{server.port}" in err.value.message


async def test_read_timeout_does_not_bound_the_head(nursery: trio.Nursery) -> None:
    """A model may think longer than a stream may stall: the head wait is the caller's to bound."""

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await trio.sleep(0.2)
        await peer.send(response())

    server = await start(nursery, handler)
    pool = UpstreamPool(read_timeout=0.02)
    try:
        with trio.fail_after(2):
            assert await (await get(pool, server, read_timeout=0.02)).read() == JSON
    finally:
        await pool.aclose()


async def test_read_timeout_between_chunks(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(CHUNKED_HEAD + chunk(b"first"))
        await peer.wait_eof()

    server = await start(nursery, handler)
    resp = await get(pool, server, read_timeout=0.05)
    it = aiter(resp)
    assert await anext(it) == b"first"
    with pytest.raises(UpstreamError) as err:
        await anext(it)
    assert err.value.kind == "timeout"


async def _stalled_stream(pool: UpstreamPool, server: Server) -> tuple[float, UpstreamError]:
    """Read a stream that stalls after one chunk; (seconds from the stall to the error, the error)."""
    with trio.fail_after(2):  # before the fix: no default bound, the read waits forever
        resp = await pool.request(server.origin, b"GET", b"/", [], b"")
        it = aiter(resp)
        assert await anext(it) == b"first"
        stalled_at = trio.current_time()
        with pytest.raises(UpstreamError) as err:
            await anext(it)
    return trio.current_time() - stalled_at, err.value


async def _stall_after_one_chunk(peer: Peer, eof: trio.Event) -> None:
    await peer.read_request()
    await peer.send(CHUNKED_HEAD + chunk(b"first"))
    await peer.wait_eof()
    eof.set()


async def test_pool_read_timeout_ends_a_stalled_stream(nursery: trio.Nursery) -> None:
    eof = trio.Event()
    server = await start(nursery, partial(_stall_after_one_chunk, eof=eof))
    pool = UpstreamPool(read_timeout=0.1)
    try:
        waited, error = await _stalled_stream(pool, server)
        assert error.kind == "timeout"
        assert (
            error.message
            == f"127.0.0.1:{server.port} sent nothing for 0.1s in the middle of the response body"
        )
        assert 0.1 <= waited < 0.5  # fires within a quarter of the timeout, plus scheduling slack
        with trio.fail_after(1):
            await eof.wait()  # the socket was closed: the upstream knows, and the slot is free
    finally:
        await pool.aclose()


async def test_read_timeout_is_per_wait_not_per_body(nursery: trio.Nursery) -> None:
    """A slow but steady stream (gaps shorter than the timeout) outlives the timeout many times over."""

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(CHUNKED_HEAD)
        for i in range(8):
            await trio.sleep(0.03)
            await peer.send(chunk(b"%d" % i))
        await peer.send(b"0\r\n\r\n")

    server = await start(nursery, handler)
    pool = UpstreamPool(read_timeout=0.1)
    try:
        assert await (await get(pool, server)).read() == b"01234567"
    finally:
        await pool.aclose()


@pytest.mark.parametrize(
    "partial",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789",
        CHUNKED_HEAD + chunk(b"0123456789"),
    ],
    ids=["content-length", "chunked"],
)
async def test_peer_drops_mid_body(nursery: trio.Nursery, pool: UpstreamPool, partial: bytes) -> None:
    sent = trio.Event()

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(partial)
        sent.set()

    server = await start(nursery, handler)
    resp = await get(pool, server)
    got: list[bytes] = []
    with pytest.raises(UpstreamError) as err:
        async for piece in resp:
            got.append(piece)
    assert err.value.kind == "closed"
    assert b"".join(got) == b"0123456789"
    await resp.aclose()  # idempotent after the failure


async def test_protocol_error(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await peer.wait_eof()

    server = await start(nursery, handler)
    with pytest.raises(UpstreamError) as err:
        await get(pool, server)
    assert err.value.kind == "protocol"


async def test_invalid_request_header_is_protocol_error(pool: UpstreamPool) -> None:
    with pytest.raises(UpstreamError) as err:
        await pool.request(Origin("http", "127.0.0.1", 9), b"GET", b"/", [(b"x", b"a\r\nb")], b"")
    assert err.value.kind == "protocol"


# --- cancellation and limits ---------------------------------------------------------------------------


async def test_cancel_while_reading_closes_socket(nursery: trio.Nursery) -> None:
    """The client went away mid-stream: the upstream must see EOF within milliseconds."""
    eof_at: list[float] = []
    eof = trio.Event()

    async def handler(peer: Peer) -> None:
        if peer.index > 1:
            return await keepalive(peer)
        await peer.read_request()
        await peer.send(CHUNKED_HEAD + chunk(b"tok"))
        await peer.wait_eof()
        eof_at.append(trio.current_time())
        eof.set()

    server = await start(nursery, handler)
    pool = UpstreamPool(max_per_host=1)
    resp = await get(pool, server)  # deliberately not `async with`: __anext__ itself must close
    got: list[bytes] = []
    with trio.move_on_after(0.05) as scope:
        async for piece in resp:
            got.append(piece)
    assert scope.cancelled_caught
    assert got == [b"tok"]
    cancelled_at = trio.current_time()
    with trio.fail_after(1):
        await eof.wait()
    assert eof_at[0] - cancelled_at < 0.1  # in practice one scheduler pass; generous for loaded CI
    with trio.fail_after(0.5):  # the permit came back, and the dead connection was not pooled
        assert await (await get(pool, server)).read() == JSON
    await pool.aclose()
    assert server.connections == 2


async def test_cancel_while_waiting_for_head(nursery: trio.Nursery) -> None:
    got_eof = trio.Event()

    async def handler(peer: Peer) -> None:
        if peer.index > 1:
            return await keepalive(peer)
        await peer.read_request()
        await peer.wait_eof()
        got_eof.set()

    server = await start(nursery, handler)
    pool = UpstreamPool(max_per_host=1)
    with trio.move_on_after(0.05):
        await get(pool, server)
    with trio.fail_after(0.5):
        await got_eof.wait()
    with trio.fail_after(0.5):  # permit released even though request() was cancelled
        assert await (await get(pool, server)).read() == JSON
    await pool.aclose()


async def test_max_per_host_bounds_connections(nursery: trio.Nursery) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await trio.sleep(0.02)
            await peer.send(response())

    server = await start(nursery, handler)
    pool = UpstreamPool(max_per_host=2)
    bodies: list[bytes] = []

    async def one() -> None:
        async with await get(pool, server) as resp:
            bodies.append(await resp.read())

    with trio.fail_after(2):
        async with trio.open_nursery() as inner:
            for _ in range(6):
                inner.start_soon(one)
    await pool.aclose()
    assert bodies == [JSON] * 6
    assert server.max_active == 2
    assert server.connections == 2


async def test_pool_aclose_closes_idle(nursery: trio.Nursery) -> None:
    closed = trio.Event()

    async def handler(peer: Peer) -> None:
        await keepalive(peer)
        closed.set()

    server = await start(nursery, handler)
    pool = UpstreamPool()
    await (await get(pool, server)).read()
    await pool.aclose()
    with trio.fail_after(1):
        await closed.wait()
    with pytest.raises(UpstreamError) as err:
        await get(pool, server)
    assert err.value.kind == "closed"


# --- the idle watch (read timeout bookkeeping) ----------------------------------------------------------


class Waiter:
    def __init__(self) -> None:
        self.expired_at: float | None = None

    def expire(self) -> None:
        self.expired_at = trio.current_time()


async def test_idle_watch_expires_only_due_waits() -> None:
    watch = IdleWatch()
    early, late, gone = Waiter(), Waiter(), Waiter()
    watch.arm(early, 1.0)
    watch.arm(late, 5.0)
    watch.arm(gone, 1.0)
    watch.disarm(gone)
    now = trio.current_time()
    assert watch.expire_due(now) == 0
    assert watch.expire_due(now + 2.0) == 1
    assert watch.expire_due(now + 2.0) == 0  # expired once, then forgotten
    assert (early.expired_at is not None, late.expired_at, gone.expired_at) == (True, None, None)
    watch.aclose()


async def test_idle_watch_shorter_timeout_wakes_the_task_early() -> None:
    """The task sleeps a quarter of the shortest timeout so far; a shorter one must not wait that out."""
    watch = IdleWatch()
    slow, fast = Waiter(), Waiter()
    watch.arm(slow, 100.0)
    await trio.sleep(0.01)  # the task is now asleep for 25 s
    armed_at = trio.current_time()
    watch.arm(fast, 0.05)
    with trio.fail_after(1):
        while fast.expired_at is None:
            await trio.sleep(0.01)
    assert fast.expired_at - armed_at < 0.2
    assert slow.expired_at is None
    watch.aclose()


async def test_idle_watch_restarts_after_aclose() -> None:
    watch = IdleWatch()
    watch.aclose()  # before any task: a no-op
    first = Waiter()
    watch.arm(first, 10.0)
    watch.aclose()
    await trio.sleep(0)
    second = Waiter()
    watch.arm(second, 0.02)  # a response still being read after the pool closed keeps its bound
    with trio.fail_after(1):
        while second.expired_at is None:
            await trio.sleep(0.01)
    assert first.expired_at is None
    watch.aclose()


# --- body cap ------------------------------------------------------------------------------------------

LIMIT = 1024 * 1024


async def _endless(peer: Peer, head: bytes, piece: bytes, eof: trio.Event) -> None:
    """Send `head`, then `piece` forever, until the client hangs up."""
    await peer.read_request()
    await peer.send(head)
    try:
        while True:
            await peer.send(piece)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        eof.set()


@pytest.mark.parametrize(
    ("head", "piece"),
    [
        (CHUNKED_HEAD, chunk(b"x" * 60_000)),
        (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n", b"x" * 60_000),  # until close
    ],
    ids=["chunked", "close-delimited"],
)
async def test_endless_body_stops_at_the_limit(
    nursery: trio.Nursery, pool: UpstreamPool, head: bytes, piece: bytes
) -> None:
    eof = trio.Event()
    server = await start(nursery, partial(_endless, head=head, piece=piece, eof=eof))
    resp = await get(pool, server)
    tracemalloc.start()
    try:
        with trio.fail_after(5), pytest.raises(UpstreamError) as err:
            await resp.read(LIMIT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.kind == "too_large"
    assert err.value.message == f"response body from 127.0.0.1:{server.port} exceeds {LIMIT} bytes"
    assert peak < LIMIT + 512 * 1024  # the parts kept, plus one read in flight: never past the limit
    with trio.fail_after(1):
        await eof.wait()  # closed at once, not drained


async def test_huge_content_length_fails_before_reading(nursery: trio.Nursery, pool: UpstreamPool) -> None:
    eof = trio.Event()
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 50000000000\r\n\r\n"
    server = await start(nursery, partial(_endless, head=head, piece=b"x" * 60_000, eof=eof))
    resp = await get(pool, server)
    with trio.fail_after(1), pytest.raises(UpstreamError) as err:
        await resp.read(LIMIT)
    assert err.value.kind == "too_large"
    with trio.fail_after(1):
        await eof.wait()


@pytest.mark.parametrize(
    ("size", "limit"), [(LIMIT, LIMIT), (0, 0), (10, 9)], ids=["at-limit", "empty", "one-over"]
)
async def test_body_limit_is_inclusive(
    nursery: trio.Nursery, pool: UpstreamPool, size: int, limit: int
) -> None:
    body = b"y" * size

    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(CHUNKED_HEAD + (chunk(body) if body else b"") + b"0\r\n\r\n")

    server = await start(nursery, handler)
    resp = await get(pool, server)
    if size <= limit:
        assert await resp.read(limit) == body
    else:
        with pytest.raises(UpstreamError, match="exceeds 9 bytes"):
            await resp.read(limit)


# --- TLS -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> CA:
    """A throwaway CA (trustme, a test-only dependency); TLS tests skip without it."""
    trustme = pytest.importorskip("trustme")
    new_ca: CA = trustme.CA()
    return new_ca


async def start_tls(nursery: trio.Nursery, ca: CA, handler: Handler) -> tuple[Server, list[str]]:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("upstream.test").configure_cert(server_ctx)
    sni_seen: list[str] = []

    def record_sni(_obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni_seen.append(name or "")

    server_ctx.sni_callback = record_sni
    server = Server(handler)
    _servers.append(server)
    serve = partial(
        trio.serve_ssl_over_tcp, server.serve_one, 0, server_ctx, host="127.0.0.1", https_compatible=True
    )
    listeners = await nursery.start(serve)
    server.port = listeners[0].transport_listener.socket.getsockname()[1]
    return server, sni_seen


async def test_https_with_custom_ca_and_sni(nursery: trio.Nursery, ca: CA) -> None:
    seen: list[Request] = []
    server, sni_seen = await start_tls(nursery, ca, recording(seen))
    with ca.cert_pem.tempfile() as ca_path:
        pool = UpstreamPool(ssl_context=make_ssl_context(ca_path))
    origin = Origin("https", "127.0.0.1", server.port, sni="upstream.test")
    try:
        for _ in range(2):
            async with await pool.request(origin, b"POST", b"/v1", [], b"{}") as resp:
                assert await resp.read() == JSON
    finally:
        await pool.aclose()
    assert sni_seen == ["upstream.test"]  # one handshake: the connection was reused
    assert server.connections == 1
    assert [r.header(b"host") for r in seen] == [b"upstream.test"] * 2


async def test_https_certificate_mismatch_is_connect_error(nursery: trio.Nursery, ca: CA) -> None:
    server, _ = await start_tls(nursery, ca, keepalive)
    with ca.cert_pem.tempfile() as ca_path:
        pool = UpstreamPool(ssl_context=make_ssl_context(ca_path))
    with pytest.raises(UpstreamError) as err:  # no sni: server_hostname=127.0.0.1, not in the cert
        await pool.request(Origin("https", "127.0.0.1", server.port), b"GET", b"/", [], b"")
    await pool.aclose()
    assert err.value.kind == "connect"
    assert f"TLS handshake with 127.0.0.1:{server.port} failed" in err.value.message


async def test_tls_handshake_timeout(nursery: trio.Nursery) -> None:
    async def silent(peer: Peer) -> None:
        await peer.wait_eof()  # accepts TCP, never speaks TLS

    server = await start(nursery, silent)
    pool = UpstreamPool(connect_timeout=0.05, ssl_context=make_ssl_context())
    with pytest.raises(UpstreamError) as err:
        await pool.request(Origin("https", "127.0.0.1", server.port), b"GET", b"/", [], b"")
    await pool.aclose()
    assert err.value.kind == "timeout"
    assert f"127.0.0.1:{server.port}" in err.value.message


async def test_https_idle_connection_closed_by_upstream_is_not_reused(nursery: trio.Nursery, ca: CA) -> None:
    seen: list[Request] = []
    closed = trio.Event()

    async def handler(peer: Peer) -> None:
        if peer.index > 1:
            return await recording(seen)(peer)
        await peer.read_request()
        await peer.send(response())
        await peer.stream.aclose()  # close_notify + FIN while the client holds it idle
        closed.set()

    server, _ = await start_tls(nursery, ca, handler)
    with ca.cert_pem.tempfile() as ca_path:
        pool = UpstreamPool(ssl_context=make_ssl_context(ca_path))
    origin = Origin("https", "127.0.0.1", server.port, sni="upstream.test")
    try:
        assert await (await pool.request(origin, b"GET", b"/", [], b"")).read() == JSON
        with trio.fail_after(1):
            await closed.wait()
        await trio.sleep(0.01)
        assert await (await pool.request(origin, b"POST", b"/", [], b"{}")).read() == JSON
    finally:
        await pool.aclose()
    assert [r.body for r in seen] == [b"{}"]
    assert server.connections == 2


async def test_https_read_timeout_ends_a_stalled_stream(nursery: trio.Nursery, ca: CA) -> None:
    eof = trio.Event()
    server, _ = await start_tls(nursery, ca, partial(_stall_after_one_chunk, eof=eof))
    with ca.cert_pem.tempfile() as ca_path:
        pool = UpstreamPool(ssl_context=make_ssl_context(ca_path), read_timeout=0.1)
    try:
        origin = Origin("https", "127.0.0.1", server.port, sni="upstream.test")
        with trio.fail_after(2):
            resp = await pool.request(origin, b"GET", b"/", [], b"")
            assert await anext(aiter(resp)) == b"first"
            with pytest.raises(UpstreamError) as err:
                await anext(aiter(resp))
        assert err.value.kind == "timeout"
        with trio.fail_after(1):
            await eof.wait()
    finally:
        await pool.aclose()
