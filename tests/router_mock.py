"""A scripted router model over a real socket: records each prompt it gets and answers as told.

Speaks OpenAI Chat Completions (what Plano-Orchestrator serves).  A test sets
`answer` (the assistant content, e.g. `{"route": ["code"]}`), or `status` for
an error, or `delay_s` to be slow, or `raw` for bytes that are not a chat
completion at all; every request's decoded JSON body and headers are kept in
`requests`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from scripted_provider import ScriptedProvider, head, scripted_provider


class RouterMock:
    def __init__(self) -> None:
        self.answer: str = '{"route": []}'
        self.status = 200
        self.delay_s = 0.0
        self.raw: bytes | None = None
        self.requests: list[tuple[dict[str, bytes], dict[str, Any]]] = []
        self.provider: ScriptedProvider | None = None

    @property
    def url(self) -> str:
        assert self.provider is not None
        return self.provider.url

    @property
    def prompts(self) -> list[str]:
        """The router prompt of each request (the one user message's content)."""
        return [body["messages"][0]["content"] for _, body in self.requests]

    async def script(self, stream: trio.SocketStream, request: bytes) -> None:
        head_bytes, _, body = request.partition(b"\r\n\r\n")
        headers = {}
        for line in head_bytes.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode()] = value.strip()
        self.requests.append((headers, json.loads(body)))
        if self.delay_s:
            await trio.sleep(self.delay_s)
        if self.raw is not None:
            payload = self.raw
        elif self.status != 200:
            payload = json.dumps({"error": {"message": "router is down", "type": "server_error"}}).encode()
        else:
            payload = json.dumps(
                {
                    "id": "chatcmpl-router",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "Plano-Orchestrator",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": self.answer},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            ).encode()
        reply = head(self.status, ("content-type", "application/json"), ("content-length", str(len(payload))))
        await stream.send_all(reply + payload)


@asynccontextmanager
async def router_mock() -> AsyncIterator[RouterMock]:
    mock = RouterMock()
    async with scripted_provider(mock.script) as provider:
        mock.provider = provider
        yield mock
