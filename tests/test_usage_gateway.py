"""Token usage reaches the access log (and with it metrics, spans and routing sessions) for every stream:
a Chat, Messages or Responses client, relayed untouched or translated, streamed or whole."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.failover_support import ACCESS_LOGGER, access_records, mocks
from tests.support import in_thread, running_gateway

CLAUDE = "anthropic/claude-sonnet-4-6"
GPT = "openai/gpt-4o-mini"


def config(anthropic_url: str, openai_url: str) -> str:
    return (
        "version: v0.4.0\n"
        "listeners:\n"
        "  - {name: llm, type: model, address: 127.0.0.1, port: 0, timeout: 10s}\n"
        "model_providers:\n"
        f"  - {{model: {CLAUDE}, access_key: k, base_url: '{anthropic_url}'}}\n"
        f"  - {{model: {GPT}, access_key: k, base_url: '{openai_url}/v1'}}\n"
    )


CASES = [
    # (client path, body builder, model): every pairing of client API and provider wire format
    ("/v1/messages", "messages", CLAUDE),  # Anthropic relayed untouched
    ("/v1/chat/completions", "chat", CLAUDE),  # Chat -> Anthropic, translated
    ("/v1/responses", "responses", CLAUDE),  # Responses -> Anthropic, translated
    ("/v1/messages", "messages", GPT),  # Messages -> Chat, translated
    ("/v1/chat/completions", "chat", GPT),  # Chat relayed untouched (asks for the usage chunk)
    ("/v1/responses", "responses", GPT),  # Responses relayed untouched (native)
]


def body(kind: str, model: str, stream: bool) -> dict[str, object]:
    if kind == "messages":
        return {
            "model": model,
            "max_tokens": 64,
            "stream": stream,
            "messages": [{"role": "user", "content": "hi"}],
        }
    if kind == "responses":
        return {"model": model, "input": "hi", "stream": stream}
    extra = {"stream_options": {"include_usage": True}} if stream else {}
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize(("path", "kind", "model"), CASES, ids=[f"{c[0]}->{c[2]}" for c in CASES])
async def test_usage_is_read_from_every_answer(
    caplog: pytest.LogCaptureFixture, path: str, kind: str, model: str, stream: bool
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    with mocks(2) as (anthropic_mock, openai_mock):
        async with running_gateway(config(anthropic_mock.url, openai_mock.url)) as gateway:
            response = await in_thread(
                lambda: httpx.post(
                    f"{gateway.base}{path}",
                    json=body(kind, model, stream),
                    headers={"authorization": "Bearer client", "x-api-key": "client"},
                    timeout=10,
                )
            )
            assert response.status_code == 200, response.text
    (record,) = access_records(caplog, path)
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["prompt_tokens"] > 0, fields
    assert fields["completion_tokens"] > 0, fields
