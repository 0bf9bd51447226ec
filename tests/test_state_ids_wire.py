"""A NUL byte in a response id, sent over a real socket, is an unknown id on both backends."""

from __future__ import annotations

import httpx
import pytest

from tests.mock_provider import MockProvider
from tests.state_support import BACKENDS
from tests.support import running_gateway
from tests.test_gateway_state import backend, state_config


@pytest.mark.parametrize("kind", BACKENDS)
async def test_nul_in_an_id_over_the_wire_is_404_or_409(mock: MockProvider, kind: str) -> None:
    """Regression: `GET /v1/responses/%00` answered 503 "state database unavailable" on postgres."""
    async with (
        backend(kind) as state,
        running_gateway(state_config(mock.url, state)) as gw,
        httpx.AsyncClient(base_url=gw.base, timeout=10) as client,
    ):
        got = await client.get("/v1/responses/%00")
        deleted = await client.delete("/v1/responses/resp_%00x")
        items = await client.get("/v1/responses/%00/input_items")
        continued = await client.post(
            "/v1/responses",
            json={"model": "claude-sonnet-4-6", "input": "x", "previous_response_id": "resp_\u0000x"},
        )
    assert (got.status_code, deleted.status_code, items.status_code) == (404, 404, 404)
    assert got.json()["error"]["code"] == "not_found"
    assert continued.status_code == 409
    assert continued.json()["error"]["param"] == "previous_response_id"
    assert mock.requests == []
