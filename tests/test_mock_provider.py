"""The mock provider must be indistinguishable from the real APIs for the official SDKs, since the gateway's
tests and benchmarks trust it as ground truth.  Everything here talks to it over real sockets."""

from __future__ import annotations

import http.client
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from plano_trio.translate.eventstream import EventStreamDecoder
from tests.mock_provider import MockProvider

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}
USER: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server() -> Iterator[MockProvider]:
    with MockProvider() as mock:
        yield mock


@pytest.fixture
def mock(server: MockProvider) -> MockProvider:
    server.clear()
    return server


@pytest.fixture
def oai(mock: MockProvider) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=mock.url + "/v1", api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(mock: MockProvider) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=mock.url, api_key="sk-ant-test", max_retries=0) as client:
        yield client


def post(mock: MockProvider, path: str, body: Any, **headers: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=5)
    conn.request("POST", path, json.dumps(body), {"content-type": "application/json", **headers})
    return conn.getresponse()


# --- OpenAI Chat Completions -------------------------------------------------------------------------------


def test_chat_non_stream_and_recording(mock: MockProvider, oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.content == "Hello from mock"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 5

    [req] = mock.requests
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.headers["authorization"] == "Bearer sk-test"
    assert req.json == {"model": "gpt-4o-mini", "messages": USER}
    assert json.loads(req.body) == req.json
    assert [kind for _, kind, _ in mock.events] == ["connect"]


def test_chat_stream_parsed_by_sdk(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Reply with exactly: one two three four"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-mock-chunks": "4"},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content for c in chunks[1:5]]
    assert deltas == ["one", " two", " three", " four"]
    assert chunks[5].choices[0].finish_reason == "stop"
    assert chunks[6].choices == [] and chunks[6].usage is not None
    assert chunks[6].usage.completion_tokens == 4


def test_chat_tool_call_streamed_and_reassembled(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(
        model="m",
        messages=[{"role": "user", "content": "please call tool"}],
        tools=[WEATHER_TOOL],
        extra_headers={"x-mock-chunks": "6"},
    ) as stream:
        fragments = [
            e.arguments_delta
            for e in stream
            if e.type == "tool_calls.function.arguments.delta" and e.arguments_delta
        ]
        final = stream.get_final_completion()
    assert len(fragments) == 6
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Seattle"}

    plain = oai.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "call tool"}], tools=[WEATHER_TOOL]
    )
    [plain_call] = plain.choices[0].message.tool_calls or []
    assert plain_call.type == "function" and plain_call.function.arguments == '{"location":"Seattle"}'


def test_provider_paths_and_azure_deployment_model(mock: MockProvider) -> None:
    for path in (
        "/openai/v1/chat/completions",
        "/v1beta/openai/chat/completions",
        "/api/paas/v4/chat/completions",
    ):
        assert json.loads(post(mock, path, {"model": "x", "messages": USER}).read())["model"] == "x"
    azure = "/openai/deployments/my-dep/chat/completions?api-version=2024-10-21"
    resp = post(mock, azure, {"messages": USER})
    assert json.loads(resp.read())["model"] == "my-dep"
    assert mock.requests[-1].path == "/openai/deployments/my-dep/chat/completions"
    assert mock.requests[-1].target.endswith("?api-version=2024-10-21")


# --- Anthropic Messages ------------------------------------------------------------------------------------


def test_anthropic_messages(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="claude-x", max_tokens=50, messages=USER)
    assert message.content[0].type == "text" and message.content[0].text == "Hello from mock"
    assert (message.stop_reason, message.model, message.usage.output_tokens) == ("end_turn", "claude-x", 5)

    with claude.messages.stream(model="claude-x", max_tokens=50, messages=USER) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == "Hello from mock" and len(texts) == 5
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5


