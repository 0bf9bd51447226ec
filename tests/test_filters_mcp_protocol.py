"""The sans-I/O MCP client side of filters, and the filters' error bodies: tables and properties.

Expected values for Plano's behaviour come from its pipeline tests and the
SDK replies observed against `mcp`'s server (CRLF SSE, pretty-printed text
content, `isError` with the tool's message).
"""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.filters import mcp_protocol as mcp
from plano_trio.filters.errors import (
    FilterFailed,
    FilterRejected,
    agent_listener_failure,
    agent_listener_rejection,
    model_listener_failure,
    model_listener_rejection,
    snippet,
)

RID = "6f1c1b9e-5c1e-4f43-9a55-0b3c52d1e0aa"


def _rpc(result: Any = None, *, error: Any = None, rid: Any = RID) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid}
    if error is not None:
        message["error"] = error
    else:
        message["result"] = result
    return json.dumps(message).encode()


def _sse(*datas: bytes, event: str | None = "message", crlf: bool = False) -> bytes:
    out = b""
    for data in datas:
        head = f"event: {event}\n".encode() if event is not None else b""
        out += head + b"data: " + data + b"\n\n"
    return out.replace(b"\n", b"\r\n") if crlf else out


def _tool(body: Any, **extra: Any) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": json.dumps(body, indent=2)}], "isError": False, **extra}


BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


# --- requests -------------------------------------------------------------------------------------------


def test_initialize_request_is_plano_s() -> None:
    assert json.loads(mcp.initialize_request("1")) == {
        "jsonrpc": "2.0",
        "id": "1",
        "method": "initialize",
        "params": {
            "protocolVersion": "2024-11-05",
            "capabilities": {},
            "clientInfo": {"name": "brightstaff", "version": "1.0.0"},
        },
    }


def test_initialized_notification_has_no_id() -> None:
    assert json.loads(mcp.initialized_notification()) == {
        "jsonrpc": "2.0",
        "method": "notifications/initialized",
    }


def test_tool_call_embeds_the_body_as_json() -> None:
    body = b' {"model": "gpt-4o", "messages": [{"role": "user", "content": "caf\xc3\xa9"}]} '
    sent = json.loads(mcp.tool_call_request(RID, "input_guards", body, "/v1/chat/completions"))
    assert sent == {
        "jsonrpc": "2.0",
        "id": RID,
        "method": "tools/call",
        "params": {
            "name": "input_guards",
            "arguments": {"body": json.loads(body), "path": "/v1/chat/completions"},
        },
    }


@pytest.mark.parametrize("body", [b"", b"data: {}\n\n", b"{", b'{"a":1} x', b"[" * 100_000])
def test_tool_call_refuses_a_body_that_is_not_json(body: bytes) -> None:
    with pytest.raises(mcp.McpReplyError, match="not JSON"):
        mcp.tool_call_request(RID, "t", body, "/p")


def test_request_ids_are_fresh_strings() -> None:
    assert mcp.new_request_id() != mcp.new_request_id()


# --- replies --------------------------------------------------------------------------------------------

FILTERED = _tool({"model": "gpt-4o", "messages": []})

OK_REPLIES = [
    pytest.param(b"text/event-stream", _sse(_rpc(FILTERED)), id="plano-sse"),
    pytest.param(b"text/event-stream; charset=utf-8", _sse(_rpc(FILTERED), crlf=True), id="sdk-crlf"),
    pytest.param(b"text/event-stream", _sse(_rpc(FILTERED), event=None), id="no-event-line"),
    pytest.param(
        b"text/event-stream",
        _sse(b'{"jsonrpc":"2.0","method":"notifications/progress","params":{}}', _rpc(FILTERED)),
        id="notification-first",
    ),
    pytest.param(
        b"text/event-stream",
        _sse(_rpc({"other": 1}, rid="not-ours"), _rpc(FILTERED)),
        id="other-response-first",
    ),
    pytest.param(
        b"text/event-stream",
        b"id: 0\nretry: 100\ndata:\n\n" + b": keep-alive\n\n" + _sse(_rpc(FILTERED)),
        id="priming-event-and-comment",
    ),
    pytest.param(b"text/event-stream", _sse(b"not json", _rpc(FILTERED)), id="garbage-event-skipped"),
    pytest.param(
        b"text/event-stream",
        _sse(_rpc(FILTERED), event="endpoint") + _sse(_rpc(FILTERED)),
        id="other-event-type-skipped",
    ),
    pytest.param(b"text/event-stream", _sse(_rpc(FILTERED))[:-2], id="last-event-unterminated"),
    pytest.param(b"application/json", _rpc(FILTERED), id="json"),
    pytest.param(b"application/json", b"\n " + _rpc(FILTERED) + b"\n", id="json-whitespace"),
    pytest.param(None, _rpc(FILTERED), id="sniffed-json"),
    pytest.param(b"text/plain", _sse(_rpc(FILTERED)), id="sniffed-sse"),
    pytest.param(
        b"application/json",
        b"[" + _rpc({"x": 1}, rid="other") + b"," + _rpc(FILTERED) + b"]",
        id="json-batch",
    ),
]


