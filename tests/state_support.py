"""Shared helpers for the state-store tests (no tests here).

Postgres is real: `PLANO_TRIO_TEST_PG` (default: the local cluster, user
postgres, database test).  Every test gets its own schema via
`options=-csearch_path=<schema>` in the connection string, dropped afterwards,
so tests never see each other's tables.  `Relay` is a TCP forwarder written
with trio that sits between a store and Postgres and can pause (stop
forwarding, connections stay open) or cut (close every connection and refuse
new ones) -- the fault injection of the tests.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import psycopg
import trio
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from plano_trio.state import StateSettings, StateStore, Turn, open_state_store

PG_BASE = os.environ.get("PLANO_TRIO_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=test")


def dsn(schema: str, *, port: int | None = None, **extra: Any) -> str:
    """A connection string for `schema`, optionally through a relay on `port`."""
    params: dict[str, Any] = dict(conninfo_to_dict(PG_BASE))
    params["options"] = f"-csearch_path={schema}"
    if port is not None:
        params["host"] = "127.0.0.1"
        params["port"] = port
    params.update(extra)
    return make_conninfo("", **params)


def pg_port() -> int:
    return int(conninfo_to_dict(PG_BASE).get("port") or 5432)


def _admin(query: str, params: tuple[Any, ...] | None = None, *, schema: str | None = None) -> list[Any]:
    conninfo = dsn(schema) if schema else PG_BASE
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cur = conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []


async def admin(query: str, *params: Any, schema: str | None = None) -> list[Any]:
    """Run one statement directly against Postgres (not through the store or a relay)."""
    return await trio.to_thread.run_sync(partial(_admin, query, params or None, schema=schema))


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    schema = f"st_{uuid.uuid4().hex[:12]}"
    await admin(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with trio.CancelScope(shield=True):
            await admin(f"DROP SCHEMA {schema} CASCADE")


def pg_settings(conninfo: str, **overrides: Any) -> StateSettings:
    values: dict[str, Any] = {
        "type": "postgres",
        "connection_string": conninfo,
        "consistency_window_s": 0.1,
        "startup_timeout_s": 5.0,
        "drain_timeout_s": 5.0,
        "op_timeout_s": 5.0,
    }
    values.update(overrides)
    return StateSettings.from_mapping(values)


BACKENDS = ["memory", "postgres"]


@asynccontextmanager
async def open_backend(kind: str, **overrides: Any) -> AsyncIterator[StateStore]:
    """A running store of either backend (postgres: in a fresh schema)."""
    if kind == "memory":
        async with open_state_store(StateSettings(type="memory", **overrides)) as store:
            yield store
        return
    async with fresh_schema() as schema, open_state_store(pg_settings(dsn(schema), **overrides)) as store:
        yield store


async def wait_until(
    predicate: Callable[[], bool], timeout_s: float = 5.0, *, what: str = "condition"
) -> float:
    """Poll `predicate` every 2 ms; return the time it took; fail after `timeout_s`."""
    started = trio.current_time()
    with trio.move_on_after(timeout_s):
        while not predicate():
            await trio.sleep(0.002)
        return trio.current_time() - started
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


# --- turns ---------------------------------------------------------------------------------------------


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "input_text", "text": text}]}


def assistant(text: str, n: int = 0) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_{n}",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def function_output(call_id: str, output: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def make_turn(
    response_id: str,
    previous: str | None,
    inputs: list[Any],
    outputs: list[Any],
    *,
    created_at: float | None = None,
    instructions: str | None = "Be brief.",
) -> Turn:
    response = {
        "id": response_id,
        "object": "response",
        "status": "completed",
        "model": "claude-sonnet-4-6",
        "instructions": instructions,
        "output": outputs,
        "usage": {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30},
    }
    return Turn(
        response_id=response_id,
        previous_response_id=previous,
        input_items=inputs,
        output_items=outputs,
        model="claude-sonnet-4-6",
        provider="anthropic/claude-sonnet-4-6",
        created_at=created_at if created_at is not None else time.time(),
        response=response,
    )


def tool_conversation(prefix: str = "resp") -> tuple[list[Turn], list[Any]]:
    """Three turns with a tool round trip; returns the turns and the full expected item list."""
    weather_call = function_call("call_1", "get_weather", '{"city": "Paris", "unit": "c"}')
    turns = [
        make_turn(f"{prefix}_a", None, [user('Weather in Paris? ünï "quoted" \\ tab\t')], [weather_call]),
        make_turn(
            f"{prefix}_b",
            f"{prefix}_a",
            [function_output("call_1", '{"temp": 21.5, "sky": "sunny"}')],
            [assistant("It is 21.5 °C and sunny.", 1)],
        ),
        make_turn(f"{prefix}_c", f"{prefix}_b", [user("And tomorrow?")], [assistant("Probably rain.", 2)]),
    ]
    expected: list[Any] = []
    for turn in turns:
        expected += turn.input_items + turn.output_items
    return turns, expected


def conversation(n: int, prefix: str, *, text_bytes: int = 200) -> list[Turn]:
    """A linear n-turn conversation with ~`text_bytes` of text per message."""
    turns: list[Turn] = []
    previous: str | None = None
    for i in range(n):
        rid = f"{prefix}_{i:04d}"
        body = (f"turn {i} " * (text_bytes // 7 + 1))[:text_bytes]
        turns.append(make_turn(rid, previous, [user(f"Q{i}: {body}")], [assistant(f"A{i}: {body}", i)]))
        previous = rid
    return turns


# --- fault injection -----------------------------------------------------------------------------------


class Relay:
    """127.0.0.1 TCP relay to Postgres that can pause or cut its connections."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._open = True
        self._resumed = trio.Event()
        self._cut = False
        self._scopes: set[trio.CancelScope] = set()
        self.accepted = 0

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    def pause(self) -> None:
        """Stop forwarding bytes (both ways); connections stay open, like a stalled network."""
        if self._open:
            self._open = False
            self._resumed = trio.Event()

    def resume(self) -> None:
        self._open = True
        self._resumed.set()

    def cut(self) -> None:
        """Close every connection and refuse new ones until `restore()`."""
        self._cut = True
        for scope in list(self._scopes):
            scope.cancel()

    def restore(self) -> None:
        self._cut = False

    async def _handle(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        if self._cut:
            await client.aclose()
            return
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                upstream = await trio.open_tcp_stream("127.0.0.1", self.target_port)
                async with client, upstream, trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, client, upstream, nursery.cancel_scope)
                    nursery.start_soon(self._pump, upstream, client, nursery.cancel_scope)
            except OSError:
                pass
            finally:
                self._scopes.discard(scope)
        await client.aclose()

    async def _pump(self, src: trio.SocketStream, dst: trio.SocketStream, done: trio.CancelScope) -> None:
        try:
            while data := await src.receive_some(65536):
                while not self._open:
                    await self._resumed.wait()
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        done.cancel()


