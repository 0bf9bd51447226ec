"""`GET/DELETE /v1/responses/{id}` for turns a native Responses provider stored: proxied to that provider."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import openai
import pytest
import trio

from plano_trio.config import load_config_text
from plano_trio.gateway.stored import NativeTurnWatcher, native_target
from plano_trio.providers.native_ids import MAX_ID_CHARS, NativeResponseIds
from plano_trio.providers.resolve import ModelResolver, Route
from tests.scripted_provider import ScriptedProvider, chunk, head, scripted_provider
from tests.support import in_thread, running_gateway

_ids = itertools.count(1)


class NativeStore:
    """A provider with OpenAI's Responses API that keeps its turns: POST creates (JSON or SSE), GET
    retrieves (`/input_items` too), DELETE deletes; every request line and key is recorded."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.turns: dict[str, dict[str, object]] = {}
        self.seen: list[tuple[str, str, str | None]] = []
        """(method, target, authorization) of every request."""

    async def script(self, stream: trio.SocketStream, request: bytes) -> None:
        head_bytes, _, body = request.partition(b"\r\n\r\n")
        lines = head_bytes.decode().split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        auth = next(
            (
                line.split(":", 1)[1].strip()
                for line in lines[1:]
                if line.lower().startswith("authorization:")
            ),
            None,
        )
        self.seen.append((method, target, auth))
        path = target.split("?", 1)[0]
        if method == "POST" and path == "/v1/responses":
            await self._create(stream, json.loads(body))
            return
        response_id = path.removeprefix("/v1/responses/").removesuffix("/input_items")
        turn = self.turns.get(response_id)
        if turn is None:
            error = {
                "error": {
                    "message": f"Response with id '{response_id}' not found.",
                    "type": "invalid_request_error",
                }
            }
            await self._json(stream, error, 404)
        elif method == "DELETE":
            del self.turns[response_id]
            await self._json(stream, {"id": response_id, "object": "response", "deleted": True})
        elif path.endswith("/input_items"):
            await self._json(
                stream,
                {
                    "object": "list",
                    "data": [{"type": "message", "role": "user", "content": "hi"}],
                    "has_more": False,
                },
            )
        else:
            await self._json(stream, turn)

    async def _create(self, stream: trio.SocketStream, request: dict[str, object]) -> None:
        response_id = f"resp_{self.name}{next(_ids)}"
        turn = {
            "id": response_id,
            "object": "response",
            "status": "completed",
            "model": request["model"],
            "output": [
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": f"from {self.name}", "annotations": []}],
                }
            ],
            "usage": {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10},
        }
        self.turns[response_id] = turn
        if not request.get("stream"):
            await self._json(stream, turn)
            return
        await stream.send_all(
            head(
                200,
                ("content-type", "text/event-stream"),
                ("transfer-encoding", "chunked"),
                ("connection", "close"),
            )
        )
        started = {**turn, "status": "in_progress", "output": [], "usage": None}
        events = [
            {"type": "response.created", "sequence_number": 0, "response": started},
            {"type": "response.completed", "sequence_number": 2, "response": turn},
        ]
        for event in events:
            await stream.send_all(chunk(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()))
        await stream.send_all(b"0\r\n\r\n")

    @staticmethod
    async def _json(stream: trio.SocketStream, value: object, status: int = 200) -> None:
        body = json.dumps(value).encode()
        reply = head(
            status,
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("connection", "close"),
        )
        await stream.send_all(reply + body)


@asynccontextmanager
async def native(name: str) -> AsyncIterator[tuple[NativeStore, ScriptedProvider]]:
    store = NativeStore(name)
    async with scripted_provider(store.script) as provider:
        yield store, provider


def _config(providers: str, tail: str = "") -> str:
    return f"""
version: v0.4.0
listeners:
  - {{name: llm, type: model, address: 127.0.0.1, port: 0}}
model_providers:
{providers}
{tail}
"""


