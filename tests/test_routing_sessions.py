"""Sessions, affinity and the routing budget end to end, on the memory store and on the real Redis.

The pure decision is table-tested in `test_router_session.py`; here the
gateway runs it for real: session keys from headers and from the
conversation, bindings written to and read from the store between requests,
refreshed from the provider's usage after an answer, scoped by tenant, and a
Redis that is down costs a routed request nothing but its stickiness.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import trio

from plano_trio.router.affinity import fnv1a64
from tests.failover_support import mocks, openai_error, reply, unused_port
from tests.mock_provider import MockProvider
from tests.router_mock import RouterMock, router_mock
from tests.scripted_provider import scripted_provider
from tests.support import Gateway, running_gateway

CODE = "anthropic/claude-sonnet-4-6"
CHEAP = "openai/gpt-4o"
MINI = "openai/gpt-4o-mini"

PRICES = {
    "anthropic": {
        "models": {"claude-sonnet-4-6": {"cost": {"input": 3.0, "output": 15.0, "cache_read": 0.3}}}
    },
    "openai": {
        "models": {
            "gpt-4o": {"cost": {"input": 0.1, "output": 0.4, "cache_read": 0.05}},
            "gpt-4o-mini": {"cost": {"input": 5.0, "output": 20.0, "cache_read": 2.5}},
        }
    },
}
"""CHEAP is cheaper uncached than CODE is cached (a switch to it is free); MINI costs more than CODE."""

REDIS_URL = "redis://127.0.0.1:6379/0"


def config(router: str, urls: dict[str, str], prices: Path, routing: str) -> str:
    providers = "".join(
        f"  - model: {model}\n    access_key: k\n    base_url: {url}\n" for model, url in urls.items()
    )
    return f"""
version: v0.4.0
listeners:
  - {{name: llm, type: model, address: 127.0.0.1, port: 0, timeout: 10s}}
model_providers:
{providers}  - model: plano/Plano-Orchestrator
    base_url: {router}
routing_preferences:
  - {{name: code, description: writing code, models: [{CODE}]}}
  - {{name: cheap, description: small talk, models: [{CHEAP}]}}
  - {{name: pricey, description: expensive things, models: [{MINI}]}}
  - {{name: ranked, description: anything, models: [{MINI}, {CODE}, {CHEAP}],
     selection_policy: {{prefer: cheapest}}}}
model_metrics_sources:
  - {{type: cost, provider: models.dev, url: "file://{prices}"}}
routing:
{routing}
""" + (REDIS_PY if REDIS_PY_MARK in routing else "")


REDIS_PY_MARK = "# through redis-py"
REDIS_PY = "plano_trio: {session_cache_client: redis-py}\n"
"""Selects redis-py's client over trio-asyncio instead of the native one (the default)."""


class Setup:
    def __init__(
        self, gateway: Gateway, router: RouterMock, models: dict[str, MockProvider], tenant: str
    ) -> None:
        self.gateway = gateway
        self.router = router
        self.models = models
        self.tenant = tenant

    async def decide(self, messages: list[dict[str, Any]], route: str, **headers: str) -> dict[str, Any]:
        self.router.answer = json.dumps({"route": [route]})
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                f"{self.gateway.base}/routing/v1/chat/completions",
                json={"model": MINI, "messages": messages},
                headers={"x-tenant": self.tenant, **headers},
            )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async def chat(self, messages: list[dict[str, Any]], route: str, **headers: str) -> httpx.Response:
        self.router.answer = json.dumps({"route": [route]})
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(
                f"{self.gateway.v1}/chat/completions",
                json={"model": MINI, "messages": messages},
                headers={"x-tenant": self.tenant, **headers},
            )