# --- hypothesis: stored turns ---------------------------------------------------------------------------


def json_values(text: st.SearchStrategy[str], width: int) -> st.SearchStrategy[Any]:
    """Any JSON value whose strings come from `text`, containers up to `width` wide."""
    return st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text,
        lambda inner: st.lists(inner, max_size=width) | st.dictionaries(text, inner, max_size=width),
        max_leaves=12,
    )


@st.composite
def stored_turns(
    draw: st.DrawFn,
    text: st.SearchStrategy[str],
    response_id: str,
    previous_response_id: str | None,
    width: int = 3,
) -> Turn:
    """A turn as the gateway stores it: items and the response object of any JSON shape, the response
    carrying the turn's output items (stored once, restored on read) about half the time."""
    value = json_values(text, width)
    items = st.lists(st.dictionaries(text, value, max_size=width), max_size=3)
    outputs = draw(items)
    response: dict[str, Any] | None = draw(st.none() | st.dictionaries(text, value, max_size=3))
    if response is not None and draw(st.booleans()):
        response["output"] = outputs
    return Turn(
        response_id=response_id,
        previous_response_id=previous_response_id,
        input_items=draw(items),
        output_items=outputs,
        model=draw(text),
        provider=draw(text),
        created_at=draw(st.floats(0, 4e9)),
        response=response,
    )