async def test_each_turn_is_fetched_from_the_provider_that_stored_it() -> None:
    async with native("oai") as (oai, oai_http), native("xai") as (xai, xai_http):
        config = _config(
            f"  - {{model: openai/gpt-4o, access_key: oai-key, base_url: '{oai_http.url}/v1'}}\n"
            f"  - {{model: xai/grok-4, access_key: xai-key, base_url: '{xai_http.url}/v1'}}\n"
            "  - {model: plano_trio/echo}\n",
            "state_storage: {type: memory}\n",
        )
        async with running_gateway(config) as gateway:
            client = openai.OpenAI(base_url=gateway.v1, api_key="client-key", max_retries=0)

            def run() -> dict[str, object]:
                out: dict[str, object] = {}
                first = client.responses.create(model="openai/gpt-4o", input="hi")
                with client.responses.stream(model="xai/grok-4", input="hi") as events:
                    second = events.get_final_response()
                mine = client.responses.create(model="echo", input="stored here")
                out["ids"] = (first.id, second.id, mine.id)
                out["texts"] = tuple(
                    client.responses.retrieve(r.id).output_text for r in (first, second, mine)
                )
                out["items"] = client.responses.input_items.list(second.id, limit=2).data[0].role  # type: ignore[union-attr]
                client.responses.delete(first.id)
                try:
                    client.responses.retrieve(first.id)
                except openai.NotFoundError as error:
                    out["after_delete"] = error.status_code
                try:
                    client.responses.retrieve("resp_nobody_knows")
                except openai.NotFoundError as error:
                    out["unknown"] = error.message
                return out

            seen = await in_thread(run)
    first_id, second_id, mine_id = seen["ids"]  # type: ignore[misc]
    assert seen["texts"] == ("from oai", "from xai", "stored here")
    assert seen["items"] == "user"
    assert (
        "GET",
        f"/v1/responses/{first_id}",
        "Bearer oai-key",
    ) in oai.seen  # the server's key, not the client's
    assert ("GET", f"/v1/responses/{second_id}", "Bearer xai-key") in xai.seen
    assert (
        "GET",
        f"/v1/responses/{second_id}/input_items?limit=2",
        "Bearer xai-key",
    ) in xai.seen  # query kept
    assert ("DELETE", f"/v1/responses/{first_id}", "Bearer oai-key") in oai.seen
    assert not any(mine_id in target for _, target, _ in oai.seen + xai.seen)  # ours is answered locally
    assert seen["after_delete"] == 404
    assert "resp_nobody_knows" in str(seen["unknown"])  # two native upstreams: no guessing
    assert not any("nobody" in target for _, target, _ in oai.seen + xai.seen)


async def test_an_id_this_process_never_saw_goes_to_the_only_native_upstream() -> None:
    async with native("oai") as (oai, oai_http):
        oai.turns["resp_from_before_a_restart"] = {
            "id": "resp_from_before_a_restart",
            "object": "response",
            "output": [],
        }
        config = _config(
            f"  - {{model: openai/gpt-4o, passthrough_auth: true, base_url: '{oai_http.url}/v1'}}\n"
            f"  - {{model: openai/gpt-4o-mini, passthrough_auth: true, base_url: '{oai_http.url}/v1'}}\n"
            "  - {model: plano_trio/echo}\n"
        )
        async with running_gateway(config) as gateway, httpx.AsyncClient(base_url=gateway.v1) as http:
            keyless = await http.get("/responses/resp_from_before_a_restart")
            found = await http.get(
                "/responses/resp_from_before_a_restart", headers={"authorization": "Bearer mine"}
            )
            missing = await http.get("/responses/resp_gone", headers={"authorization": "Bearer mine"})
            odd = await http.get("/responses/resp_x%3Fa%23b", headers={"authorization": "Bearer mine"})
    assert keyless.status_code == 401  # passthrough_auth: the client's key, and there was none
    assert found.status_code == 200 and found.json()["id"] == "resp_from_before_a_restart"
    assert missing.status_code == 404 and "not found" in missing.json()["error"]["message"]  # the provider's
    assert odd.status_code == 404 and odd.json()["error"]["code"] == "not_found"  # no provider's id: ours
    assert oai.seen == [
        ("GET", "/v1/responses/resp_from_before_a_restart", "Bearer mine"),
        ("GET", "/v1/responses/resp_gone", "Bearer mine"),
    ]