@asynccontextmanager
async def gateway(tmp_path: Path, routing: str, *, broken: str | None = None) -> AsyncIterator[Setup]:
    """The three models, the router and a gateway; `broken` names a model whose provider answers 503."""
    prices = tmp_path / "models-dev.json"
    prices.write_text(json.dumps(PRICES))
    with mocks(3) as (code, cheap, mini):
        async with router_mock() as router, scripted_provider(reply(503, openai_error(503))) as down:
            urls = {CODE: f"{code.url}/v1", CHEAP: f"{cheap.url}/v1", MINI: f"{mini.url}/v1"}
            if broken is not None:
                urls[broken] = f"{down.url}/v1"
            async with running_gateway(config(router.url, urls, prices, routing)) as gw:
                models = {CODE: code, CHEAP: cheap, MINI: mini}
                yield Setup(
                    gw, router, models, tenant=uuid.uuid4().hex
                )  # a fresh tenant: no binding of another test


BACKENDS = {
    "memory": "  session_cache: {type: memory, tenant_header: x-tenant}\n",
    "redis": f"  session_cache: {{type: redis, url: '{REDIS_URL}', tenant_header: x-tenant}}\n",
    "redis-py": f"  session_cache: {{type: redis, url: '{REDIS_URL}', tenant_header: x-tenant}}"
    f"  {REDIS_PY_MARK}\n",
}
BUDGET = "  routing_budget: {max_switch_spend_pct: 0}\n"

FIRST = [{"role": "user", "content": "write a parser"}]
SECOND = [
    *FIRST,
    {"role": "assistant", "content": "here it is"},
    {"role": "user", "content": "now make it fast"},
]


TOOL_TURN = [
    *FIRST,
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "run", "arguments": "{}"}}],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "ok"},
]


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_warm_session_keeps_its_model_when_the_budget_forbids_a_paid_switch(
    tmp_path: Path, backend: str
) -> None:
    async with gateway(tmp_path, BACKENDS[backend] + BUDGET) as s:
        first = await s.decide(FIRST, "code")
        assert first["models"] == [CODE]
        assert first["session_id"].startswith("implicit:")
        assert (first["pinned"], first["switched"]) == (False, False)
        second = await s.decide(SECOND, "pricey")  # the router wants MINI, dearer than staying warm on CODE
        assert second["models"][0] == CODE
        assert second["route"] == "code"
        assert second["session_id"] == first["session_id"]
        assert (second["pinned"], second["switched"]) == (True, False)
        third = await s.decide(SECOND, "cheap")  # CHEAP costs less than CODE's cache reads: a free switch
        assert third["models"] == [CHEAP]
        assert (third["pinned"], third["switched"]) == (True, True)


async def test_the_proxy_path_dispatches_the_anchor_and_refreshes_the_binding(
    tmp_path: Path, backend: str
) -> None:
    async with gateway(tmp_path, BACKENDS[backend] + BUDGET) as s:
        first = await s.chat(FIRST, "code")
        assert first.headers["x-plano-model"] == CODE
        session = first.headers["x-plano-session"]
        second = await s.chat(SECOND, "pricey")
        assert second.status_code == 200
        assert (
            len(s.models[CODE].requests[-1].headers["x-plano-prefix-hash"]) == 16
        )  # sent upstream, as Plano
        assert second.headers["x-plano-model"] == CODE  # retained: the budget forbids the paid switch
        assert second.headers["x-plano-route"] == "code"
        assert second.headers["x-plano-session"] == session
        if backend.startswith("redis"):  # the binding is Plano's JSON under Plano's key, refreshed from usage
            names = {c["name"] for c in redis.Redis.from_url(REDIS_URL).client_list()}
            assert ("plano-trio/redis-py" if backend == "redis-py" else "plano-trio") in names
            stored = redis.Redis.from_url(REDIS_URL).get(f"plano:affinity:{s.tenant}:{session}")
            assert stored is not None
            binding = json.loads(stored)
            assert binding["anchor_model"] == CODE
            assert binding["route_name"] == "code"
            assert binding["cached_tokens"] > 0  # the provider's reported prompt tokens
            assert binding["session_cost_usd"] > 0


