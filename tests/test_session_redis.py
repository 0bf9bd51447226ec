"""The Redis session store against real Redis servers: the shared one at 127.0.0.1:6379, and private
`redis-server` processes for what the shared one must not suffer (being stopped, TLS).

Each test writes under its own random key namespace and deletes it afterwards.  Fail-open tests use a
port where nothing listens and a trio listener that accepts and never answers; each call must return
within its timeout, and the store must find Redis again when it comes back.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest
import redis
import trio
import trio_asyncio  # type: ignore[import-untyped]
import trustme

from plano_trio.config.errors import ConfigError
from plano_trio.config.loader import load_config_text
from plano_trio.session import KEY_PREFIX, MAX_VALUE_BYTES, SessionStore, open_session_store
from plano_trio.session.failopen import LOG_INTERVAL_S, RedisSessionStore, ReplyError, describe_url
from plano_trio.session.redis_native import (
    CLIENT_NAME,
    STALE_CHECK_AFTER_S,
    NativeRedis,
    RedisEndpoint,
    make_ssl_context,
    parse_redis_url,
)
from plano_trio.session.resp import NeedData, RespParser, encode_command
from plano_trio.session.store import ClientKind, storage_key

SHARED_URL = "redis://127.0.0.1:6379"
T = TypeVar("T")
SLACK_S = 0.5
"""Allowance over a timeout for a loaded CI machine; still far below anything a hang would take."""


@pytest.fixture(params=["native", "redis-py"])
def client(request: pytest.FixtureRequest) -> ClientKind:
    """Every store test runs with both clients: they must behave the same (`failopen` is shared)."""
    kind: ClientKind = request.param
    return kind


@pytest.fixture
def ns() -> Iterator[str]:
    """A random key namespace on the shared Redis, deleted (with its prefix) after the test."""
    namespace = f"test:{secrets.token_hex(6)}:"
    yield namespace
    client = redis.Redis.from_url(SHARED_URL)
    try:
        keys = list(client.scan_iter(match=f"{KEY_PREFIX}{namespace}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    """A plain synchronous client to look at what the store wrote."""
    client = redis.Redis.from_url(SHARED_URL)
    yield client
    client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """A `redis-server` child on its own port, which a test may stop and start again."""

    def __init__(
        self,
        tmp: Path,
        *,
        tls: trustme.CA | None = None,
        password: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.password = password
        self.args = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.args += ["--dir", str(tmp), *extra]
        if password is not None:
            self.args += ["--requirepass", password]
        self.tls = tls is not None
        if tls is None:
            self.args += ["--port", str(self.port)]
        else:
            cert = tls.issue_cert("localhost", "127.0.0.1")
            cert.private_key_pem.write_to_path(str(tmp / "key.pem"))
            cert.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))
            tls.cert_pem.write_to_path(str(tmp / "ca.pem"))
            self.args += ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            self.args += ["--tls-cert-file", str(tmp / "cert.pem"), "--tls-key-file", str(tmp / "key.pem")]
            self.args += ["--tls-ca-cert-file", str(tmp / "ca.pem")]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "redis-server exited at start"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                if self.tls:
                    return
                if self.client().ping():
                    return
            except (OSError, redis.RedisError):
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def client(self, db: int = 0) -> redis.Redis:
        """A plain synchronous client of this server (as the default user)."""
        return redis.Redis(port=self.port, password=self.password, db=db, socket_timeout=1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


async def timed(call: Awaitable[T]) -> tuple[T, float]:
    start = trio.current_time()
    result = await call
    return result, trio.current_time() - start


# --- against the shared Redis -------------------------------------------------------------------------


async def test_put_then_get_with_prefix_and_ttl(ns: str, raw: redis.Redis, client: ClientKind) -> None:
    async with open_session_store("redis", client=client, url=SHARED_URL, timeout_s=1.0) as store:
        assert store.backend == "redis"
        assert await store.get(ns + "a") is None
        await store.put(ns + "a", b'{"anchor_model":"openai/gpt-4o"}', 300)
        assert await store.get(ns + "a") == b'{"anchor_model":"openai/gpt-4o"}'
        assert (store.counters.hits, store.counters.misses, store.counters.errors) == (1, 1, 0)
    assert raw.get(f"plano:affinity:{ns}a") == b'{"anchor_model":"openai/gpt-4o"}'
    ttl = raw.ttl(f"plano:affinity:{ns}a")
    assert isinstance(ttl, int) and 295 <= ttl <= 300  # SET ... EX 300


@pytest.mark.parametrize("ttl_s", [0, -1, 1])
async def test_a_ttl_under_one_second_is_one_second(
    ns: str, raw: redis.Redis, ttl_s: int, client: ClientKind
) -> None:
    async with open_session_store("redis", client=client, url=SHARED_URL, timeout_s=1.0) as store:
        await store.put(ns + "t", b"v", ttl_s)
    assert raw.pttl(f"{KEY_PREFIX}{ns}t") in range(1, 1001)


async def test_an_expired_binding_is_gone(ns: str, client: ClientKind) -> None:
    async with open_session_store("redis", client=client, url=SHARED_URL, timeout_s=1.0) as store:
        await store.put(ns + "e", b"v", 1)
        await trio.sleep(1.2)
        assert await store.get(ns + "e") is None


@pytest.mark.parametrize(
    "value",
    [
        bytes(range(256)),
        b"\r\n$5\r\nhello\r\n*1\r\n",  # RESP framing inside a value
        "μ-JSON ✓".encode(),
        b"\x00" * 17,
        bytes(range(256)) * (MAX_VALUE_BYTES // 256),  # exactly the bound
    ],
    ids=["all-bytes", "resp-framing", "utf8", "nuls", "64KiB"],
)
async def test_values_are_byte_exact(ns: str, raw: redis.Redis, value: bytes, client: ClientKind) -> None:
    async with open_session_store("redis", client=client, url=SHARED_URL, timeout_s=1.0) as store:
        await store.put(ns + "v", value, 60)
        assert await store.get(ns + "v") == value
    assert raw.get(f"{KEY_PREFIX}{ns}v") == value


async def test_values_over_the_bound_are_not_stored(ns: str, raw: redis.Redis, client: ClientKind) -> None:
    async with open_session_store("redis", client=client, url=SHARED_URL, timeout_s=1.0) as store:
        await store.put(ns + "big", b"x" * (MAX_VALUE_BYTES + 1), 60)
        await store.put(ns + "empty", b"", 60)
        assert store.counters.rejected == 2
    assert raw.exists(f"{KEY_PREFIX}{ns}big", f"{KEY_PREFIX}{ns}empty") == 0


async def test_a_huge_foreign_value_is_read_only_up_to_the_bound(
    ns: str, raw: redis.Redis, client: ClientKind
) -> None:
    raw.set(f"{KEY_PREFIX}{ns}huge", b"y" * (4 * 1024 * 1024), ex=60)
    async with open_session_store("redis", client=client, url=SHARED_URL, timeout_s=1.0) as store:
        assert await store.get(ns + "huge") is None
        assert store.counters.rejected == 1


async def test_a_key_of_the_wrong_type_is_an_error_not_an_outage(
    ns: str, raw: redis.Redis, client: ClientKind
) -> None:
    raw.rpush(f"{KEY_PREFIX}{ns}list", b"x")
    raw.expire(f"{KEY_PREFIX}{ns}list", 60)
    async with open_session_store("redis", client=client, url=SHARED_URL, timeout_s=1.0) as store:
        await trio.sleep(0.05)  # let the start-up probe finish
        assert await store.get(ns + "list") is None
        assert store.counters.errors == 1
        await store.put(ns + "ok", b"v", 60)  # not skipped: Redis itself is fine
        assert await store.get(ns + "ok") == b"v"


async def test_long_keys_are_hashed_under_the_prefix(ns: str, raw: redis.Redis, client: ClientKind) -> None:
    key = ns + "k" * 1000
    async with open_session_store("redis", client=client, url=SHARED_URL, timeout_s=1.0) as store:
        await store.put(key, b"v", 60)
        assert await store.get(key) == b"v"
    assert raw.get(KEY_PREFIX + storage_key(key)) == b"v"


async def test_100_concurrent_tasks_outside_the_loop(ns: str, client: ClientKind) -> None:
    """Tasks started before the store's loop existed (as hypercorn's are) reach it through the loop object."""
    seen: dict[int, bytes | None] = {}
    outside_loop: list[bool] = []
    send, receive = trio.open_memory_channel[SessionStore](1)

    async def one(store: SessionStore, n: int) -> None:
        outside_loop.append(trio_asyncio.current_loop.get() is None)
        value = f"binding-{n}-".encode() * (n + 1)
        await store.put(f"{ns}c{n}", value, 60)
        seen[n] = await store.get(f"{ns}c{n}")

    async def spawner() -> None:
        store = await receive.receive()
        async with trio.open_nursery() as tasks:
            for n in range(100):
                tasks.start_soon(one, store, n)

    async with trio.open_nursery() as outside:
        outside.start_soon(spawner)
        # A generous timeout: this checks correctness under concurrency, not latency on a shared CI box.
        async with open_session_store("redis", client=client, url=SHARED_URL, timeout_s=5.0) as store:
            await send.send(store)
            with trio.fail_after(30):
                while len(seen) < 100:
                    await trio.sleep(0.01)
    assert all(outside_loop) and len(outside_loop) == 100
    assert seen == {n: f"binding-{n}-".encode() * (n + 1) for n in range(100)}
    assert store.counters.errors == store.counters.timeouts == 0


async def test_100_concurrent_tasks_inside_the_loop(ns: str, client: ClientKind) -> None:
    async with open_session_store("redis", client=client, url=SHARED_URL, timeout_s=5.0) as store:

        async def one(n: int) -> None:
            await store.put(f"{ns}i{n}", str(n).encode(), 60)
            assert await store.get(f"{ns}i{n}") == str(n).encode()

        with trio.fail_after(30):
            async with trio.open_nursery() as tasks:
                for n in range(100):
                    tasks.start_soon(one, n)
        assert store.counters.hits == 100


async def test_an_error_in_the_body_arrives_as_itself(client: ClientKind) -> None:
    with pytest.raises(KeyError):
        async with open_session_store("redis", client=client, url=SHARED_URL, timeout_s=1.0):
            raise KeyError("boom")


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "redis://127.0.0.1:notaport"])
async def test_an_unusable_url_is_refused_at_start(url: str, client: ClientKind) -> None:
    with pytest.raises(ValueError, match=r"session_cache\.url"):
        async with open_session_store("redis", client=client, url=url, timeout_s=1.0):
            pass


# --- failing open ---------------------------------------------------------------------------------------


async def test_nothing_listening_fails_open_at_once(client: ClientKind) -> None:
    url = f"redis://127.0.0.1:{free_port()}"
    async with open_session_store("redis", client=client, url=url, timeout_s=0.25) as store:
        for _ in range(3):
            value, took = await timed(store.get("k"))
            assert value is None and took < 0.25 + SLACK_S
            _, took = await timed(store.put("k", b"v", 60))
            assert took < 0.25 + SLACK_S
        assert store.counters.errors >= 6
        assert store.counters.hits == store.counters.misses == 0


async def silent(stream: trio.SocketStream) -> None:
    """A "Redis" that accepts, reads whatever comes and never answers."""
    async for _ in stream:
        pass


async def test_a_server_that_never_answers_fails_open_within_the_timeout(client: ClientKind) -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        async with open_session_store(
            "redis", client=client, url=f"redis://127.0.0.1:{port}", timeout_s=0.2
        ) as store:
            value, took = await timed(store.get("k"))
            assert value is None
            assert 0.15 <= took < 0.2 + SLACK_S
            assert store.counters.timeouts == 1
            _, took = await timed(store.put("k", b"v", 60))  # within the skip window: no wait at all
            assert took < 0.05
            await trio.sleep(1.05)  # past the skip window: tries again, times out again
            _, took = await timed(store.put("k", b"v", 60))
            assert 0.15 <= took < 0.2 + SLACK_S
            assert store.counters.timeouts == 2
        nursery.cancel_scope.cancel()


async def test_closing_the_store_releases_callers_still_waiting_on_redis(client: ClientKind) -> None:
    """A call parked on a silent Redis when the store closes returns None then, not at its timeout."""
    results: list[tuple[bytes | None, float]] = []
    send, receive = trio.open_memory_channel[SessionStore](1)

    async def caller() -> None:
        store = await receive.receive()
        results.append(await timed(store.get("k")))

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(caller)
        with trio.fail_after(3):
            async with open_session_store(
                "redis", client=client, url=f"redis://127.0.0.1:{port}", timeout_s=30.0
            ) as store:
                await send.send(store)
                await trio.sleep(0.2)
            while not results:
                await trio.sleep(0.01)
            value, took = await timed(store.get("k"))  # after close: answered at once
        nursery.cancel_scope.cancel()
    assert results[0][0] is None and results[0][1] < 0.2 + SLACK_S
    assert value is None and took < 0.05


async def test_recovers_when_redis_comes_back_and_logs_once(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture, client: ClientKind
) -> None:
    caplog.set_level(logging.INFO, logger="plano_trio.session")
    url = f"redis://127.0.0.1:{private_redis.port}"
    async with open_session_store("redis", client=client, url=url, timeout_s=0.5) as store:
        await store.put("a", b"1", 60)
        assert await store.get("a") == b"1"
        with trio.fail_after(5):  # the start-up PING runs in the background: let it answer before the outage
            while not any(r.getMessage() == "session cache connected" for r in caplog.records):
                await trio.sleep(0.01)
        private_redis.stop()
        for _ in range(50):  # a burst of requests while Redis is down
            assert await store.get("a") is None
        await trio.sleep(1.1)
        assert await store.get("a") is None  # a real attempt again after the skip window, still down
        private_redis.start()
        await trio.sleep(1.1)
        assert await store.get("a") is None  # a fresh server: reachable, but empty
        await store.put("a", b"2", 60)
        assert await store.get("a") == b"2"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert any(r.getMessage() == "session cache reachable again" for r in caplog.records)
    assert store.counters.errors >= 51


async def test_rediss_with_a_private_ca(tmp_path: Path, client: ClientKind) -> None:
    ca = trustme.CA()
    server = PrivateRedis(tmp_path, tls=ca)
    server.start()
    try:
        url = f"rediss://localhost:{server.port}/0?ssl_ca_certs={tmp_path / 'ca.pem'}"
        async with open_session_store("redis", client=client, url=url, timeout_s=2.0) as store:
            await store.put("t", b"over tls", 60)
            assert await store.get("t") == b"over tls"
        # Without the CA the certificate is not trusted: the store fails open rather than trusting it.
        async with open_session_store(
            "redis", client=client, url=f"rediss://localhost:{server.port}", timeout_s=2.0
        ) as store:
            assert await store.get("t") is None
            assert store.counters.errors >= 1 and store.counters.hits == 0
    finally:
        server.stop()


# --- both clients against hostile or strict servers --------------------------------------------------


async def test_auth_and_select_from_the_url(tmp_path: Path, client: ClientKind) -> None:
    acl = ("--user", "alice", "on", ">alice-pw", "~*", "+@all")
    server = PrivateRedis(tmp_path, password="s3cr:et", extra=acl)
    server.start()
    try:
        for url, db in [
            (f"redis://:s3cr%3Aet@127.0.0.1:{server.port}/2", 2),  # password alone, percent-encoded
            (f"redis://alice:alice-pw@127.0.0.1:{server.port}?db=3", 3),  # an ACL user
        ]:
            async with open_session_store("redis", client=client, url=url, timeout_s=2.0) as store:
                await store.put("a", f"db{db}".encode(), 60)
                assert await store.get("a") == f"db{db}".encode()
                assert store.counters.errors == 0
            assert server.client(db).get(KEY_PREFIX + "a") == f"db{db}".encode()
        assert server.client(0).get(KEY_PREFIX + "a") is None
    finally:
        server.stop()


async def test_a_wrong_password_fails_open_and_says_why(
    tmp_path: Path, client: ClientKind, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plano_trio.session")
    server = PrivateRedis(tmp_path, password="right")
    server.start()
    try:
        for url in (f"redis://:wrong@127.0.0.1:{server.port}", f"redis://127.0.0.1:{server.port}"):
            async with open_session_store("redis", client=client, url=url, timeout_s=2.0) as store:
                await trio.sleep(0.1)  # the start-up probe fails and opens the skip window
                assert await store.get("a") is None
                assert store.counters.errors >= 1 and store.counters.misses == 0
    finally:
        server.stop()
    reasons = [
        getattr(r, "fields", {}).get("reason", "") for r in caplog.records if r.levelno == logging.WARNING
    ]
    assert len(reasons) == 2
    assert "WRONGPASS" in reasons[0] or "invalid username-password" in reasons[0]
    assert "NOAUTH" in reasons[1] or "Authentication required" in reasons[1]


Answer = Callable[[list[bytes]], Awaitable[bytes | None]]


def scripted(answer: Answer) -> Callable[[trio.SocketStream], Awaitable[None]]:
    """A fake Redis: reads commands (RESP arrays of bulk strings) and sends `answer(args)` for each;
    None closes the connection."""

    async def handler(stream: trio.SocketStream) -> None:
        parser = RespParser()
        with contextlib.suppress(trio.BrokenResourceError):  # the client hung up on garbage: fine
            async for data in stream:
                parser.feed(data)
                while not isinstance(command := parser.next_reply(), NeedData):
                    assert isinstance(command, list)
                    reply = await answer([arg for arg in command if isinstance(arg, bytes)])
                    if reply is None:
                        return
                    await stream.send_all(reply)

    return handler


async def serve(nursery: trio.Nursery, answer: Answer) -> str:
    """Start `scripted(answer)` on a free port; its URL."""
    listeners = await nursery.start(partial(trio.serve_tcp, scripted(answer), 0, host="127.0.0.1"))
    return f"redis://127.0.0.1:{listeners[0].socket.getsockname()[1]}"


@pytest.mark.parametrize(
    "garbage",
    [
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
        b"$99999999999\r\n",
        b":12x\r\n",
        b"*1\r\n" * 100,
        b"+" + b"x" * 100_000,
        b"!",
    ],
    ids=["http", "huge-bulk", "bad-integer", "deep", "endless-line", "bad-type"],
)
async def test_a_server_speaking_garbage_fails_open(client: ClientKind, garbage: bytes) -> None:
    async def answer(args: list[bytes]) -> bytes:
        return garbage

    async with trio.open_nursery() as nursery:
        url = await serve(nursery, answer)
        async with open_session_store("redis", client=client, url=url, timeout_s=0.5) as store:
            value, took = await timed(store.get("k"))
            # Garbage that keeps the client reading (a huge bulk length) is ended by the 0.5 s timeout;
            # through redis-py, the cancellation then crosses trio-asyncio, which took 1.04 s in all
            # once on a loaded CI machine: bounded, which is the point, so the slack here is doubled.
            assert value is None and took < 0.5 + 2 * SLACK_S
            assert store.counters.errors + store.counters.timeouts >= 1 and store.counters.hits == 0
        nursery.cancel_scope.cancel()


async def test_a_reply_that_arrives_after_the_timeout_is_never_read_as_a_later_ones(
    client: ClientKind,
) -> None:
    """The first GETRANGE is answered after the client gave up; the connection that waited for it must not
    carry a later command (it would read the late reply as that command's)."""
    late = [True]

    async def answer(args: list[bytes]) -> bytes:
        if args[:1] == [b"GETRANGE"]:
            if late[0]:
                late[0] = False
                await trio.sleep(0.4)
                return b"$5\r\nstale\r\n"
            return b"$5\r\nfresh\r\n"
        return b"+PONG\r\n" if args[:1] == [b"PING"] else b"+OK\r\n"

    async with trio.open_nursery() as nursery:
        url = await serve(nursery, answer)
        async with open_session_store("redis", client=client, url=url, timeout_s=0.2) as store:
            await trio.sleep(0.1)  # the start-up PING
            assert await store.get("k") is None
            assert store.counters.timeouts == 1
            await trio.sleep(1.1)  # past the skip window, and the late reply has been sent
            assert await store.get("k") == b"fresh"
            assert await store.get("k") == b"fresh"
        nursery.cancel_scope.cancel()


async def test_rediss_without_verification_when_the_url_says_so(tmp_path: Path, client: ClientKind) -> None:
    server = PrivateRedis(tmp_path, tls=trustme.CA())
    server.start()
    try:
        url = f"rediss://localhost:{server.port}?ssl_cert_reqs=none"
        async with open_session_store("redis", client=client, url=url, timeout_s=2.0) as store:
            await store.put("t", b"unverified", 60)
            assert await store.get("t") == b"unverified"
    finally:
        server.stop()


# --- the native client ----------------------------------------------------------------------------------


async def test_native_does_not_reuse_an_idle_connection_redis_closed(private_redis: PrivateRedis) -> None:
    url = f"redis://127.0.0.1:{private_redis.port}"
    async with open_session_store("redis", url=url, timeout_s=1.0) as store:
        await trio.sleep(0.1)  # the start-up PING, which the kill must not catch in flight
        await store.put("a", b"1", 60)
        killed = private_redis.client().client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1
        await trio.sleep(STALE_CHECK_AFTER_S + 0.05)  # idle long enough to be checked before reuse
        assert await store.get("a") == b"1"  # on a new connection, not a failed call
        assert store.counters.errors == store.counters.timeouts == 0


async def test_native_pool_bounds_open_and_idle_connections(private_redis: PrivateRedis) -> None:
    endpoint = parse_redis_url(f"redis://127.0.0.1:{private_redis.port}")
    pool = NativeRedis(endpoint, max_connections=3, max_idle=2)
    most = [0]

    async def one() -> None:
        await pool.ping()
        clients = private_redis.client().client_list()
        most[0] = max(most[0], sum(1 for c in clients if c.get("name") == CLIENT_NAME))

    try:
        async with trio.open_nursery() as nursery:
            for _ in range(30):
                nursery.start_soon(one)
        assert 1 <= most[0] <= 3
        assert pool.idle <= 2
    finally:
        await pool.aclose()
    assert pool.idle == 0
    await trio.sleep(0.05)
    assert not [c for c in private_redis.client().client_list() if c.get("name") == CLIENT_NAME]


@pytest.mark.parametrize(
    ("knob", "expected"),
    [
        ("", "native"),
        ("  session_cache_client: native\n", "native"),
        ("  session_cache_client: redis-py\n", "redis-py"),
    ],
)
def test_the_client_knob(knob: str, expected: str) -> None:
    text = (
        "version: v0.4.0\nlisteners: [{name: llm, type: model, port: 12000}]\n"
        "model_providers: [{model: openai/gpt-4o, access_key: k, default: true}]\n"
        "routing:\n  session_cache: {type: redis, url: 'redis://127.0.0.1:6379'}\n"
        "plano_trio:\n  router_timeout_s: 1\n" + knob
    )
    assert load_config_text(text).routing.session_cache.client == expected


def test_an_unknown_client_is_a_config_error() -> None:
    text = (
        "version: v0.4.0\nlisteners: [{name: llm, type: model, port: 12000}]\n"
        "model_providers: [{model: openai/gpt-4o, access_key: k, default: true}]\n"
        "plano_trio: {session_cache_client: hiredis}\n"
    )
    with pytest.raises(ConfigError, match="session_cache_client"):
        load_config_text(text)


async def test_an_unknown_client_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="client"):
        async with open_session_store("redis", url=SHARED_URL, client="hiredis"):  # type: ignore[arg-type]
            pass


