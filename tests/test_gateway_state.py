"""Responses API conversation state end to end: OpenAI SDK → gateway (+ store) → Anthropic-format mock.

Runs on both backends; the postgres cases use the real server (a fresh schema per test).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import openai
import pytest
import trio

from tests.mock_provider import MockProvider
from tests.state_support import Relay, admin, dsn, fresh_schema, pg_port
from tests.support import Gateway, in_thread, provider_config, running_gateway

TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]


def state_config(mock_url: str, state: str) -> str:
    extra = f"""  - model: anthropic/claude-sonnet-4-6
    access_key: k
    base_url: {mock_url}
"""
    return provider_config(mock_url, extra_providers=extra, tail=f"state_storage:\n{state}")


MEMORY = "  type: memory\n"


def postgres(schema: str, port: int | None = None, **knobs: Any) -> str:
    lines = [
        "  type: postgres",
        f'  connection_string: "{dsn(schema, port=port)}"',
        "  consistency_window_s: 1.0",
        "  startup_timeout_s: 5",
    ]
    lines += [f"  {key}: {value}" for key, value in knobs.items()]
    return "\n".join(lines) + "\n"


@asynccontextmanager
async def backend(kind: str) -> AsyncIterator[str]:
    if kind == "memory":
        yield MEMORY
        return
    async with fresh_schema() as schema:
        yield postgres(schema)


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key="k", max_retries=0, timeout=10)


def sent_messages(mock: MockProvider) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = mock.requests[-1].json["messages"]
    return messages


def texts(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            out.append((message["role"], content))
        else:
            out.extend((message["role"], block.get("text", block["type"])) for block in content)
    return out


@pytest.mark.parametrize("kind", ["memory", "postgres"])
async def test_three_turns_streaming_and_not(mock: MockProvider, kind: str) -> None:
    async with backend(kind) as state, running_gateway(state_config(mock.url, state)) as gw:
        client = oai(gw)
        first = await in_thread(
            lambda: client.responses.create(
                model="claude-sonnet-4-6", instructions="A", input="My name is Alice"
            )
        )
        second = await in_thread(
            lambda: client.responses.create(
                model="claude-sonnet-4-6",
                instructions="B",
                input="What is my name?",
                previous_response_id=first.id,
            )
        )
        assert mock.requests[-1].json["system"] == "B"  # each turn's instructions apply to it alone
        assert texts(sent_messages(mock)) == [
            ("user", "My name is Alice"),
            ("assistant", "Hello from mock"),
            ("user", "What is my name?"),
        ]

        def third_turn() -> Any:
            with client.responses.stream(
                model="claude-sonnet-4-6", input="And again?", previous_response_id=second.id
            ) as stream:
                for _ in stream:
                    pass
                return stream.get_final_response()

        third = await in_thread(third_turn)
        assert "system" not in mock.requests[-1].json
        assert [role for role, _ in texts(sent_messages(mock))] == ["user", "assistant"] * 2 + ["user"]
        fourth = await in_thread(
            lambda: client.responses.create(
                model="claude-sonnet-4-6", input="last", previous_response_id=third.id
            )
        )
    assert len({first.id, second.id, third.id, fourth.id}) == 4
    assert len(sent_messages(mock)) == 7  # the streamed turn was stored too
    assert second.previous_response_id == first.id


@pytest.mark.parametrize("kind", ["memory", "postgres"])
async def test_tool_calls_replay_exactly(mock: MockProvider, kind: str) -> None:
    async with backend(kind) as state, running_gateway(state_config(mock.url, state)) as gw:
        client = oai(gw)
        first = await in_thread(
            lambda: client.responses.create(model="claude-sonnet-4-6", input="call tool", tools=TOOLS)  # type: ignore[arg-type]
        )
        call = next(item for item in first.output if item.type == "function_call")
        await in_thread(
            lambda: client.responses.create(
                model="claude-sonnet-4-6",
                previous_response_id=first.id,
                tools=TOOLS,  # type: ignore[arg-type]
                input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'}],
            )
        )
    messages = sent_messages(mock)
    tool_use = messages[1]["content"][0]
    tool_result = messages[2]["content"][0]
    assert tool_use == {
        "type": "tool_use",
        "id": call.call_id,
        "name": "get_weather",
        "input": {"location": "Seattle"},
    }
    assert tool_result["type"] == "tool_result" and tool_result["tool_use_id"] == call.call_id
    assert tool_result["content"] in ('{"temp": 21}', [{"type": "text", "text": '{"temp": 21}'}])


@pytest.mark.parametrize("kind", ["memory", "postgres"])
async def test_unknown_id_is_409_and_nothing_sent(mock: MockProvider, kind: str) -> None:
    async with backend(kind) as state, running_gateway(state_config(mock.url, state)) as gw:
        with pytest.raises(openai.ConflictError) as caught:
            await in_thread(
                lambda: oai(gw).responses.create(
                    model="claude-sonnet-4-6", input="x", previous_response_id="resp_nope"
                )
            )
    assert caught.value.status_code == 409
    assert caught.value.param == "previous_response_id"
    assert "resp_nope" in caught.value.message
    assert mock.requests == []


async def test_store_false_is_honoured(mock: MockProvider) -> None:
    async with running_gateway(state_config(mock.url, MEMORY)) as gw:
        client = oai(gw)
        first = await in_thread(
            lambda: client.responses.create(model="claude-sonnet-4-6", input="x", store=False)
        )
        with pytest.raises(openai.ConflictError):
            await in_thread(
                lambda: client.responses.create(
                    model="claude-sonnet-4-6", input="y", previous_response_id=first.id
                )
            )


@pytest.mark.parametrize("kind", ["memory", "postgres"])
async def test_retrieval_api(mock: MockProvider, kind: str) -> None:
    async with backend(kind) as state, running_gateway(state_config(mock.url, state)) as gw:
        client = oai(gw)
        created = await in_thread(lambda: client.responses.create(model="claude-sonnet-4-6", input="keep me"))
        fetched = await in_thread(lambda: client.responses.retrieve(created.id))
        items = await in_thread(lambda: client.responses.input_items.list(created.id))
        stats = (await httpx.AsyncClient().get(f"{gw.base}/debug/state")).json()
        await in_thread(lambda: client.responses.delete(created.id))
        with pytest.raises(openai.NotFoundError):
            await in_thread(lambda: client.responses.retrieve(created.id))
    assert fetched.id == created.id and fetched.output_text == created.output_text
    assert [item.type for item in items.data] == ["message"]
    assert stats["backend"] == kind and stats["refused"] == 0


async def test_cut_off_stream_stores_nothing(mock: MockProvider) -> None:
    def run() -> str:
        ids = []
        with pytest.raises(openai.APIError):
            stream = oai(gw).responses.create(
                model="claude-sonnet-4-6", input="x", stream=True, extra_headers={"x-mock-drop-after": "2"}
            )
            for event in stream:
                if event.type == "response.created":
                    ids.append(event.response.id)
        return ids[0]

    async with running_gateway(state_config(mock.url, MEMORY)) as gw:
        response_id = await in_thread(run)
        with pytest.raises(openai.NotFoundError):
            await in_thread(lambda: oai(gw).responses.retrieve(response_id))


async def test_native_provider_keeps_passing_the_id_through(mock: MockProvider) -> None:
    async with running_gateway(state_config(mock.url, MEMORY)) as gw:
        await in_thread(
            lambda: oai(gw).responses.create(
                model="openai/gpt-4o-mini", input="x", previous_response_id="resp_remote"
            )
        )
    assert mock.requests[-1].path == "/v1/responses"
    assert mock.requests[-1].json["previous_response_id"] == "resp_remote"


async def test_postgres_restart_between_turns_and_two_instances(mock: MockProvider) -> None:
    async with fresh_schema() as schema:
        config = state_config(mock.url, postgres(schema))
        async with running_gateway(config) as gw:
            first = await in_thread(
                lambda: oai(gw).responses.create(model="claude-sonnet-4-6", input="turn one")
            )
        async with running_gateway(config) as gw:  # a restarted gateway continues the conversation
            second = await in_thread(
                lambda: oai(gw).responses.create(
                    model="claude-sonnet-4-6", input="turn two", previous_response_id=first.id
                )
            )
        async with running_gateway(config) as a, running_gateway(config) as b:
            third = await in_thread(
                lambda: oai(a).responses.create(
                    model="claude-sonnet-4-6", input="turn three", previous_response_id=second.id
                )
            )
            # immediately on the other instance: found within the consistency window
            await in_thread(
                lambda: oai(b).responses.create(
                    model="claude-sonnet-4-6", input="turn four", previous_response_id=third.id
                )
            )
    assert [t for _, t in texts(sent_messages(mock)) if t != "Hello from mock"] == [
        "turn one",
        "turn two",
        "turn three",
        "turn four",
    ]


async def test_queue_full_is_503_with_retry_after_and_nothing_acknowledged_is_lost(
    mock: MockProvider,
) -> None:
    async with fresh_schema() as schema, trio.open_nursery() as nursery:
        relay = Relay(pg_port())
        port = await nursery.start(relay.run)
        config = state_config(
            mock.url, postgres(schema, port=port, queue_size=2, max_batch=1, op_timeout_s=30)
        )
        async with running_gateway(config) as gw, httpx.AsyncClient(timeout=10) as client:
            relay.pause()  # Postgres stalls: the writer cannot flush
            body = {"model": "claude-sonnet-4-6", "input": "x"}
            answers = [await client.post(f"{gw.v1}/responses", json=body) for _ in range(4)]
            statuses = [answer.status_code for answer in answers]
            assert statuses[:2] == [200, 200]  # streaming went on while Postgres was stalled
            refused = [answer for answer in answers if answer.status_code == 503]
            assert refused and refused[0].headers["retry-after"]
            assert refused[0].json()["error"]["code"] == "state_store_full"
            acknowledged = [answer.json()["id"] for answer in answers if answer.status_code == 200]
            relay.resume()
            with trio.fail_after(10):
                while True:
                    rows = await admin("SELECT response_id FROM plano_trio_turns", schema=schema)
                    if {row[0] for row in rows} >= set(acknowledged):
                        break
                    await trio.sleep(0.05)
        nursery.cancel_scope.cancel()


async def test_unreachable_postgres_at_startup_names_host_and_database() -> None:
    from plano_trio.config import load_config_text
    from plano_trio.server.serve import serve
    from plano_trio.state import StateStartupError

    config = load_config_text(
        state_config(
            "http://127.0.0.1:9",
            '  type: postgres\n  connection_string: "postgresql://u:sekret@127.0.0.1:1/appdb"\n'
            "  startup_timeout_s: 0.5\n",
        ),
        env={},
    )
    with pytest.raises((StateStartupError, BaseExceptionGroup)) as caught:
        await serve(config)
    text = str(caught.value) + "".join(str(e) for e in getattr(caught.value, "exceptions", ()))
    assert "127.0.0.1" in text and "appdb" in text and "sekret" not in text


async def test_sigterm_drains_queued_turns_to_postgres(mock: MockProvider, tmp_path: Any) -> None:
    """Turns queued while Postgres stalls are flushed on SIGTERM once it answers again; the log says so."""
    import signal

    from tests.test_cli import Server

    async with fresh_schema() as schema, trio.open_nursery() as nursery:
        relay = Relay(pg_port())
        port = await nursery.start(relay.run)
        config = tmp_path / "config.yaml"
        config.write_text(state_config(mock.url, postgres(schema, port=port, drain_timeout_s=10)))
        server = await in_thread(lambda: Server([str(config), "--log-format", "json"], tmp_path))
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                relay.pause()
                answers = [
                    await client.post(
                        f"{server.base}/v1/responses", json={"model": "claude-sonnet-4-6", "input": "x"}
                    )
                    for _ in range(3)
                ]
            ids = {answer.json()["id"] for answer in answers}
            server.proc.send_signal(signal.SIGTERM)
            # Resume only once the shutdown has begun (and, a moment later, the drain): resuming on a
            # fixed 0.3 s let a loaded machine flush the turns before the drain started (flushed 0).
            with trio.fail_after(10):
                while not any("received SIGTERM" in line for line in server.lines):
                    await trio.sleep(0.05)
            await trio.sleep(1.0)
            relay.resume()
            code = await in_thread(lambda: server.proc.wait(timeout=20))
        finally:
            if server.proc.poll() is None:
                server.proc.kill()
        rows = await admin("SELECT response_id FROM plano_trio_turns", schema=schema)
        nursery.cancel_scope.cancel()
    assert code == 0
    assert ids <= {row[0] for row in rows}
    drained = [json.loads(line) for line in server.lines if '"state store drained"' in line]
    assert drained and drained[0]["level"] == "info"
    assert drained[0]["flushed"] >= 3 and drained[0]["lost"] == 0