async def test_the_prefix_hash_goes_upstream_only_with_a_session(tmp_path: Path) -> None:
    async with gateway(tmp_path, BACKENDS["memory"]) as s:  # no budget, no session affinity: no implicit key
        plain = await s.chat(FIRST, "code")
        assert "x-plano-session" not in plain.headers
        assert "x-plano-prefix-hash" not in s.models[CODE].requests[-1].headers
        pinned = await s.chat(FIRST, "code", **{"x-model-affinity": "conv-p"})
        assert pinned.headers["x-plano-session"] == "conv-p"
        prefix = s.models[CODE].requests[-1].headers["x-plano-prefix-hash"]
        assert prefix == f"{fnv1a64((s.tenant, '', '')):016x}"  # tenant, no system text, no tools


async def test_explicit_affinity_and_tenants_scope_sessions(tmp_path: Path, backend: str) -> None:
    async with gateway(tmp_path, BACKENDS[backend] + BUDGET) as s:
        await s.decide(FIRST, "code", **{"x-model-affinity": "conv-1"})
        pinned = await s.decide(FIRST, "pricey", **{"x-model-affinity": "conv-1"})
        assert pinned["session_id"] == "conv-1"
        assert pinned["models"][0] == CODE and pinned["pinned"]
        s.tenant = uuid.uuid4().hex  # the same session id under another tenant is another session
        other = await s.decide(FIRST, "pricey", **{"x-model-affinity": "conv-1"})
        assert other["models"] == [MINI] and not other["pinned"]


async def test_cache_off_opts_a_request_out_of_implicit_affinity(tmp_path: Path, backend: str) -> None:
    async with gateway(tmp_path, BACKENDS[backend] + BUDGET) as s:
        await s.decide(FIRST, "code")
        answer = await s.decide(SECOND, "pricey", **{"x-plano-cache": "off"})
        assert "session_id" not in answer
        assert answer["models"] == [MINI]


async def test_route_on_user_only_replays_the_decision_on_tool_turns(tmp_path: Path, backend: str) -> None:
    async with gateway(tmp_path, BACKENDS[backend] + "  route_on_user_only: true\n") as s:
        first = await s.chat(FIRST, "code")
        assert first.headers["x-plano-model"] == CODE
        calls = len(s.router.requests)
        tool_turn = TOOL_TURN
        again = await s.chat(tool_turn, "pricey")
        assert again.status_code == 200, again.text
        assert len(s.router.requests) == calls  # no router call on a tool result
        assert again.headers["x-plano-model"] == CODE
        fresh = await s.chat(
            [*tool_turn, {"role": "assistant", "content": "done"}, {"role": "user", "content": "thanks"}],
            "cheap",
        )
        assert len(s.router.requests) == calls + 1  # a real user turn is routed again
        assert fresh.headers["x-plano-model"] == CHEAP


async def test_after_ranked_failover_the_session_is_bound_to_the_model_that_answered(
    tmp_path: Path, backend: str
) -> None:
    session = {"x-model-affinity": "conv-failover"}
    async with gateway(tmp_path, BACKENDS[backend], broken=CHEAP) as s:
        response = await s.chat(FIRST, "ranked", **session)  # ranked CHEAP, CODE, MINI; CHEAP answers 503
        assert response.status_code == 200, response.text
        assert response.headers["x-plano-model"] == CODE
        assert response.headers["x-plano-attempts"] == "2"
        # the next turn's router pick, CODE, is the session's own model: no switch
        following = await s.decide(SECOND, "code", **session)
        assert following["models"] == [CODE]
        assert (following["pinned"], following["switched"]) == (True, False)
        if backend.startswith("redis"):
            stored = redis.Redis.from_url(REDIS_URL).get(f"plano:affinity:{s.tenant}:conv-failover")
            assert stored is not None
            binding = json.loads(stored)
            assert (binding["anchor_model"], binding["route_name"]) == (CODE, "code")
            assert [v["model"] for v in binding["history"]] == [CODE]  # the failed CHEAP never held it