def test_anthropic_event_sequence_and_tool_use(mock: MockProvider, claude: anthropic.Anthropic) -> None:
    body: Any = {
        "model": "c",
        "max_tokens": 9,
        "stream": True,
        "messages": [{"role": "user", "content": "call tool"}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
    }
    raw = post(mock, "/v1/messages", body, **{"x-mock-chunks": "3"}).read().decode()
    events = [line[7:] for line in raw.splitlines() if line.startswith("event: ")]
    assert events == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]

    with claude.messages.stream(
        model="c", max_tokens=9, messages=body["messages"], tools=body["tools"]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    block = final.content[0]
    assert block.type == "tool_use" and block.name == "get_weather" and block.input == {"location": "Seattle"}


# --- OpenAI Responses --------------------------------------------------------------------------------------


def test_responses_api(oai: openai.OpenAI) -> None:
    response = oai.responses.create(model="gpt-5", input="hi")
    assert response.output_text == "Hello from mock" and response.status == "completed"
    assert response.usage is not None and response.usage.output_tokens == 5

    with oai.responses.stream(
        model="gpt-5", input="reply with exactly: streamed words", extra_headers={"x-mock-chunks": "2"}
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 2,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert final.output_text == "streamed words"

    call = oai.responses.create(
        model="gpt-5",
        input=[{"role": "user", "content": "call tool"}],
        tools=[{"type": "function", "name": "lookup", "parameters": {}, "strict": False}],
    )
    assert call.output[0].type == "function_call" and call.output[0].name == "lookup"


# --- Amazon Bedrock Converse / ConverseStream -------------------------------------------------------------

CONVERSE = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
TOOL_CONFIG: Any = {
    "tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]
}


def converse_body(text: str, *, tools: bool = False) -> Any:
    body: Any = {
        "messages": [{"role": "user", "content": [{"text": text}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 50},
    }
    if tools:
        body["toolConfig"] = TOOL_CONFIG
    return body


def decode_frames(data: bytes) -> list[tuple[dict[str, str], Any]]:
    """A tiny event-stream decoder, independent of the mock's encoder: asserts both CRCs of every frame
    and that nothing trails the last one; returns (string headers, decoded JSON payload) per frame."""
    frames = []
    while data:
        total, headers_length, prelude_crc = struct.unpack_from(">III", data)
        assert len(data) >= total and zlib.crc32(data[:8]) == prelude_crc
        assert zlib.crc32(data[: total - 4]) == struct.unpack_from(">I", data, total - 4)[0]
        headers, pos = {}, 12
        while pos < 12 + headers_length:
            name_length = data[pos]
            name = data[pos + 1 : pos + 1 + name_length].decode()
            kind, value_length = struct.unpack_from(">BH", data, pos + 1 + name_length)
            assert kind == 7  # string
            pos += 4 + name_length
            headers[name] = data[pos : pos + value_length].decode()
            pos += value_length
        frames.append((headers, json.loads(data[pos : total - 4])))
        data = data[total:]
    return frames


def kinds(frames: list[tuple[dict[str, str], Any]]) -> list[str]:
    return [h.get(":event-type") or f"!{h[':exception-type']}" for h, _ in frames]


def test_converse_json_text_tool_use_and_recording(mock: MockProvider) -> None:
    resp = post(mock, CONVERSE, converse_body("hi"))
    assert resp.getheader("content-type") == "application/json" and resp.getheader("x-amzn-requestid")
    reply = json.loads(resp.read())
    assert reply["output"] == {"message": {"role": "assistant", "content": [{"text": "Hello from mock"}]}}
    assert reply["stopReason"] == "end_turn" and reply["metrics"]["latencyMs"] >= 1
    usage = reply["usage"]
    assert usage["outputTokens"] == 5 and usage["totalTokens"] == usage["inputTokens"] + 5

    [req] = mock.requests
    assert req.path == CONVERSE and req.target == CONVERSE and req.json == converse_body("hi")

    # The last user turn decides, past a toolUse/toolResult exchange; Converse blocks carry untyped text.
    history: Any = converse_body("call tool", tools=True)
    history["messages"] += [
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}},
                {"text": "Reply with exactly: It is sunny."},
            ],
        },
    ]
    reply = json.loads(post(mock, CONVERSE + "?x-mock-chunks=2", history).read())
    assert reply["output"]["message"]["content"] == [{"text": "It is sunny."}]
    assert reply["usage"]["outputTokens"] == 2  # query-string control works too
    assert mock.requests[-1].path == CONVERSE and mock.requests[-1].target.endswith("?x-mock-chunks=2")

    first, second = (
        json.loads(post(mock, CONVERSE, converse_body("call tool", tools=True)).read()) for _ in "ab"
    )
    assert first["stopReason"] == "tool_use"
    [block] = first["output"]["message"]["content"]
    tool_use = block["toolUse"]
    assert tool_use["toolUseId"].startswith("tooluse_") and tool_use["name"] == "get_weather"
    assert tool_use["input"] == {"location": "Seattle"}
    assert second["output"]["message"]["content"][0]["toolUse"]["toolUseId"] != tool_use["toolUseId"]
    # ``call tool`` without a toolConfig is just text
    plain = json.loads(post(mock, CONVERSE, converse_body("call tool")).read())
    assert plain["stopReason"] == "end_turn"


