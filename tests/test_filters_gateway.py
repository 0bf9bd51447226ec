"""Filter chains on the model listener, end to end over real sockets.

Plano's `demos/filter_chains/model_listener_filter` reproduced with our own
fakes: a keyword content guard (`input_filters`), an output redactor
(`output_filters`) and a provider (the mock, or a scripted one that cuts an
event in two).  Clients are the real SDKs: OpenAI Chat and Responses, and
Anthropic Messages.  The MCP filter is the official SDK's server, as in
`test_filters_client`.  Failing filters must answer a clear error in the
client's own shape within the filter timeout; failing output filters leave
the answer as it was and are counted (`/debug/filters`).
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import httpx
import openai
import pytest
import trio
from scripted_provider import chunk, head, scripted_provider

from plano_trio.translate.sse import SseParser
from tests.mock_provider import MockProvider
from tests.support import Gateway, in_thread, provider_config, running_gateway
from tests.test_filters_client import Receive, Scope, Seen, Send, Served, mcp_filters, recording

SECRET = "SECRET_TOKEN"
REDACTED = "[REDACTED]"
FILTER_TIMEOUT_S = 1.0
CHAT_MODEL = "gpt-4o-mini"  # an OpenAI provider on the mock: Chat passes through, Messages are translated
CLAUDE = "claude-sonnet-4-6"  # an Anthropic provider on the mock: Messages pass through


# --- the demo's filters -----------------------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def last_user_text(body: dict[str, Any]) -> str:
    """The last user message of any of the three request shapes (as the demo's content guard)."""
    items = body.get("messages")
    if items is None:
        items = body.get("input")
        if isinstance(items, str):
            return items
    for item in reversed(items or []):
        if isinstance(item, dict) and item.get("role") == "user":
            return _text(item.get("content"))
    return ""


async def _respond(send: Send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]}
    )
    await send({"type": "http.response.body", "body": body})


async def demo_filters(scope: Scope, receive: Receive, send: Send) -> None:
    """The demo's content guard at the filter URL's root, the redactor and misbehaving filters by path."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    kind = scope["path"].split("/")[1]
    content_type = dict(scope["headers"]).get(b"content-type", b"application/json")
    if kind == "v1":  # content guard: the request body back unchanged, or 400 content_blocked
        if "hack" in last_user_text(json.loads(body)).lower():
            detail = {"error": "content_blocked", "message": "Request blocked (matched: 'hack')."}
            await _respond(send, 400, json.dumps({"detail": detail}).encode())
        else:
            await _respond(send, 200, body)
    elif kind == "redact":
        await _respond(send, 200, body.replace(SECRET.encode(), REDACTED.encode()), content_type)
    elif kind == "strip":  # redacts, and loses the event's blank line
        await _respond(send, 200, body.replace(SECRET.encode(), REDACTED.encode()).strip(), content_type)
    elif kind == "broken":
        await _respond(send, 503, b"redactor exploded")
    elif kind == "slow":
        await trio.sleep(30)
    elif kind == "garbage":
        await _respond(send, 200, b"<html>not json</html>", b"text/html")
    elif kind == "invalid":  # a JSON object, but no request of any client API
        await _respond(send, 200, b'{"model": "gpt-4o-mini"}')
    else:
        await _respond(send, 404, b"no such filter")


# --- the world ----------------------------------------------------------------------------------------------


class Filters:
    def __init__(self, http: Served, http_seen: Seen, mcp: Served, mcp_seen: Seen, down: str) -> None:
        self.http = http
        self.http_seen = http_seen
        self.mcp = mcp
        self.mcp_seen = mcp_seen
        self.down = down

    def calls(self, kind: str) -> list[tuple[str, dict[bytes, bytes], bytes]]:
        prefix = "/v1/" if kind == "guard" else f"/{kind}/"
        return [request for request in self.http_seen.requests if request[0].startswith(prefix)]

    def yaml(self) -> str:
        http = self.http.url
        entries = [("content_guard", http, "http")]
        entries += [(name, f"{http}/{name}", "http") for name in ("redact", "strip", "broken")]
        entries += [(name, f"{http}/{name}", "http") for name in ("slow", "garbage", "invalid")]
        entries += [("down", self.down, "http")]
        lines = ["filters:"]
        for filter_id, url, kind in entries:
            lines += [f"  - id: {filter_id}", f"    url: {url}", f"    type: {kind}"]
        lines += [f"  - id: mcp_rewrite\n    url: {self.mcp.url}\n    tool: rewrite"]  # type: mcp (default)
        lines += [f"  - id: input_guards\n    url: {self.mcp.url}/mcp\n    type: mcp"]
        return "\n".join(lines) + f"\nplano_trio:\n  filter_timeout_s: {FILTER_TIMEOUT_S}\n"


@pytest.fixture
async def filters(nursery: trio.Nursery) -> AsyncIterator[Filters]:
    http_seen, mcp_seen = Seen(), Seen()
    http = await Served(nursery).start(recording(demo_filters, http_seen))
    mcp = await Served(nursery).start(recording(mcp_filters(), mcp_seen))
    with socket.socket() as sock:  # bound, then closed: nobody listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield Filters(http, http_seen, mcp, mcp_seen, f"http://127.0.0.1:{port}")
    nursery.cancel_scope.cancel()


def gateway_config(
    provider_url: str, filters: Filters, inputs: Sequence[str] = (), outputs: Sequence[str] = ()
) -> str:
    listener = ""
    if inputs:
        listener += f"    input_filters: [{', '.join(inputs)}]\n"
    if outputs:
        listener += f"    output_filters: [{', '.join(outputs)}]\n"
    claude = f"  - model: anthropic/{CLAUDE}\n    access_key: anthropic-key\n    base_url: {provider_url}\n"
    return provider_config(provider_url, extra_providers=claude, listener_extra=listener, tail=filters.yaml())


@asynccontextmanager
async def demo(
    provider_url: str, filters: Filters, inputs: Sequence[str] = (), outputs: Sequence[str] = ()
) -> AsyncIterator[Gateway]:
    async with running_gateway(gateway_config(provider_url, filters, inputs, outputs)) as gw:
        yield gw


DEMO = {"inputs": ["content_guard"], "outputs": ["redact"]}
"""Plano's demo config: the content guard in, the redactor out."""


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key="client-key", max_retries=0, timeout=10)