@pytest.mark.parametrize(("content_type", "body"), OK_REPLIES)
def test_replies_that_carry_our_response(content_type: bytes | None, body: bytes) -> None:
    reply = mcp.parse_reply(content_type, body, RID)
    assert json.loads(mcp.tool_outcome(reply)) == {"model": "gpt-4o", "messages": []}


BAD_REPLIES = [
    pytest.param(b"text/event-stream", b"", "no JSON-RPC response", id="empty-sse"),
    pytest.param(b"application/json", b"", "empty reply", id="empty-json"),
    pytest.param(None, b"  \n", "empty reply", id="blank"),
    pytest.param(b"text/event-stream", _sse(b"nope"), "1 unreadable", id="only-garbage"),
    pytest.param(b"text/event-stream", _sse(_rpc({}, rid="x")), "no JSON-RPC response", id="other-id"),
    pytest.param(b"text/event-stream", _sse(_rpc({}, rid=1)), "no JSON-RPC response", id="numeric-id"),
    pytest.param(b"application/json", _rpc({}, rid="x"), "not the response", id="json-other-id"),
    pytest.param(b"application/json", b"{", "not a JSON-RPC message", id="json-truncated"),
    pytest.param(b"application/json", b"[1, 2]", "not a JSON-RPC message", id="json-not-messages"),
    pytest.param(b"application/json", b'"str"', "not a JSON-RPC message", id="json-string"),
    pytest.param(
        b"application/json", b'{"jsonrpc":"2.0","id":"%s"}' % RID.encode(), "neither", id="no-result"
    ),
    pytest.param(b"application/json", b"[" * 50_000 + b"]" * 50_000, "not a JSON-RPC", id="deep"),
]


@pytest.mark.parametrize(("content_type", "body", "message"), BAD_REPLIES)
def test_replies_without_a_usable_response(content_type: bytes | None, body: bytes, message: str) -> None:
    with pytest.raises(mcp.McpReplyError, match=message):
        mcp.parse_reply(content_type, body, RID)


def test_the_reader_stops_at_our_response_without_the_end_of_the_stream() -> None:
    reader = mcp.ReplyReader(b"text/event-stream", RID)
    assert reader.feed(b"event: message\ndata: ") is None
    found = reader.feed(_rpc(FILTERED) + b"\n\nevent: message\ndata: {never finished")
    assert found is not None and json.loads(mcp.tool_outcome(found))["model"] == "gpt-4o"


@pytest.mark.parametrize("content_type", [b"text/event-stream", b"application/json", None])
def test_replies_are_bounded(content_type: bytes | None) -> None:
    reader = mcp.ReplyReader(content_type, RID, limit=1000)
    reader.feed(b"x" * 600 if content_type == b"text/event-stream" else b"{" + b" " * 599)
    with pytest.raises(mcp.McpReplyError, match="larger than 1000"):
        reader.feed(b"y" * 401)


def test_a_long_line_is_an_error_not_memory() -> None:
    reader = mcp.ReplyReader(b"text/event-stream", RID, limit=100)
    with pytest.raises(mcp.McpReplyError):
        reader.feed(b"data: " + b"z" * 99)


@pytest.mark.parametrize(
    ("content_type", "mode"),
    [
        (b"text/event-stream", "sse"),
        (b"Text/Event-Stream ; charset=utf-8", "sse"),
        (b"application/json", "json"),
        (b"application/json-rpc+json", "json"),
        (b"text/html", None),
        (None, None),
    ],
)
def test_reply_mode(content_type: bytes | None, mode: str | None) -> None:
    assert mcp.reply_mode(content_type) == mode