# --- pure parts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        ("redis://:s3cret@cache.internal:6380/2", "redis://cache.internal:6380/2"),
        ("rediss://user:s3cret@cache.internal/0?ssl_cert_reqs=none", "rediss://cache.internal:6379/0"),
        ("redis://h:99999", "<unparsable url>"),
    ],
)
def test_describe_url_never_shows_credentials(url: str, shown: str) -> None:
    assert describe_url(url) == shown


class _ScriptedCommands:
    """Redis commands that fail with an error reply (no skip window) until `up` is set."""

    def __init__(self) -> None:
        self.up = False

    async def getrange(self, key: bytes, end: int) -> object:
        if not self.up:
            raise ReplyError("WRONGTYPE scripted")
        return b"v"

    async def set_ex(self, key: bytes, value: bytes, ttl_s: int) -> None:
        raise AssertionError("not used")

    async def ping(self) -> None:
        raise AssertionError("not used")


async def test_an_outage_logs_its_start_then_once_per_interval_then_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="plano_trio.session")
    now = [0.0]
    commands = _ScriptedCommands()
    store = RedisSessionStore(
        commands, client="redis_native", timeout_s=1.0, target="redis://h:6379", clock=lambda: now[0]
    )
    for step in range(10):
        now[0] = step * LOG_INTERVAL_S / 4
        assert await store.get("k") is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3  # steps 0, 4 and 8
    assert getattr(warnings[1], "fields", {}) == {
        "target": "redis://h:6379",
        "op": "get",
        "reason": "ReplyError: WRONGTYPE scripted",
        "failures": 5,
        "not_logged": 3,
    }
    commands.up = True
    assert await store.get("k") == b"v"
    assert await store.get("k") == b"v"
    recoveries = [r for r in caplog.records if r.getMessage() == "session cache reachable again"]
    assert [getattr(r, "fields", {}) for r in recoveries] == [{"target": "redis://h:6379", "failures": 10}]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379", RedisEndpoint("127.0.0.1")),
        ("redis://cache", RedisEndpoint("cache")),
        ("redis://", RedisEndpoint("localhost")),
        ("REDIS://[::1]:7000/5", RedisEndpoint("::1", 7000, 5)),
        ("redis://h/?db=4", RedisEndpoint("h", db=4)),
        ("redis://:p%40ss@h/1", RedisEndpoint("h", db=1, password="p@ss")),
        ("redis://u:p@h", RedisEndpoint("h", username="u", password="p")),
        ("rediss://h", RedisEndpoint("h", 6379, tls=True)),
        (
            "rediss://h:6380?ssl_cert_reqs=none",
            RedisEndpoint("h", 6380, tls=True, cert_reqs=ssl.CERT_NONE, check_hostname=False),
        ),
        (
            "rediss://h?ssl_cert_reqs=Optional&ssl_check_hostname=false&ssl_ca_certs=/ca.pem"
            "&ssl_ca_path=/cas&ssl_certfile=/c.pem&ssl_keyfile=/k.pem",
            RedisEndpoint(
                "h",
                tls=True,
                cert_reqs=ssl.CERT_OPTIONAL,
                check_hostname=False,
                ca_certs="/ca.pem",
                ca_path="/cas",
                certfile="/c.pem",
                keyfile="/k.pem",
            ),
        ),
    ],
)
def test_parse_redis_url(url: str, expected: RedisEndpoint) -> None:
    assert parse_redis_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h", "scheme"),
        ("unix:///tmp/redis.sock", "scheme"),
        ("redis://h:notaport", "port"),
        ("redis://h:99999", "port"),
        ("redis://h/x", "database"),
        ("redis://h/-1", "database"),
        ("redis://h/1?db=%EF%BC%91", "database"),  # a fullwidth digit
        ("redis://h?socket_timeout=5", "socket_timeout are not supported"),
        ("redis://h?ssl_cert_reqs=none", "rediss"),
        ("rediss://h?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
        ("rediss://h?ssl_check_hostname=perhaps", "ssl_check_hostname"),
        ("rediss://h?ssl_cert_reqs=none&ssl_check_hostname=true", "ssl_check_hostname"),
        ("redis://h?db=1&db=2", "twice"),
    ],
)
def test_parse_redis_url_refuses(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_redis_url(url)


def test_the_password_is_not_in_the_endpoints_repr() -> None:
    assert "s3cret" not in repr(parse_redis_url("redis://u:s3cret@h"))


@pytest.mark.parametrize(
    ("url", "commands"),
    [
        ("redis://h", [["CLIENT", "SETNAME", CLIENT_NAME]]),
        ("redis://:pw@h/2", [["AUTH", "pw"], ["SELECT", "2"], ["CLIENT", "SETNAME", CLIENT_NAME]]),
        ("redis://u:pw@h", [["AUTH", "u", "pw"], ["CLIENT", "SETNAME", CLIENT_NAME]]),
        ("redis://u@h", [["AUTH", "u", ""], ["CLIENT", "SETNAME", CLIENT_NAME]]),
    ],
)
def test_the_handshake(url: str, commands: list[list[str]]) -> None:
    sent = [payload for _, payload in parse_redis_url(url).handshake()]
    assert sent == [encode_command(*args) for args in commands]


def test_a_missing_ca_file_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="TLS files"):
        make_ssl_context(parse_redis_url(f"rediss://h?ssl_ca_certs={tmp_path / 'nope.pem'}"))
