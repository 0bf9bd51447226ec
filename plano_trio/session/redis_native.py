"""The Redis session store's native client: RESP on trio streams, no library, no asyncio bridge.

The default client (`plano_trio.session_cache_client: native`), because it
is measurably the cheaper way for a trio process to reach Redis.  redis-py
has no trio support; driving its asyncio client through trio-asyncio (the
`redis` module, kept as the `redis-py` choice) costs about 20 trips through
the bridge's loop per command.  Measured with `python -m bench.redis_bridge
--rounds 3` (Redis 7.0 on localhost, 1 KiB values, a shared and loaded
2-core machine, so +-30% between runs; this process's CPU per call, calls
in sequence, then 100 tasks issuing GETs):

    | path                               | GET CPU µs | SET CPU µs | 100 tasks GET/s |
    |------------------------------------|-----------:|-----------:|----------------:|
    | session store, native (this)       |     55-90  |     70-93  |   6,000-14,000  |
    | session store, redis-py (bridge)   |    333-384 |    304-433 |   1,500-2,200   |
    | session store, memory              |          1 |          2 |        500,000  |
    | raw RESP on trio.SocketStream      |      50-66 |      50-73 |  13,000-16,700  |

and in the routing bench (`python -m bench run --quick --scenarios
routing`, where a routed request with a session reads its binding and
writes it twice), the gateway's CPU per routed request with Redis over the
same with the memory store: 1.06-1.17x with this client (median 1.10 over
four runs with the gateways' requests alternating, 1.09 with both gateways
loaded at once), against 1.49-1.70x with redis-py in the same runs (the
issue measured 1.79x).  What is left is the three round trips themselves:
at one request at a time Redis sleeps between requests, and each round
trip wakes it and this process; a loop of bare socket calls with none of
this code costs ~250 µs of CPU for the three, so the issue's 1.05x needs
fewer round trips per routed request, not a cheaper client.

What it does: parses `redis://` and `rediss://` URLs (`parse_redis_url`:
host, port, database from the path `/N` or `?db=N`, username and password,
TLS options), keeps a bounded pool of connections (`NativeRedis`: at most
`MAX_CONNECTIONS` open and kept for reuse, a new one connected on demand;
one idle for over `STALE_CHECK_AFTER_S` that polls readable, closed or
talking out of turn, is dropped instead of reused), sends AUTH, SELECT and
CLIENT SETNAME in one
write when it connects, and runs GETRANGE, SET EX, PING and EVALSHA (with
EVAL after NOSCRIPT; the rate limits' script), one command at a time per
connection.  Encoding and parsing are `resp`'s, pure.

What it does not do: retries, pipelining, RESP3, cluster or sentinel,
`unix://` sockets, redis-py's socket and pool options in the URL (refused
at start rather than ignored; the session cache has its own timeout).

Every wait (DNS, connect, TLS handshake, AUTH, the command) runs inside the
store's per-call timeout (`failopen.RedisSessionStore`), which is also this
client's connect timeout.  Whatever goes wrong on a connection (a timeout,
a cancel, an error, a reply of the wrong type, bytes nobody asked for)
closes it: a connection is never reused half-read.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, unquote, urlsplit

import trio

from .failopen import RedisSessionStore, ReplyError, describe_url, serve_store
from .resp import (
    ErrorReply,
    NeedData,
    Reply,
    RespParser,
    RespProtocolError,
    SimpleString,
    encode_command,
)

MAX_CONNECTIONS: Final = 32
"""Connections open at once per process; more concurrent calls wait, within their timeout."""

MAX_IDLE: Final = MAX_CONNECTIONS
"""Idle connections kept for reuse: all of them.  Keeping fewer (8 was tried) closes and reopens
connections all the time under sustained concurrency (100 tasks: 4,500 GETs/s instead of 14,000 in
`bench.redis_bridge`); 32 idle connections cost Redis nothing worth saving."""

STALE_CHECK_AFTER_S: Final = 1.0
"""An idle connection is polled for a close by Redis (a restart, its `timeout` setting, `CLIENT KILL`)
before reuse only when it has been idle this long.  The poll is a system call, ~10% of a GET's CPU
when Redis is busy; a connection reused within a second is, at worst, one failed call, as any call
in flight when Redis went away."""

RECEIVE_BYTES: Final = 64 * 1024
"""Largest read; with the parser's bounds, what one connection may buffer."""