async def test_a_replayed_none_anchor_routes_normally(tmp_path: Path, backend: str) -> None:
    session = {"x-model-affinity": "conv-none"}
    async with gateway(tmp_path, BACKENDS[backend] + "  route_on_user_only: true\n") as s:
        decided = await s.decide(FIRST, "no such route", **session)  # the decision API stores "none"
        assert decided["models"] == ["none"]
        calls = len(s.router.requests)
        response = await s.chat(TOOL_TURN, "code", **session)  # a tool turn would replay "none"
        assert response.status_code == 200, response.text
        assert len(s.router.requests) == calls + 1  # routed afresh instead
        assert response.headers["x-plano-model"] == CODE


async def test_a_replayed_anchor_no_provider_serves_routes_normally(tmp_path: Path) -> None:
    async with gateway(tmp_path, BACKENDS["redis"] + "  route_on_user_only: true\n") as s:
        # what another deployment sharing the Redis could have stored for this session
        foreign = {"anchor_model": "elsewhere/unknown-model", "requested_model": MINI, "route_name": "code"}
        redis.Redis.from_url(REDIS_URL).set(
            f"plano:affinity:{s.tenant}:conv-foreign", json.dumps(foreign), ex=60
        )
        response = await s.chat(TOOL_TURN, "code", **{"x-model-affinity": "conv-foreign"})
        assert response.status_code == 200, response.text
        assert response.headers["x-plano-model"] == CODE


async def test_a_redis_that_is_down_fails_open(tmp_path: Path) -> None:
    down = f"  session_cache: {{type: redis, url: 'redis://127.0.0.1:{unused_port()}/0'}}\n"
    async with gateway(tmp_path, down + BUDGET) as s:
        for route, model in (("code", CODE), ("pricey", MINI)):
            started = trio.current_time()
            response = await s.chat(FIRST, route)
            assert response.status_code == 200
            assert response.headers["x-plano-model"] == model  # no stickiness, but every request served
            assert trio.current_time() - started < 2.0


async def test_prefer_cheapest_ranks_by_the_cost_feed(tmp_path: Path) -> None:
    async with gateway(tmp_path, BACKENDS["memory"]) as s:
        answer = await s.decide(FIRST, "ranked")
        assert answer["models"] == [CHEAP, CODE, MINI]  # input + output $/M: 0.5, 18, 25
        response = await s.chat(FIRST, "ranked")
        assert response.headers["x-plano-model"] == CHEAP


async def test_debug_routing_counts_decisions_and_cache_events(tmp_path: Path, backend: str) -> None:
    async with gateway(tmp_path, BACKENDS[backend] + BUDGET) as s:
        await s.chat(FIRST, "code")
        await s.chat(SECOND, "pricey")
        async with httpx.AsyncClient() as client:
            stats = (await client.get(f"{s.gateway.base}/debug/routing")).json()
    assert stats["decisions"]["routed"] == 2
    cache = stats["session_cache"]
    assert cache["backend"] == backend.removesuffix("-py")
    assert cache["hits"] >= 1 and cache["misses"] >= 1
    assert stats["metrics_sources"]["refresh_failures"] == {"cost": 0}
    writes = stats["sessions"]["writes"]  # one write per answered turn, after it (not one before, too)
    assert (writes["written"], writes["dropped"]) == (2, 0)
    assert stats["sessions"]["stores"] == 2


async def test_a_turn_that_fails_still_stores_its_decided_binding(tmp_path: Path, backend: str) -> None:
    async with gateway(tmp_path, BACKENDS[backend] + BUDGET, broken=CODE) as s:
        failed = await s.chat(FIRST, "code")  # the route's only model answers 503
        assert failed.status_code == 503
        async with httpx.AsyncClient() as client:
            stats = (await client.get(f"{s.gateway.base}/debug/routing")).json()
        assert stats["sessions"]["writes"]["written"] == 1  # the decision, stored when the request ended
        assert stats["sessions"]["refreshes"] == 0
        pinned = await s.decide(FIRST, "code")
        assert pinned["pinned"] is True  # the next turn finds the session warm on what was decided
