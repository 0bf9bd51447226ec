"""Failover test kit: configs that wire a primary to its fallbacks, and providers that fail on cue.

A simulated provider is one `MockProvider` (so a test counts exactly what
each one received).  It fails every request when its `base_url` carries a
control query (`?status=429`, `?ttft-ms=3000`, `?drop-after=2`): the gateway
keeps the base URL's query on every target it builds, and the mock reads
its controls from the query as from `x-mock-*` headers.  Behaviour that
changes from one request to the next (429, then 200; a Retry-After header)
needs a provider with a memory, which `sequence` scripts over raw sockets.
"""

from __future__ import annotations

import json
import logging
import socket
import textwrap
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import pytest
import trio

from tests.mock_provider import MockProvider
from tests.scripted_provider import Script, head

PRIMARY = "openai/gpt-4o"
ANTHROPIC = "anthropic/claude-3-5-sonnet"
MISTRAL = "mistral/mistral-large"
GROQ = "groq/llama-3.3-70b"

MOCK_TEXT = "Hello from mock"
"""What every healthy `MockProvider` answers (streamed or not)."""

ACCESS_LOGGER = "plano_trio.access"


# --- configs --------------------------------------------------------------------------------------------


def provider(model: str, url: str, *, query: str = "", policy: str = "", default: bool = False) -> str:
    """One `model_providers` entry; `policy` is the `retry_policy` mapping's YAML, unindented.

    Each provider gets its own key (`key-<prefix>`), so a test can tell from
    the headers a provider received that the attempt was built for it.
    """
    lines = [
        f"  - model: {model}",
        f"    access_key: key-{model.partition('/')[0]}",
        f"    base_url: {url}/v1{'?' + query if query else ''}",
    ]
    if default:
        lines.append("    default: true")
    if policy:
        lines.append("    retry_policy:")
        lines.append(textwrap.indent(textwrap.dedent(policy).strip("\n"), " " * 6))
    return "\n".join(lines) + "\n"


def config(*providers: str, timeout: str = "10s", listener: str = "") -> str:
    """A model listener on an ephemeral port in front of `providers` (`provider(...)` entries).

    `listener` adds keys to the listener (e.g. `max_retries: 1`).
    """
    extra = textwrap.indent(textwrap.dedent(listener).strip("\n"), " " * 4) + "\n" if listener else ""
    return (
        "version: v0.4.0\n"
        "listeners:\n"
        "  - name: llm\n"
        "    type: model\n"
        "    address: 127.0.0.1\n"
        "    port: 0\n"
        f"    timeout: {timeout}\n"
        f"{extra}"
        "model_providers:\n" + "".join(providers)
    )


def status_policy(codes: str = "[429]", *, strategy: str = "different_provider", attempts: int = 2) -> str:
    """The simplest policy of Plano's retry tests: these codes go to `strategy`, `attempts` at most."""
    return f"""
        default_strategy: {strategy}
        default_max_attempts: {attempts}
        on_status_codes:
          - codes: {codes}
            strategy: {strategy}
            max_attempts: {attempts}
    """


# --- providers ------------------------------------------------------------------------------------------


@contextmanager
def mocks(count: int) -> Iterator[list[MockProvider]]:
    """`count` independent mock providers, each on its own port and thread."""
    with ExitStack() as stack:
        yield [stack.enter_context(MockProvider()) for _ in range(count)]


def unused_port() -> int:
    """A local port with nothing listening on it (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


CHAT_OK = json.dumps(
    {
        "id": "chatcmpl-seq",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": MOCK_TEXT}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
    }
).encode()


def openai_error(status: int, message: str = "Rate limit reached.") -> bytes:
    return json.dumps({"error": {"message": message, "type": "requests", "code": str(status)}}).encode()


def reply(status: int, body: bytes, *headers: tuple[str, str]) -> Script:
    """One whole JSON answer, then the connection closes (so no reuse muddles the counts)."""

    async def script(stream: trio.SocketStream, request: bytes) -> None:
        fixed = (
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("connection", "close"),
        )
        await stream.send_all(head(status, *fixed, *headers) + body)

    return script


async def hang_up(stream: trio.SocketStream, request: bytes) -> None:
    """Read the request, answer nothing, close: what a reset or a crashed provider looks like."""
    await stream.aclose()


class Sequence:
    """A script whose n-th request gets `scripts[n]` (the last one repeats); arrival times kept.

    The times are `trio.current_time()`, so gaps between attempts measure
    the gateway's backoff and Retry-After waits directly.
    """

    def __init__(self, *scripts: Script) -> None:
        self.scripts = scripts
        self.arrivals: list[float] = []

    async def __call__(self, stream: trio.SocketStream, request: bytes) -> None:
        index = min(len(self.arrivals), len(self.scripts) - 1)
        self.arrivals.append(trio.current_time())
        await self.scripts[index](stream, request)

    @property
    def gaps(self) -> list[float]:
        return [later - earlier for earlier, later in zip(self.arrivals, self.arrivals[1:], strict=False)]


# --- what the client saw --------------------------------------------------------------------------------


def assert_answered_by(response: httpx.Response, model: str, attempts: int) -> None:
    """The failover headers: which provider answered, after how many attempts.

    A first-try answer from the requested model carries none (the gateway adds them only once
    something else happened), so `attempts == 1` means `model` is the requested one.
    """
    if attempts == 1 and model == PRIMARY:
        assert "x-plano-model" not in response.headers, dict(response.headers)
        assert "x-plano-attempts" not in response.headers, dict(response.headers)
        return
    assert response.headers.get("x-plano-model") == model, dict(response.headers)
    assert response.headers.get("x-plano-attempts") == str(attempts), dict(response.headers)


def access_records(caplog: pytest.LogCaptureFixture, path: str) -> list[logging.LogRecord]:
    """Access-log lines for requests to `path` (one per request)."""
    return [r for r in caplog.records if r.name == ACCESS_LOGGER and path in r.getMessage()]


def access_fields(caplog: pytest.LogCaptureFixture, path: str) -> dict[str, object]:
    """The fields of the one access-log line for `path` (fails if there is not exactly one)."""
    records = access_records(caplog, path)
    assert len(records) == 1, [r.getMessage() for r in records]
    fields: dict[str, object] = records[0].fields  # type: ignore[attr-defined]
    return fields


def error_message(response: httpx.Response) -> str:
    """The error message in either client shape (OpenAI `{"error": {...}}`, Anthropic `{"type": "error"}`)."""
    body = response.json()
    message: str = body["error"]["message"]
    return message