def test_the_only_native_upstream_is_one_host_and_one_key() -> None:
    def sole(providers: str) -> str | None:
        config = load_config_text(_config(providers), env={})
        route = ModelResolver(config).sole_native_responses(config)
        return None if route is None else route.provider.name

    assert (
        sole("  - {model: openai/gpt-4o, access_key: k}\n  - {model: openai/*, access_key: k}\n")
        == "openai/gpt-4o"
    )
    assert (
        sole("  - {model: openai/gpt-4o, access_key: k}\n  - {model: openai/o3, access_key: other}\n") is None
    )
    assert sole("  - {model: openai/gpt-4o, access_key: k}\n  - {model: xai/grok, access_key: k}\n") is None
    assert (
        sole("  - {model: groq/llama, access_key: k}\n  - {model: anthropic/claude, access_key: k}\n") is None
    )


def _route(name: str = "openai/gpt-4o") -> Route:
    config = load_config_text(
        _config(f"  - {{model: {name}, access_key: k, base_url: 'https://h/v1?api=1'}}\n"), env={}
    )
    route = ModelResolver(config).resolve(name)
    assert route is not None
    return route


def test_the_id_map_is_bounded_and_least_recently_used_goes_first() -> None:
    ids = NativeResponseIds(capacity=2)
    route = _route()
    ids.record("a", route)
    ids.record("b", route)
    assert ids.route("a") is route  # used: now the most recent
    ids.record("c", route)
    assert (ids.route("a"), ids.route("b"), ids.route("c"), len(ids)) == (route, None, route, 2)
    ids.record("x" * (MAX_ID_CHARS + 1), route)
    ids.record("", route)
    assert len(ids) == 2
    ids.forget("a")
    assert ids.route("a") is None
    with pytest.raises(ValueError):
        NativeResponseIds(capacity=0)


def test_the_provider_target_keeps_its_base_query_and_the_client_s() -> None:
    route = _route()
    assert native_target(route, "resp_1", "", b"") == b"/v1/responses/resp_1?api=1"
    assert (
        native_target(route, "a/b?c", "/input_items", b"limit=2")
        == b"/v1/responses/a%2Fb%3Fc/input_items?api=1&limit=2"
    )


def test_the_watcher_records_the_id_at_the_first_event_and_reads_usage() -> None:
    ids = NativeResponseIds()
    route = _route()
    watcher = NativeTurnWatcher(ids, route)
    created = b'data: {"type":"response.created","response":{"id":"resp_9","usage":null}}\n\n'
    delta = b'data: {"type":"response.output_text.delta","delta":"\\"response\\": not a key"}\n\n'
    done = (
        b'data: {"type":"response.completed","response":'
        b'{"id":"resp_9","model":"gpt-4o","usage":{"input_tokens":5,"output_tokens":2}}}\n\n'
    )
    watcher.feed(created[:20])
    assert ids.route("resp_9") is None  # half an event: nothing yet
    watcher.feed(created[20:] + delta)
    assert ids.route("resp_9") is route and watcher.usage is None
    watcher.feed(done + b"data: {broken\n\n")
    assert watcher.usage is not None and (watcher.usage.prompt_tokens, watcher.usage.completion_tokens) == (
        5,
        2,
    )
    assert watcher.model == "gpt-4o"
    whole = NativeTurnWatcher(ids, route)
    whole.observe_body(b'{"id":"resp_10","usage":{"input_tokens":1,"output_tokens":1}}')
    whole.observe_body(b"not json")
    assert ids.route("resp_10") is route and whole.usage is not None