CLIENT_NAME: Final = "plano-trio"
"""`CLIENT SETNAME` of every connection, so an operator sees who is connected (`CLIENT LIST`)."""

OUTAGE_ERRORS: Final = frozenset({"NOAUTH", "WRONGPASS", "NOPERM", "LOADING", "MASTERDOWN"})
"""Error replies that say Redis cannot serve us at all (credentials, permissions, loading, failover):
they open the skip window like a lost connection, not counted as trouble with one key."""

_BOOL: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_CERT_REQS: Final = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
_TLS_OPTIONS: Final = frozenset(
    {"ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname"}
)


class RedisUnavailable(Exception):
    """Redis refused the connection's set-up or answered that it cannot serve (`OUTAGE_ERRORS`)."""


@dataclass(frozen=True, slots=True)
class RedisEndpoint:
    """Where and how to connect, from a `redis://` or `rediss://` URL."""

    host: str
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    cert_reqs: ssl.VerifyMode = ssl.CERT_REQUIRED
    check_hostname: bool = True
    ca_certs: str | None = None
    ca_path: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    def handshake(self) -> list[tuple[str, bytes]]:
        """The commands every new connection sends first, named: AUTH (as redis-py: with a username, or
        a password alone), SELECT unless database 0, CLIENT SETNAME."""
        commands = []
        if self.username or self.password:
            auth = (self.username, self.password or "") if self.username else (self.password or "",)
            commands.append(("AUTH", encode_command(b"AUTH", *auth)))
        if self.db:
            commands.append(("SELECT", encode_command(b"SELECT", self.db)))
        commands.append(("CLIENT SETNAME", encode_command(b"CLIENT", b"SETNAME", CLIENT_NAME)))
        return commands