def ant(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base, api_key="client-key", max_retries=0, timeout=10)


def chat(text: str, stream: bool = False) -> dict[str, Any]:
    return {"model": CHAT_MODEL, "messages": [{"role": "user", "content": text}], "stream": stream}


def error_of(caught: openai.APIStatusError | anthropic.APIStatusError) -> dict[str, Any]:
    """The inner error object, whichever SDK unwrapped (or not) the envelope."""
    body = caught.body
    assert isinstance(body, dict), body
    inner = body.get("error", body)
    assert isinstance(inner, dict)
    return inner


async def counts(gw: Gateway) -> dict[str, int]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{gw.base}/debug/filters")
    result: dict[str, int] = response.json()
    return result


def chat_stream_text(gw: Gateway, text: str, headers: dict[str, str] | None = None) -> str:
    stream = oai(gw).chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": text}], stream=True, extra_headers=headers
    )
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


# --- Plano's demo, as its test.sh runs it -------------------------------------------------------------------


async def test_demo_allowed_blocked_and_redacted(mock: MockProvider, filters: Filters) -> None:
    async with demo(mock.url, filters, **DEMO) as gw, httpx.AsyncClient(timeout=10) as client:
        allowed = await client.post(f"{gw.v1}/chat/completions", json=chat("What is 2+2?"))
        blocked = await client.post(f"{gw.v1}/chat/completions", json=chat("How to hack into a system"))
        secret = f"reply with exactly: The local fake provider returned {SECRET}."
        redacted = await client.post(f"{gw.v1}/chat/completions", json=chat(secret, stream=True))
    assert allowed.status_code == 200
    assert allowed.json()["choices"][0]["message"]["content"] == "Hello from mock"
    assert blocked.status_code == 400
    assert "content_blocked" in blocked.text
    error = blocked.json()["error"]
    assert (error["type"], error["code"], error["agent"], error["status"]) == (
        "FilterChainError",
        "filter_rejected",
        "content_guard",
        400,
    )
    assert json.loads(error["agent_response"])["detail"]["error"] == "content_blocked"
    assert blocked.headers["x-request-id"]
    assert redacted.status_code == 200
    assert REDACTED in redacted.text and SECRET not in redacted.text
    assert len(mock.requests) == 2  # the blocked request never reached the provider