# --- outcomes -------------------------------------------------------------------------------------------


def _reply(result: Any = None, *, error: Any = None) -> mcp.RpcReply:
    return mcp.parse_reply(b"application/json", _rpc(result, error=error), RID)


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        # FastMCP's structured output wins over the text (Plano's order).
        ({"structuredContent": {"result": {"a": 1}}, **_tool({"b": 2})}, b'{"a": 1}'),  # as sent
        ({"structuredContent": {"result": {"a": 1}}}, {"a": 1}),
        ({"structuredContent": {"other": 1}, **_tool({"b": 2})}, {"b": 2}),
        ({"structuredContent": [1], **_tool({"b": 2})}, {"b": 2}),
        ({"structuredContent": None, **_tool({"b": 2})}, {"b": 2}),
        (_tool({"b": 2}), {"b": 2}),
        ({"content": [{"type": "text", "text": "[1, 2]"}]}, [1, 2]),
        ({"structuredContent": {"result": None}}, None),
        ({**_tool({"b": 2}), "isError": "true"}, {"b": 2}),  # only JSON true counts, as Plano
        ({**_tool({"b": 2}), "isError": 1}, {"b": 2}),
    ],
)
def test_tool_outcome_bodies(result: Any, expected: Any) -> None:
    out = mcp.tool_outcome(_reply(result))
    if isinstance(expected, bytes):
        assert out == expected
    else:
        assert json.loads(out) == expected


@pytest.mark.parametrize(
    ("result", "text"),
    [
        ({"content": [{"type": "text", "text": "bad tool call"}], "isError": True}, "bad tool call"),
        ({"content": [{"type": "text", "text": "first"}, {"text": "second"}], "isError": True}, "first"),
        ({"content": [], "isError": True}, "unknown_error"),
        ({"content": [{"type": "image", "data": "..."}], "isError": True}, "unknown_error"),
        ({"content": "no list", "isError": True}, "unknown_error"),
        ({"content": [{"text": 5}], "isError": True}, "unknown_error"),
        ({"isError": True, "structuredContent": {"result": {"a": 1}}}, "unknown_error"),
    ],
)
def test_is_error_is_a_rejection_with_the_first_text(result: Any, text: str) -> None:
    with pytest.raises(mcp.McpToolError) as caught:
        mcp.tool_outcome(_reply(result))
    assert caught.value.text == text


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({}, "neither structuredContent.result nor text"),
        ({"content": [{"type": "text", "text": "plain words"}]}, "not JSON"),
        ({"content": [{"type": "text", "text": "{"}]}, "not JSON"),
        ({"content": [{"type": "text", "text": "[" * 100_000}]}, "not JSON"),
        ({"content": [7]}, "neither"),
        (None, "not an object"),
        ([1], "not an object"),
        ("text", "not an object"),
    ],
)
def test_tool_results_we_cannot_read(result: Any, message: str) -> None:
    with pytest.raises(mcp.McpReplyError, match=message):
        mcp.tool_outcome(_reply(result))


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        ({"code": -32602, "message": "Unknown tool: x"}, -32602, "Unknown tool: x"),
        ({"code": "x", "message": 5}, 0, ""),
        ({"message": "m" * 2000}, 0, "m" * 500),
        ("just a string", 0, "malformed JSON-RPC error"),
        ({"code": True}, 0, ""),
    ],
)
def test_json_rpc_errors(error: Any, code: int, message: str) -> None:
    reply = _reply(error=error)
    for outcome in (mcp.tool_outcome, mcp.initialize_outcome):
        with pytest.raises(mcp.McpRpcError) as caught:
            outcome(reply)
        assert (caught.value.code, caught.value.rpc_message) == (code, message)


@pytest.mark.parametrize(
    ("result", "version"),
    [
        ({"protocolVersion": "2025-06-18", "capabilities": {}}, "2025-06-18"),
        ({"capabilities": {}}, "2024-11-05"),
        ({"protocolVersion": 5}, "2024-11-05"),
        ({"protocolVersion": "bad\r\nheader"}, "2024-11-05"),
        ({"protocolVersion": "x" * 100}, "2024-11-05"),
    ],
)
def test_initialize_outcome(result: Any, version: str) -> None:
    assert mcp.initialize_outcome(_reply(result)) == version


