"""The built-in demo model `plano_trio/echo`: a first request that needs no key and no network."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import msgspec
import openai
import pytest
import trio

from plano_trio.providers import demo
from plano_trio.providers.local import InProcessServer, LocalReply, LocalRequest
from plano_trio.upstream import Origin, UpstreamPool
from tests.support import in_thread, running_gateway

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
EXAMPLE = (ROOT / "config.example.yaml").read_text()


def _readme_block(language: str, containing: str) -> str:
    """The README's fenced `language` block that contains `containing` (the quick start's commands)."""
    blocks = re.findall(rf"```{language}\n(.*?)```", README, re.S)
    found = [block for block in blocks if containing in block]
    assert len(found) == 1, f"one {language} block with {containing!r} expected in README.md"
    return found[0]


def _on_port(command: str, port: int) -> str:
    assert "localhost:12000" in command
    return command.replace("localhost:12000", f"127.0.0.1:{port}")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The gateway may not dial anything: every outbound TCP connection fails the test."""

    async def no_network(host: object, port: object, **_: object) -> trio.SocketStream:
        raise AssertionError(f"the demo path opened a connection to {host}:{port}")

    monkeypatch.setattr(trio, "open_tcp_stream", no_network)
    yield


def _example_config() -> str:
    """config.example.yaml as shipped, on a free loopback port."""
    assert "    port: 12000\n" in EXAMPLE
    return EXAMPLE.replace("    address: 0.0.0.0\n    port: 12000\n", "    address: 127.0.0.1\n    port: 0\n")


@pytest.mark.usefixtures("offline")
async def test_the_readme_quick_start_works_with_no_key_and_no_network() -> None:
    curl = _readme_block("sh", "plano_trio/echo")
    sdk = _readme_block("python", "plano_trio/echo")
    async with running_gateway(_example_config()) as gateway:
        env = {"PATH": "/usr/bin:/bin", "NO_PROXY": "*"}  # no OPENAI_API_KEY, no proxy
        by_curl = await trio.run_process(
            ["sh", "-c", _on_port(curl, gateway.port)], capture_stdout=True, capture_stderr=True, env=env
        )
        by_sdk = await trio.run_process(
            [sys.executable, "-c", _on_port(sdk, gateway.port)],
            capture_stdout=True,
            capture_stderr=True,
            env=env,
        )
    answer = json.loads(by_curl.stdout)
    assert answer["choices"][0]["message"]["content"] == "Hello, gateway!"
    assert answer["usage"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
    assert by_sdk.stdout.decode().strip() == "Hello, gateway!"


@pytest.mark.usefixtures("offline")
async def test_all_three_client_apis_streaming_and_not() -> None:
    text = "The quick brown fox jumps over the lazy dog"
    async with running_gateway(_example_config()) as gateway:
        chat = openai.OpenAI(base_url=gateway.v1, api_key="unused", max_retries=0)
        messages = anthropic.Anthropic(base_url=gateway.base, api_key="unused", max_retries=0)
        user = [{"role": "user", "content": text}]

        def run() -> dict[str, object]:
            seen: dict[str, object] = {}
            whole = chat.chat.completions.create(model="plano_trio/echo", messages=user)  # type: ignore[arg-type]
            seen["chat"] = (whole.choices[0].message.content, whole.usage and whole.usage.completion_tokens)
            stream = chat.chat.completions.create(
                model="echo",
                messages=user,
                stream=True,
                stream_options={"include_usage": True},  # type: ignore[arg-type]
            )
            chunks = list(stream)
            deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
            seen["chat_stream"] = (
                "".join(deltas),
                len(deltas),
                chunks[-1].usage and chunks[-1].usage.total_tokens,
            )
            reply = messages.messages.create(model="plano_trio/echo", max_tokens=100, messages=user)  # type: ignore[arg-type]
            seen["messages"] = (reply.content[0].text, reply.usage.output_tokens, reply.stop_reason)  # type: ignore[union-attr]
            with messages.messages.stream(model="echo", max_tokens=100, messages=user) as events:  # type: ignore[arg-type]
                streamed = "".join(events.text_stream)
                final = events.get_final_message()
            seen["messages_stream"] = (streamed, final.usage.output_tokens)
            first = chat.responses.create(model="plano_trio/echo", input=text)
            seen["responses"] = (first.output_text, first.usage and first.usage.output_tokens)
            with chat.responses.stream(
                model="echo", input="second turn", previous_response_id=first.id
            ) as events:
                streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
                final_response = events.get_final_response()
            seen["responses_stream"] = (streamed, final_response.usage and final_response.usage.input_tokens)
            cut = chat.responses.create(model="echo", input=text, max_output_tokens=3)
            seen["responses_cut"] = (cut.status, cut.output_text)
            return seen

        seen = await in_thread(run)
    assert seen["chat"] == (text, 9)
    assert seen["chat_stream"] == (text, 9, 9 + 9)
    assert seen["messages"] == (text, 9, "end_turn")
    assert seen["messages_stream"] == (text, 9)
    assert seen["responses"] == (text, 9)
    # the second turn's prompt is the stored conversation: 9 + 9 words, plus "second turn"
    assert seen["responses_stream"] == ("second turn", 9 + 9 + 2)
    assert seen["responses_cut"] == ("incomplete", "The quick brown ")


def _ask(body: object, target: bytes = b"/v1/chat/completions") -> LocalReply:
    return demo.answer(LocalRequest(b"POST", target, [], msgspec.json.encode(body)))


def _events(reply: LocalReply) -> list[object]:
    data = [part.removeprefix(b"data: ").strip() for part in reply.parts]
    assert data[-1] == b"[DONE]"
    return [json.loads(item) for item in data[:-1]]


def test_echo_answers_the_last_user_message_with_text() -> None:
    body = {
        "model": "echo",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "first"}]},
            {"role": "assistant", "content": "ok"},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "x"}},
                    {"type": "text", "text": "last one"},
                ],
            },
            {"role": "user", "content": "   "},
        ],
    }
    reply = _ask(body)
    answer = json.loads(reply.parts[0])
    assert (reply.status, answer["choices"][0]["message"]["content"]) == (200, "last one")
    assert answer["usage"] == {"prompt_tokens": 6, "completion_tokens": 2, "total_tokens": 8}
    nothing = json.loads(_ask({"model": "echo", "messages": []}).parts[0])
    assert nothing["choices"][0]["message"]["content"] == demo.NO_MESSAGE