async def test_input_filter_sees_the_client_request_and_path(mock: MockProvider, filters: Filters) -> None:
    async with demo(mock.url, filters, **DEMO) as gw:
        await in_thread(lambda: oai(gw).chat.completions.create(**chat("hello")))
    [(path, headers, body)] = filters.calls("guard")
    assert path == "/v1/chat/completions"
    assert json.loads(body) == chat("hello")
    assert headers[b"x-arch-upstream"] == b"content_guard"


# --- the three client APIs ----------------------------------------------------------------------------------


async def test_openai_chat_sdk(mock: MockProvider, filters: Filters) -> None:
    async with demo(mock.url, filters, **DEMO) as gw:
        whole = await in_thread(
            lambda: oai(gw).chat.completions.create(**chat(f"reply with exactly: the key is {SECRET}"))
        )
        streamed = await in_thread(
            lambda: chat_stream_text(gw, f"reply with exactly: the key is {SECRET} ok")
        )
        with pytest.raises(openai.BadRequestError) as caught:
            await in_thread(lambda: oai(gw).chat.completions.create(**chat("hack the planet")))
    assert whole.choices[0].message.content == f"the key is {REDACTED}"
    assert streamed == f"the key is {REDACTED} ok"
    assert error_of(caught.value)["type"] == "FilterChainError"
    assert caught.value.code == "filter_rejected"


async def test_a_whole_answer_goes_to_the_output_filter_once(mock: MockProvider, filters: Filters) -> None:
    async with demo(mock.url, filters, outputs=["redact"]) as gw:
        await in_thread(lambda: oai(gw).chat.completions.create(**chat(f"reply with exactly: {SECRET}")))
    [(path, _, body)] = filters.calls("redact")
    assert path == "/redact/v1/chat/completions"
    assert json.loads(body)["choices"][0]["message"]["content"] == SECRET  # the client's API, whole


@pytest.mark.parametrize("model", [CHAT_MODEL, CLAUDE])  # translated from Chat / passed through
async def test_anthropic_messages_sdk(mock: MockProvider, filters: Filters, model: str) -> None:
    prompt = f"reply with exactly: the key is {SECRET} ok"

    def streamed() -> str:
        with ant(gw).messages.stream(
            model=model, max_tokens=64, messages=[{"role": "user", "content": prompt}]
        ) as stream:
            return "".join(stream.text_stream)

    async with demo(mock.url, filters, **DEMO) as gw:
        whole = await in_thread(
            lambda: ant(gw).messages.create(
                model=model, max_tokens=64, messages=[{"role": "user", "content": prompt}]
            )
        )
        text = await in_thread(streamed)
        with pytest.raises(anthropic.BadRequestError) as caught:
            await in_thread(
                lambda: ant(gw).messages.create(
                    model=model,
                    max_tokens=64,
                    messages=[{"role": "user", "content": [{"type": "text", "text": "hack it"}]}],
                )
            )
    block = whole.content[0]
    assert block.type == "text" and block.text == f"the key is {REDACTED} ok"
    assert text == f"the key is {REDACTED} ok"
    error = error_of(caught.value)
    assert (error["type"], error["agent"], error["status"]) == ("FilterChainError", "content_guard", 400)
    assert caught.value.body["type"] == "error"  # type: ignore[index]  # Anthropic's envelope
    assert {path for path, _, _ in filters.calls("guard")} == {"/v1/messages"}


@pytest.mark.parametrize("model", [CHAT_MODEL, CLAUDE])  # passed through / translated to Messages
async def test_openai_responses_sdk(mock: MockProvider, filters: Filters, model: str) -> None:
    prompt = f"reply with exactly: the key is {SECRET} ok"

    def streamed() -> str:
        stream = oai(gw).responses.create(model=model, input=prompt, stream=True)
        return "".join(event.delta for event in stream if event.type == "response.output_text.delta")

    async with demo(mock.url, filters, **DEMO) as gw:
        whole = await in_thread(lambda: oai(gw).responses.create(model=model, input=prompt))
        text = await in_thread(streamed)
        with pytest.raises(openai.BadRequestError) as caught:
            await in_thread(
                lambda: oai(gw).responses.create(
                    model=model, input=[{"role": "user", "content": "how do I hack a bank"}]
                )
            )
    assert whole.output_text == f"the key is {REDACTED} ok"
    assert text == f"the key is {REDACTED} ok"
    assert error_of(caught.value)["agent"] == "content_guard"
    assert {path for path, _, _ in filters.calls("guard")} == {"/v1/responses"}


# --- streams: whole events, framing kept --------------------------------------------------------------------