def test_converse_stream_frames(mock: MockProvider) -> None:
    resp = post(mock, CONVERSE + "-stream", converse_body("hi"), **{"x-mock-chunks": "3"})
    assert resp.getheader("content-type") == "application/vnd.amazon.eventstream"
    assert resp.getheader("transfer-encoding") == "chunked"
    raw = resp.read()
    frames = decode_frames(raw)
    assert kinds(frames) == [
        "messageStart",
        *["contentBlockDelta"] * 3,
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert all(h[":content-type"] == "application/json" and h[":message-type"] == "event" for h, _ in frames)
    assert all(isinstance(payload["p"], str) for _, payload in frames)  # Bedrock's padding field
    assert frames[0][1]["role"] == "assistant"
    assert "".join(p["delta"]["text"] for _, p in frames[1:4]) == "Hello from mock"
    assert {p["contentBlockIndex"] for _, p in frames[1:5]} == {0}
    assert frames[5][1]["stopReason"] == "end_turn"
    assert frames[6][1]["usage"]["outputTokens"] == 3 and frames[6][1]["metrics"] == {"latencyMs": 1}

    # The gateway's decoder agrees, fed in awkward pieces.
    decoder = EventStreamDecoder()
    messages = [m for i in range(0, len(raw), 7) for m in decoder.feed(raw[i : i + 7])]
    decoder.finish()
    assert [(m.headers, json.loads(m.payload)) for m in messages] == frames

    # Tool use: the id-bearing contentBlockStart is re-checksummed after every stamp (decode_frames checks).
    starts = []
    for _ in range(2):
        body = converse_body("call tool", tools=True)
        frames = decode_frames(post(mock, CONVERSE + "-stream", body, **{"x-mock-chunks": "4"}).read())
        assert kinds(frames) == [
            "messageStart",
            "contentBlockStart",
            *["contentBlockDelta"] * 4,
            "contentBlockStop",
            "messageStop",
            "metadata",
        ]
        start = frames[1][1]
        assert start["contentBlockIndex"] == 0 and start["start"]["toolUse"]["name"] == "get_weather"
        starts.append(start["start"]["toolUse"]["toolUseId"])
        fragments = [p["delta"]["toolUse"]["input"] for _, p in frames[2:6]]
        assert all(fragments) and "".join(fragments) == '{"location":"Seattle"}'
        assert frames[7][1]["stopReason"] == "tool_use"
    assert starts[0].startswith("tooluse_") and starts[0] != starts[1]


def test_converse_stream_exception_drop_and_padding(mock: MockProvider) -> None:
    ctl = {"x-mock-chunks": "2", "x-mock-bedrock-exception": "throttlingException"}
    frames = decode_frames(post(mock, CONVERSE + "-stream", converse_body("hi"), **ctl).read())
    assert kinds(frames) == ["messageStart", "contentBlockDelta", "contentBlockDelta", "!throttlingException"]
    headers, payload = frames[-1]
    assert headers[":message-type"] == "exception" and headers[":content-type"] == "application/json"
    assert payload == {"message": "Too many requests, please wait before trying again."}
    ctl["x-mock-error-message"] = "stream broke"
    ctl["x-mock-bedrock-exception"] = "modelStreamErrorException"
    frames = decode_frames(post(mock, CONVERSE + "-stream", converse_body("hi"), **ctl).read())
    assert frames[-1] == (
        {
            ":exception-type": "modelStreamErrorException",
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        {"message": "stream broke"},
    )

    # Drop after two deltas, on the delayed path (one HTTP chunk per frame write).
    ctl = {"x-mock-chunks": "4", "x-mock-drop-after": "2", "x-mock-delay-ms": "1"}
    resp = post(mock, CONVERSE + "-stream", converse_body("call tool", tools=True), **ctl)
    with pytest.raises(http.client.IncompleteRead) as dropped:
        resp.read()
    assert kinds(decode_frames(dropped.value.partial)) == [
        "messageStart",
        "contentBlockStart",
        *["contentBlockDelta"] * 2,
    ]

    ctl = {"x-mock-chunks": "4", "x-mock-chunk-bytes": "100"}
    frames = decode_frames(post(mock, CONVERSE + "-stream", converse_body("hi"), **ctl).read())
    texts = [p["delta"]["text"] for h, p in frames if h[":event-type"] == "contentBlockDelta"]
    assert len(texts) == 4 and all(len(t) == 100 for t in texts) and texts[0].startswith("He")
    reply = json.loads(post(mock, CONVERSE, converse_body("hi"), **ctl).read())
    assert reply["output"]["message"]["content"] == [{"text": "".join(texts)}]


def test_converse_error_shapes(mock: MockProvider) -> None:
    resp = post(mock, CONVERSE + "-stream", converse_body("hi"), **{"x-mock-status": "429"})
    assert resp.status == 429 and resp.getheader("content-type") == "application/json"
    assert (resp.getheader("x-amzn-errortype") or "").startswith("ThrottlingException:")
    assert json.loads(resp.read()) == {"message": "Too many requests, please wait before trying again."}

    ctl = {"x-mock-status": "400", "x-mock-error-message": "bad input"}
    resp = post(mock, CONVERSE, converse_body("hi"), **ctl)
    assert resp.status == 400 and (resp.getheader("x-amzn-errortype") or "").startswith(
        "ValidationException:"
    )
    assert json.loads(resp.read()) == {"message": "bad input"}

    conn = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=5)
    conn.request("POST", CONVERSE, b"{not json")
    resp = conn.getresponse()
    assert resp.status == 400 and (resp.getheader("x-amzn-errortype") or "").startswith("ValidationException")
    assert "message" in json.loads(resp.read())
    conn.request("POST", "/model/m/invoke", b"{}")
    assert conn.getresponse().status == 404
    conn.close()


# --- errors, drops, delays ---------------------------------------------------------------------------------


def test_error_status_in_provider_shapes(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    with pytest.raises(openai.RateLimitError) as rate:
        oai.chat.completions.create(model="m", messages=USER, extra_headers={"x-mock-status": "429"})
    assert rate.value.status_code == 429 and rate.value.code == "rate_limit_exceeded"
    assert "Rate limit" in rate.value.message

    with pytest.raises(openai.BadRequestError, match="custom failure"):
        oai.responses.create(
            model="m",
            input="x",
            stream=True,
            extra_headers={"x-mock-status": "400", "x-mock-error-message": "custom failure"},
        )

    with pytest.raises(anthropic.OverloadedError) as overloaded:
        claude.messages.create(model="c", max_tokens=5, messages=USER, extra_headers={"x-mock-status": "529"})
    expected = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert overloaded.value.body == expected


def test_drop_after_breaks_the_stream(mock: MockProvider, oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="m", messages=USER, stream=True, extra_headers={"x-mock-chunks": "5", "x-mock-drop-after": "2"}
    )
    received = []
    with pytest.raises(openai.APIConnectionError):  # the SDK wraps httpx's "incomplete chunked read"
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["", "He", "llo"]  # the role chunk, then exactly two deltas
    assert mock.wait_for(lambda m: any(kind == "disconnect" for _, kind, _ in m.events))
    assert not any(kind == "client_closed_midstream" for _, kind, _ in mock.events)


def test_delays_flush_each_chunk_and_client_disconnect_is_seen(mock: MockProvider) -> None:
    start = time.monotonic()
    resp = post(
        mock,
        "/v1/chat/completions",
        {"model": "m", "messages": USER, "stream": True},
        **{"x-mock-ttft-ms": "60", "x-mock-delay-ms": "40", "x-mock-chunks": "3"},
    )
    assert resp.getheader("transfer-encoding") == "chunked"
    assert time.monotonic() - start >= 0.06
    arrivals = []
    while line := resp.readline():
        if b'"delta":{"content"' in line:
            arrivals.append(time.monotonic())
    assert len(arrivals) == 3 and arrivals[2] - arrivals[0] >= 0.07

    resp = post(
        mock,
        "/v1/chat/completions",
        {"model": "m", "messages": USER, "stream": True},
        **{"x-mock-delay-ms": "30", "x-mock-chunks": "50"},
    )
    resp.readline()
    resp.close()  # hang up mid-stream
    assert mock.wait_for(lambda m: any(kind == "client_closed_midstream" for _, kind, _ in m.events))


def test_padding_keeps_stream_and_json_consistent(mock: MockProvider) -> None:
    ctl = {"x-mock-chunks": "20", "x-mock-chunk-bytes": "180"}
    text = json.loads(post(mock, "/v1/chat/completions", {"model": "m", "messages": USER}, **ctl).read())[
        "choices"
    ][0]["message"]["content"]
    raw = post(mock, "/v1/chat/completions", {"model": "m", "messages": USER, "stream": True}, **ctl).read()
    deltas = [
        json.loads(line[6:])["choices"][0]["delta"].get("content")
        for line in raw.splitlines()
        if line.startswith(b"data: {")
    ]
    pieces = [d for d in deltas[1:] if d is not None]
    assert len(pieces) == 20 and all(len(p) == 180 for p in pieces)
    assert "".join(pieces) == text and text.startswith("H")


# --- HTTP plumbing -----------------------------------------------------------------------------------------


def test_keep_alive_chunked_upload_and_routes(mock: MockProvider) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=5)
    body = json.dumps({"model": "m", "messages": USER, "stream": True}).encode()
    conn.request("POST", "/v1/chat/completions", iter([body[:10], body[10:]]), encode_chunked=True)
    assert conn.getresponse().read().endswith(b"data: [DONE]\n\n")
    conn.request("GET", "/healthz")
    assert conn.getresponse().read() == b'{"status":"ok"}'
    conn.request("GET", "/v1/models")
    resp = conn.getresponse()
    assert resp.status == 404 and "error" in json.loads(resp.read())
    conn.request("POST", "/v1/messages", b"{not json")
    resp = conn.getresponse()
    assert resp.status == 400 and json.loads(resp.read())["type"] == "error"
    conn.close()

    assert mock.connections_opened == 1
    assert mock.requests[0].json == json.loads(body)
    assert {r.connection_id for r in mock.requests} == {mock.requests[0].connection_id}


def test_sdk_reuses_one_connection(mock: MockProvider, oai: openai.OpenAI) -> None:
    # JSON only: the sync SDK closes a stream's response at [DONE] without draining the final chunk,
    # so it never reuses a connection after streaming (the keep-alive test above covers streams).
    for _ in range(3):
        oai.chat.completions.create(model="m", messages=USER)
    assert len(mock.requests) == 3 and mock.connections_opened == 1


def test_bad_control_value_is_a_400(mock: MockProvider) -> None:
    resp = post(mock, "/v1/chat/completions", {"model": "m", "messages": USER}, **{"x-mock-chunks": "many"})
    assert resp.status == 400 and "x-mock" not in resp.read().decode().lower().replace("bad mock", "")


def test_cli_with_two_workers() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    argv = [sys.executable, "-m", "tests.mock_provider", "--port=0", "--workers=2", "--chunks=2"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        body = json.dumps({"model": "c", "messages": USER, "stream": True})
        conn.request("POST", "/v1/messages?chunks=3", body)
        raw = conn.getresponse().read()
        assert raw.count(b"event: content_block_delta") == 3  # query param beats the CLI default
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0


def test_stdlib_event_loop_fallback() -> None:
    with MockProvider(use_uvloop=False) as plain:
        body = {"model": "m", "messages": USER, "stream": True}
        raw = post(plain, "/v1/chat/completions", body, **{"x-mock-delay-ms": "1"}).read()
        assert raw.count(b"data: ") == 8 and raw.endswith(b"data: [DONE]\n\n")