def test_usage_chunk_only_when_asked_and_long_messages_stay_within_bounded_events() -> None:
    words = " ".join(f"w{i}" for i in range(10_000))
    plain = _events(_ask({"model": "echo", "stream": True, "messages": [{"role": "user", "content": words}]}))
    assert all("usage" not in event for event in plain)  # type: ignore[operator]
    asked = _events(
        _ask(
            {
                "model": "echo",
                "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": words}],
            }
        )
    )
    contents = [e["choices"][0]["delta"].get("content") for e in asked if e["choices"]]  # type: ignore[index]
    assert "".join(c for c in contents if c) == words
    assert len(contents) <= demo.MAX_EVENTS + 2
    assert asked[-1]["usage"]["completion_tokens"] == 10_000  # type: ignore[index]
    cut = _events(
        _ask(
            {
                "model": "echo",
                "stream": True,
                "max_tokens": 2,
                "messages": [{"role": "user", "content": "a b c"}],
            }
        )
    )
    assert cut[-1]["choices"][0]["finish_reason"] == "length"  # type: ignore[index]


@pytest.mark.parametrize(
    ("target", "body", "status", "words"),
    [
        (b"/v1/responses", {"model": "echo", "messages": []}, 404, "serves POST /v1/chat/completions"),
        (b"/v1/chat/completions", {"model": "gpt-4o", "messages": []}, 404, "one model"),
        (b"/v1/chat/completions", {"model": "echo"}, 400, "messages"),
        (b"/v1/chat/completions", [1, 2], 400, "messages"),
    ],
)
def test_errors_come_in_openai_s_shape(target: bytes, body: object, status: int, words: str) -> None:
    reply = _ask(body, target)
    assert reply.status == status
    assert words in json.loads(reply.parts[0])["error"]["message"]
    broken = demo.answer(LocalRequest(b"POST", b"/v1/chat/completions", [], b"{not json"))
    assert broken.status == 400


async def test_the_in_process_server_speaks_http1_keep_alive_to_the_pool() -> None:
    pool = UpstreamPool()
    origin = Origin("http", "plano_trio", 80, None, demo.open_stream)
    body = msgspec.json.encode({"model": "echo", "messages": [{"role": "user", "content": "hi there"}]})
    for _ in range(3):
        async with await pool.request(origin, b"POST", b"/v1/chat/completions", [], body) as response:
            assert response.status == 200
            assert json.loads(await response.read())["choices"][0]["message"]["content"] == "hi there"
    assert [(s.origin, s.opened, s.idle) for s in pool.origin_stats()] == [("plano_trio:80", 1, 1)]
    await pool.aclose()


async def test_the_in_process_server_bounds_and_failures() -> None:
    server = InProcessServer(demo.answer)
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n"
    body = msgspec.json.encode({"model": "echo", "messages": [{"role": "user", "content": "split"}]})
    whole = request % len(body) + body
    await server.send_all(whole[:10])  # a request split anywhere is answered once complete
    assert await server.receive_some() == b""  # nothing to say yet: end of file, never a hang
    await server.send_all(whole[10:])
    head = await server.receive_some(8)  # reads honour max_bytes
    assert head == b"HTTP/1.1"
    rest = await server.receive_some()
    assert b" 200 OK\r\n" in rest and b"split" in rest

    def failing(_: LocalRequest) -> LocalReply:
        raise RuntimeError("bug")

    broken = InProcessServer(failing)
    await broken.send_all(whole)
    assert (await broken.receive_some()).startswith(b"HTTP/1.1 500 Internal Server Error\r\n")

    huge = InProcessServer(demo.answer)
    with pytest.raises(trio.BrokenResourceError):
        await huge.send_all(b"POST / HTTP/1.1\r\nx: " + b"a" * (70 * 1024))
    with pytest.raises(trio.ClosedResourceError):
        await huge.receive_some()
    await server.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await server.send_all(whole)


def test_the_example_config_validates_and_lists_the_demo_model() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "plano_trio", "validate", "config.example.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