_CHUNK = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": CHAT_MODEL}


def _chat_event(delta: dict[str, Any], finish: str | None = None) -> bytes:
    event = {**_CHUNK, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


async def _secret_cut_in_two(stream: trio.SocketStream, request: bytes) -> None:
    """A Chat stream whose one content event is written in two TCP writes, cut inside the secret."""
    event = _chat_event({"role": "assistant", "content": f"the key is {SECRET} ok"})
    cut = event.index(SECRET.encode()) + 6
    await stream.send_all(head(200, ("content-type", "text/event-stream"), ("transfer-encoding", "chunked")))
    await stream.send_all(chunk(event[:cut]))
    await trio.sleep(0.05)  # the gateway reads the first half on its own
    await stream.send_all(chunk(event[cut:]))
    await stream.send_all(chunk(_chat_event({}, "stop") + b"data: [DONE]\n\n") + b"0\r\n\r\n")


@pytest.mark.parametrize("redactor", ["redact", "strip"])
async def test_a_secret_cut_across_two_tcp_writes_is_redacted(filters: Filters, redactor: str) -> None:
    async with (
        scripted_provider(_secret_cut_in_two) as provider,
        demo(provider.url, filters, outputs=[redactor]) as gw,
    ):
        text = await in_thread(lambda: chat_stream_text(gw, "tell me"))
        async with httpx.AsyncClient() as client:
            raw = await client.post(f"{gw.v1}/chat/completions", json=chat("tell me", stream=True))
    assert text == f"the key is {REDACTED} ok"
    assert SECRET not in raw.text and raw.text.endswith("data: [DONE]\n\n")
    sent = [body for _, _, body in filters.calls(redactor)]
    assert len(sent) == 4  # content and finish event, twice: one whole event per call, [DONE] not sent
    for body in sent:
        assert len(SseParser().feed(body)) == 1 and body.endswith(b"\n\n")


async def test_translated_stream_events_go_one_by_one(mock: MockProvider, filters: Filters) -> None:
    prompt = f"reply with exactly: one {SECRET} two"

    def streamed() -> list[str]:
        with ant(gw).messages.stream(
            model=CHAT_MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt}]
        ) as stream:
            return [event.type for event in stream]

    async with demo(mock.url, filters, outputs=["strip"]) as gw:
        kinds = await in_thread(streamed)
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    sent = [body for _, _, body in filters.calls("strip")]
    assert all(len(SseParser().feed(body + b"\n\n")) == 1 for body in sent)
    assert {SseParser().feed(body + b"\n\n")[0].event for body in sent} >= {"message_start", "message_stop"}


# --- MCP filters --------------------------------------------------------------------------------------------


async def test_mcp_filter_rewrites_and_blocks_through_the_gateway(
    mock: MockProvider, filters: Filters
) -> None:
    async with demo(mock.url, filters, inputs=["input_guards", "mcp_rewrite"]) as gw:
        first = await in_thread(lambda: oai(gw).chat.completions.create(**chat("reply with exactly: pong")))
        second = await in_thread(lambda: oai(gw).chat.completions.create(**chat("reply with exactly: ping")))
        with pytest.raises(openai.BadRequestError) as caught:
            await in_thread(lambda: oai(gw).chat.completions.create(**chat("hack it")))
        counted = await counts(gw)
    assert (first.choices[0].message.content, second.choices[0].message.content) == (
        "pong [mcp]",
        "ping [mcp]",
    )
    assert mock.requests[-1].json["seen_path"] == "/v1/chat/completions"
    error = error_of(caught.value)
    assert (error["agent"], error["status"]) == ("input_guards", 400)
    assert "I can only help with TechCorp questions." in error["agent_response"]
    assert counted["mcp_initializations"] == 2  # one per MCP filter, reused by all three requests
    assert filters.mcp_seen.count("initialize") == 2
    assert len(mock.requests) == 2