def parse_redis_url(url: str) -> RedisEndpoint:
    """`redis://[[user]:password@]host[:port][/db][?options]`, or `rediss://` for TLS.

    TLS options (rediss only), named as redis-py names them:
    `ssl_cert_reqs` (`none`, `optional`, `required`; `none` also skips the
    host name check), `ssl_ca_certs` (a PEM file), `ssl_ca_path` (a
    directory), `ssl_certfile` and `ssl_keyfile` (a client certificate),
    `ssl_check_hostname` (`true`/`false`).  `db=N` may stand in for the path.

    Raises `ValueError` for anything else: another scheme, a bad port or
    database, an option this client does not know (it would be ignored
    silently otherwise; redis-py's own options belong to the `redis-py`
    client).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss"):
        raise ValueError(f"scheme must be redis:// or rediss://, not {parts.scheme + '://'!r}")
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError("invalid port") from None
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in options:
            raise ValueError(f"option {name!r} given twice")
        options[name] = value
    unknown = sorted(set(options) - _TLS_OPTIONS - {"db"})
    if unknown:
        raise ValueError(
            f"options {', '.join(unknown)} are not supported by the native client"
            " (plano_trio.session_cache_client: redis-py passes them to redis-py)"
        )
    tls = scheme == "rediss"
    if not tls and _TLS_OPTIONS & set(options):
        raise ValueError("ssl_* options need a rediss:// URL")
    db_text = options.get("db", parts.path.strip("/") or "0")
    if not db_text.isascii() or not db_text.isdigit() or len(db_text) > 5:
        raise ValueError(f"invalid database {db_text!r}")
    cert_reqs = _CERT_REQS.get(options.get("ssl_cert_reqs", "required").lower())
    if cert_reqs is None:
        raise ValueError("ssl_cert_reqs must be none, optional or required")
    check_hostname = _BOOL.get(options.get("ssl_check_hostname", "").lower(), None)
    if "ssl_check_hostname" in options and check_hostname is None:
        raise ValueError("ssl_check_hostname must be true or false")
    if check_hostname is None:
        check_hostname = cert_reqs != ssl.CERT_NONE
    elif check_hostname and cert_reqs == ssl.CERT_NONE:
        raise ValueError("ssl_check_hostname=true needs ssl_cert_reqs other than none")
    return RedisEndpoint(
        host=parts.hostname or "localhost",
        port=port,
        db=int(db_text),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
        cert_reqs=cert_reqs,
        check_hostname=check_hostname,
        ca_certs=options.get("ssl_ca_certs"),
        ca_path=options.get("ssl_ca_path"),
        certfile=options.get("ssl_certfile"),
        keyfile=options.get("ssl_keyfile"),
    )


def make_ssl_context(endpoint: RedisEndpoint) -> ssl.SSLContext | None:
    """The TLS context for `endpoint` (None without TLS), built once: loading CA files takes tens of ms.

    Raises `ValueError` when a named CA or certificate file cannot be loaded.
    """
    if not endpoint.tls:
        return None
    try:
        ctx = ssl.create_default_context(cafile=endpoint.ca_certs, capath=endpoint.ca_path)
        ctx.check_hostname = endpoint.check_hostname
        ctx.verify_mode = endpoint.cert_reqs
        if endpoint.certfile:
            ctx.load_cert_chain(endpoint.certfile, endpoint.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"TLS files: {exc}") from None
    return ctx


class _SocketTransport:
    """Plain TCP, straight on the non-blocking socket: send, and wait only when the kernel says so.

    Why not `trio.SocketStream`: each of its sends and receives passes
    through trio's scheduler even when the socket is ready, and the session
    cache pays that three times per routed request.  Here a command passes
    through the scheduler only when it must wait (for the reply, or for
    room to send); measured on a local Redis, that took the CPU of a GET
    from ~100 to ~55 µs, since the reply is often there by the first read.
    So a call is not always a checkpoint; its callers await other things
    too.  Waiting is `wait_readable` / `wait_writable`, so cancellation
    (the call's timeout, the store closing) works as usual.
    """

    __slots__ = ("_sock",)

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self._sock.send(view) :]
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._sock)

    async def receive(self) -> bytes:
        while True:
            try:
                return self._sock.recv(RECEIVE_BYTES)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self._sock)

    def stale(self) -> bool:
        try:
            self._sock.recv(1, socket.MSG_PEEK)  # b"" (closed) or bytes nobody asked for
        except BlockingIOError:
            return False
        except OSError:
            return True
        return True

    async def aclose(self) -> None:
        trio.lowlevel.notify_closing(self._sock)  # wakes a task still waiting on it
        self._sock.close()


class _StreamTransport:
    """TLS: a `trio.SSLStream`, whose reads and writes go through the TLS layer anyway."""

    __slots__ = ("_raw", "_stream")

    def __init__(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        self._stream = stream
        self._raw = stream.transport_stream.socket

    async def send(self, data: bytes) -> None:
        await self._stream.send_all(data)

    async def receive(self) -> bytes | bytearray:
        return await self._stream.receive_some(RECEIVE_BYTES)

    def stale(self) -> bool:
        # The TCP socket is polled: TLS records are bytes nobody asked for too (a close_notify).
        return self._raw.is_readable()

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self._stream)


class _Connection:
    """One transport and its parser, carrying one command at a time."""

    __slots__ = ("idle_since", "parser", "transport")

    def __init__(self, transport: _SocketTransport | _StreamTransport) -> None:
        self.transport = transport
        self.parser = RespParser()
        self.idle_since = 0.0

    async def receive(self, *, last: bool = True) -> Reply:
        """The next reply (waiting for as many reads as it takes); `last`: no more are expected."""
        while isinstance(reply := self.parser.next_reply(), NeedData):
            data = await self.transport.receive()
            if not data:
                raise ConnectionError("Redis closed the connection")
            self.parser.feed(data)
        if last and self.parser.buffered:
            # One command at a time: anything after its reply is a reply to nothing.
            raise RespProtocolError("bytes after the reply")
        return reply


class NativeRedis:
    """`RedisCommands` over a small pool of trio connections to `endpoint`."""

    def __init__(
        self,
        endpoint: RedisEndpoint,
        ssl_context: ssl.SSLContext | None = None,
        *,
        max_connections: int = MAX_CONNECTIONS,
        max_idle: int = MAX_IDLE,
    ) -> None:
        self._endpoint = endpoint
        self._ssl_context = ssl_context
        self._handshake = endpoint.handshake()
        self._slots = trio.Semaphore(max_connections)
        self._max_idle = max_idle
        self._idle: list[_Connection] = []
        self._closed = False

    async def getrange(self, key: bytes, end: int) -> object:
        return await self._execute(encode_command(b"GETRANGE", key, b"0", end), bytes)

    async def set_ex(self, key: bytes, value: bytes, ttl_s: int) -> None:
        await self._execute(encode_command(b"SET", key, value, b"EX", ttl_s), SimpleString)

    async def ping(self) -> None:
        await self._execute(encode_command(b"PING"), SimpleString)

    async def evalsha(
        self, sha1: bytes, script: bytes, keys: Sequence[bytes], args: Sequence[bytes]
    ) -> Reply:
        """Run a Lua script by its SHA-1, sending its source (`EVAL`) only when Redis answers NOSCRIPT
        (first use, a restart, `SCRIPT FLUSH`); the script's reply, of any type."""
        try:
            return await self._execute(encode_command(b"EVALSHA", sha1, len(keys), *keys, *args), object)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self._execute(encode_command(b"EVAL", script, len(keys), *keys, *args), object)

    @property
    def idle(self) -> int:
        """Connections waiting in the pool (for tests)."""
        return len(self._idle)

    async def aclose(self) -> None:
        """Close the idle connections; connections in use close when their call ends."""
        self._closed = True
        while self._idle:
            await self._idle.pop().transport.aclose()

    async def _execute(self, payload: bytes, expected: type) -> Reply:
        """Send one command on a pooled connection and read its reply, which must be `expected`.

        An error reply raises `ReplyError` (or `RedisUnavailable` for the
        kinds in `OUTAGE_ERRORS`) and keeps the connection, which is still
        in step; every other failure closes it.
        """
        try:
            self._slots.acquire_nowait()  # no scheduler pass when a slot is free (nearly always)
        except trio.WouldBlock:
            await self._slots.acquire()
        try:
            conn = await self._checkout()
            try:
                await conn.transport.send(payload)
                reply = await conn.receive()
                if not isinstance(reply, expected | ErrorReply):
                    raise RespProtocolError(f"unexpected {type(reply).__name__} reply")
            except BaseException:
                await conn.transport.aclose()
                raise
            await self._checkin(conn)
        finally:
            self._slots.release()
        if isinstance(reply, ErrorReply):
            if reply.kind in OUTAGE_ERRORS:
                raise RedisUnavailable(reply.message)
            raise ReplyError(reply.message)
        return reply

    async def _checkout(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if trio.current_time() - conn.idle_since < STALE_CHECK_AFTER_S or not conn.transport.stale():
                return conn
            await conn.transport.aclose()
        if self._closed:
            raise RedisUnavailable("client closed")
        return await self._connect()

    async def _checkin(self, conn: _Connection) -> None:
        if self._closed or len(self._idle) >= self._max_idle:
            await conn.transport.aclose()
        else:
            conn.idle_since = trio.current_time()
            self._idle.append(conn)

    async def _connect(self) -> _Connection:
        """A new connection, set up (TLS, AUTH, SELECT, name); closed again if any of it fails."""
        endpoint = self._endpoint
        tcp = await trio.open_tcp_stream(endpoint.host, endpoint.port)
        transport: _SocketTransport | _StreamTransport
        try:
            if self._ssl_context is None:
                transport = _SocketTransport(socket.socket(fileno=tcp.socket.detach()))
            else:
                tls = trio.SSLStream(tcp, self._ssl_context, server_hostname=endpoint.host)
                transport = _StreamTransport(tls)
                await tls.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(tcp)
            raise
        conn = _Connection(transport)
        try:
            await transport.send(b"".join(payload for _, payload in self._handshake))
            for n, (name, _) in enumerate(self._handshake, 1):
                reply = await conn.receive(last=n == len(self._handshake))
                # A wrong password or database fails every later call the same way: an outage.  A proxy
                # that does not know CLIENT SETNAME is fine.
                if isinstance(reply, ErrorReply) and name != "CLIENT SETNAME":
                    raise RedisUnavailable(f"{name}: {reply.message}")
        except BaseException:
            await transport.aclose()
            raise
        return conn


@asynccontextmanager
async def open_native_store(url: str, *, timeout_s: float) -> AsyncIterator[RedisSessionStore]:
    """Parse `url`, yield the store at once (it connects on first use), close every connection on exit.

    Raises `ValueError` before yielding for a URL this client cannot use.
    """
    target = describe_url(url)
    try:
        endpoint = parse_redis_url(url)
        ssl_context = make_ssl_context(endpoint)
    except ValueError as exc:
        raise ValueError(f"session_cache.url ({target}): {exc}") from None
    client = NativeRedis(endpoint, ssl_context)
    store = RedisSessionStore(client, client="native", timeout_s=timeout_s, target=target)
    try:
        async with serve_store(store):
            yield store
    finally:
        await client.aclose()