def test_initialize_outcome_needs_an_object() -> None:
    with pytest.raises(mcp.McpReplyError):
        mcp.initialize_outcome(_reply([1]))


# --- properties -----------------------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@given(
    body=st.dictionaries(st.text(max_size=8), _JSON, max_size=5),
    noise=st.lists(st.sampled_from([b": ping\n\n", b"data:\n\n", b"event: other\ndata: x\n\n"]), max_size=3),
    crlf=st.booleans(),
    cuts=st.lists(st.integers(0, 10_000), max_size=10),
)
def test_any_split_of_an_sse_reply_gives_the_same_body(
    body: dict[str, Any], noise: list[bytes], crlf: bool, cuts: list[int]
) -> None:
    stream = b"".join(noise) + _sse(_rpc(_tool(body)), crlf=crlf)
    bounds = sorted({min(cut, len(stream)) for cut in cuts} | {0, len(stream)})
    reader = mcp.ReplyReader(b"text/event-stream", RID)
    found = None
    for start, end in pairwise(bounds):
        found = found or reader.feed(stream[start:end])
    reply = found or reader.end()
    assert json.loads(mcp.tool_outcome(reply)) == body


_FRAGMENTS = st.sampled_from(
    [
        *(b"event: message\n", b"data: ", b"\n", b"\r\n", b"{", b"}", b'"id":', f'"{RID}"'.encode()),
        *(b'"result":', b'"isError":true', b'"content":[{"text":"x"}]', b",", b"[", b"]", b"null", b":"),
    ]
)


@given(
    content_type=st.sampled_from([b"text/event-stream", b"application/json", None]),
    body=st.one_of(st.binary(max_size=300), st.lists(_FRAGMENTS, max_size=40).map(b"".join)),
)
def test_hostile_replies_end_in_typed_errors(content_type: bytes | None, body: bytes) -> None:
    try:
        reply = mcp.parse_reply(content_type, body, RID, limit=4096)
        out = mcp.tool_outcome(reply)
    except mcp.McpError:
        return
    json.loads(out)  # whatever is returned is JSON


@given(st.binary(max_size=200))
def test_any_body_either_embeds_or_is_refused(body: bytes) -> None:
    try:
        sent = mcp.tool_call_request(RID, "t", body, "/p")
    except mcp.McpReplyError:
        return
    assert json.loads(sent)["params"]["arguments"]["body"] == json.loads(body)


# --- error bodies ---------------------------------------------------------------------------------------


def test_model_listener_rejection_is_plano_s_filter_chain_error() -> None:
    detail = b'{"detail":{"error":"content_blocked","message":"blocked (matched: \'hack\')"}}'
    status, body = model_listener_rejection(FilterRejected("content_guard", 400, detail))
    assert status == 400
    assert body == (
        b'{"error":"FilterChainError","agent":"content_guard","status":400,"agent_response":'
        + json.dumps(detail.decode()).encode()
        + b"}"
    )


def test_agent_listener_rejection_is_plano_s_client_error() -> None:
    status, body = agent_listener_rejection(FilterRejected("input_guards", 403, "nö \xff".encode("latin-1")))
    assert status == 403
    assert json.loads(body) == {
        "error": "ClientError",
        "agent": "input_guards",
        "status": 403,
        "agent_response": "n\ufffd \ufffd",
    }


def test_failures() -> None:
    error = FilterFailed("guard", "filter 'guard' timed out after 3s")
    assert model_listener_failure(error) == (
        500,
        b"Filter chain processing failed: filter 'guard' timed out after 3s",
    )
    status, body = agent_listener_failure(error)
    assert status == 400
    parsed = json.loads(body)["error"]
    assert parsed["type"] == "AgentFilterChainError"
    assert parsed["message"] == "filter 'guard' timed out after 3s"
    assert parsed["error_chain"] == ["filter 'guard' timed out after 3s"]
    assert "FilterFailed" in parsed["debug_info"]


def test_snippet_is_short() -> None:
    assert snippet(b"x" * 10_000).endswith("…")
    assert len(snippet(b"x" * 10_000)) == 501
    assert snippet(b"\xff ok") == "\ufffd ok"