# --- filters failing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filter_id", "status", "words"),
    [
        ("down", 500, "cannot connect"),
        ("slow", 500, f"timed out after {FILTER_TIMEOUT_S:g}s"),
        ("garbage", 500, "not a JSON object: <html>not json</html>"),
        ("broken", 500, "answered HTTP 503: redactor exploded"),
        ("invalid", 400, "Input filter returned invalid request: Missing required parameter: 'messages'"),
    ],
)
async def test_failing_input_filters_answer_clearly_in_time(
    mock: MockProvider, filters: Filters, filter_id: str, status: int, words: str
) -> None:
    async with demo(mock.url, filters, inputs=[filter_id]) as gw:
        started = trio.current_time()
        with pytest.raises(openai.APIStatusError) as chat_error:
            await in_thread(lambda: oai(gw).chat.completions.create(**chat("hi")))
        elapsed = trio.current_time() - started
        with pytest.raises(anthropic.APIStatusError) as messages_error:
            await in_thread(
                lambda: ant(gw).messages.create(
                    model=CHAT_MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
                )
            )
    assert elapsed < FILTER_TIMEOUT_S + 2
    for caught in (chat_error.value, messages_error.value):
        assert caught.status_code == status
        assert words in error_of(caught)["message"]
        if status == 500:
            assert error_of(caught)["message"].startswith("Filter chain processing failed: ")
    assert messages_error.value.body["type"] == "error"  # type: ignore[index]
    assert mock.requests == []


async def test_failing_output_filters_pass_the_answer_through_and_are_counted(
    mock: MockProvider, filters: Filters
) -> None:
    async with demo(mock.url, filters, outputs=["broken"]) as gw:
        text = await in_thread(lambda: chat_stream_text(gw, f"reply with exactly: the key is {SECRET}"))
        whole = await in_thread(
            lambda: oai(gw).chat.completions.create(**chat(f"reply with exactly: {SECRET}"))
        )
        counted = await counts(gw)
    assert text == f"the key is {SECRET}"
    assert whole.choices[0].message.content == SECRET
    tried = len(filters.calls("broken"))
    assert tried >= 3  # the whole answer, and each event of the stream but [DONE]
    assert counted["output_filter_errors"] == tried


async def test_a_slow_output_filter_is_bounded(mock: MockProvider, filters: Filters) -> None:
    async with demo(mock.url, filters, outputs=["slow"]) as gw:
        started = trio.current_time()
        whole = await in_thread(
            lambda: oai(gw).chat.completions.create(**chat(f"reply with exactly: {SECRET}"))
        )
        elapsed = trio.current_time() - started
        counted = await counts(gw)
    assert whole.choices[0].message.content == SECRET
    assert FILTER_TIMEOUT_S <= elapsed < FILTER_TIMEOUT_S + 2
    assert counted["output_filter_errors"] == 1


# --- headers and cancellation -------------------------------------------------------------------------------

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_filter_calls_carry_the_request_id_and_traceparent(
    mock: MockProvider, filters: Filters
) -> None:
    async with demo(mock.url, filters, **DEMO) as gw, httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"{gw.v1}/chat/completions", json=chat("hi", stream=True), headers={"traceparent": TRACEPARENT}
        )
        chosen = await client.post(
            f"{gw.v1}/chat/completions", json=chat("hi"), headers={"x-request-id": "client-chosen-1"}
        )
    ours = response.headers["x-request-id"].encode()
    first = [headers for path, headers, _ in filters.http_seen.requests if headers[b"x-request-id"] == ours]
    assert len(first) >= 2  # the guard and the redactor
    assert all(headers[b"traceparent"] == TRACEPARENT.encode() for headers in first)
    assert chosen.headers["x-request-id"] == "client-chosen-1"
    assert filters.http_seen.requests[-1][1][b"x-request-id"] == b"client-chosen-1"


async def test_a_client_that_leaves_cancels_its_input_filter_call(
    mock: MockProvider, filters: Filters
) -> None:
    arrived, gone = trio.Event(), trio.Event()

    async def waits_for_hang_up(stream: trio.SocketStream, request: bytes) -> None:
        arrived.set()
        while await stream.receive_some(65536):
            pass
        gone.set()

    async with scripted_provider(waits_for_hang_up) as hanging:
        config = gateway_config(mock.url, filters, inputs=["hanging"])
        config = config.replace(
            "filters:\n", f"filters:\n  - id: hanging\n    url: {hanging.url}\n    type: http\n", 1
        )
        config = config.replace(f"filter_timeout_s: {FILTER_TIMEOUT_S}", "filter_timeout_s: 30")
        async with running_gateway(config) as gw:
            stream = await trio.open_tcp_stream(gw.host, gw.port)
            body = json.dumps(chat("hi")).encode()
            await stream.send_all(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            with trio.fail_after(5):
                await arrived.wait()
            await stream.aclose()
            with trio.fail_after(3):
                await gone.wait()
    assert mock.requests == []
