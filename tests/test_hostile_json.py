"""Hostile request JSON over real sockets: a 400 in the client API's error shape, nothing sent upstream.

Each body once made the gateway answer 500 (RecursionError, UnicodeDecodeError, msgspec's
ValidationError) or route one model while forwarding a body a provider could read as another.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from plano_trio.apis.request_json import MAX_DEPTH
from tests.mock_provider import MockProvider
from tests.support import provider_config, running_gateway

OK_BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}'
DEEP = 100_000

CLAUDE = "anthropic/claude-sonnet-4-6"
"""A provider in Anthropic's format: Chat and Responses clients are translated to it."""


def config(mock_url: str) -> str:
    extra = f"""  - model: {CLAUDE}
    access_key: anthropic-server-key
    base_url: {mock_url}
"""
    return provider_config(mock_url, extra_providers=extra)


def request(path: str, model: str, middle: bytes) -> bytes:
    """A body for `path` whose required field comes first and `middle` is spliced in after it."""
    if path == "/v1/responses":
        return b'{"model":"' + model.encode() + b'","input":"hi",' + middle + b"}"
    return (
        b'{"model":"'
        + model.encode()
        + b'","max_tokens":16,"messages":[{"role":"user","content":"hi"}],'
        + middle
        + b"}"
    )


def error_message(path: str, payload: Any) -> str:
    """The message, after checking the error shape the path's SDK parses."""
    if path == "/v1/messages":
        assert payload["type"] == "error"
        assert set(payload["error"]) == {"type", "message"}
        assert payload["error"]["type"] == "invalid_request_error"
        return str(payload["error"]["message"])
    assert set(payload["error"]) == {"message", "type", "param", "code"}
    return str(payload["error"]["message"])


async def post_and_check(mock: MockProvider, path: str, body: bytes, needle: str) -> None:
    async with running_gateway(config(mock.url)) as gw, httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            gw.base + path,
            content=body,
            headers={"content-type": "application/json", "authorization": "Bearer k"},
        )
        still_ok = await client.post(f"{gw.v1}/chat/completions", content=OK_BODY)
    assert response.status_code == 400, response.text
    assert needle in error_message(path, response.json())
    assert still_ok.status_code == 200
    assert len(mock.requests) == 1  # only the good request reached the provider


PATHS = ["/v1/chat/completions", "/v1/messages", "/v1/responses"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("opener", "closer"), [(b'{"a":', b"}"), (b"[", b"]")], ids=["objects", "arrays"])
async def test_deep_nesting_is_400_on_every_endpoint(
    mock: MockProvider, path: str, opener: bytes, closer: bytes
) -> None:
    middle = b'"extra":' + opener * DEEP + b"1" + closer * DEEP
    await post_and_check(mock, path, request(path, "gpt-4o-mini", middle), f"deeper than {MAX_DEPTH}")


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/messages", "gpt-4o-mini"),  # Anthropic client → OpenAI provider
        ("/v1/chat/completions", CLAUDE),  # OpenAI client → Anthropic provider
        ("/v1/responses", CLAUDE),
        ("/v1/chat/completions", "gpt-4o-mini"),  # passthrough: the provider never gets non-UTF-8 JSON
    ],
)
async def test_invalid_utf8_is_400(mock: MockProvider, path: str, model: str) -> None:
    await post_and_check(mock, path, request(path, model, b'"metadata":{"note":"caf\xe9"}'), "not UTF-8")


async def test_invalid_utf8_in_a_key_is_400_on_an_alias(mock: MockProvider) -> None:
    """An alias makes the gateway rewrite `model`, which decodes every top-level key."""
    body = b'{"\xff":1,"model":"fast","messages":[{"role":"user","content":"hi"}]}'
    await post_and_check(mock, "/v1/chat/completions", body, "not UTF-8")


@pytest.mark.parametrize(
    ("path", "model"),
    [("/v1/messages", "gpt-4o-mini"), ("/v1/chat/completions", CLAUDE), ("/v1/responses", CLAUDE)],
)
@pytest.mark.parametrize("number", [b"1" + b"0" * 100_000, b"1e999999"], ids=["100k-digits", "1e999999"])
async def test_numbers_out_of_range_are_400_on_translated_routes(
    mock: MockProvider, path: str, model: str, number: bytes
) -> None:
    await post_and_check(
        mock, path, request(path, model, b'"temperature":' + number), "cannot be represented"
    )


@pytest.mark.parametrize(
    ("path", "model"),
    [("/v1/messages", "gpt-4o-mini"), ("/v1/chat/completions", CLAUDE), ("/v1/responses", CLAUDE)],
)
async def test_translated_body_deeper_than_the_bound_is_400(
    mock: MockProvider, path: str, model: str
) -> None:
    """Too shallow for the decoder to run out of stack, too deep for the documented bound."""
    depth = MAX_DEPTH + 1
    middle = b'"metadata":' + b'{"a":' * depth + b"1" + b"}" * depth
    await post_and_check(mock, path, request(path, model, middle), f"deeper than {MAX_DEPTH}")


@pytest.mark.parametrize(
    ("path", "body", "key"),
    [
        (
            "/v1/chat/completions",
            b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"model":"gpt-4o"}',
            "model",
        ),
        (
            "/v1/chat/completions",
            b'{"model":"gpt-4o-mini", "stream":false, "messages":[], "stream" : true}',
            "stream",
        ),
        (
            "/v1/chat/completions",
            b'{"messages":[{"role":"user","content":"a"}],"model":"gpt-4o-mini",'
            b'"mess\\u0061ges":[{"role":"user","content":"b"}]}',
            "messages",
        ),
        ("/v1/messages", b'{"model":"gpt-4o-mini","max_tokens":1,"messages":[],"model":"x"}', "model"),
        (
            "/v1/responses",
            b'{"model":"gpt-4o-mini","input":"a","previous_response_id":"r","input":"b"}',
            "input",
        ),
    ],
)
async def test_duplicate_top_level_keys_are_400_naming_the_key(
    mock: MockProvider, path: str, body: bytes, key: str
) -> None:
    await post_and_check(mock, path, body, f"'{key}' is given more than once")
