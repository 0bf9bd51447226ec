"""The MCP client side of a filter call, without I/O: JSON-RPC messages out, replies in.

An MCP filter is a tool on an MCP server reached over the streamable-HTTP
transport.  The exchange, as Plano makes it: `initialize` (protocol version
2024-11-05, client info `brightstaff 1.0.0`) → the server's `mcp-session-id`
header → `notifications/initialized` → `tools/call` with
``{"name": <tool>, "arguments": {"body": <request JSON>, "path": <request path>}}``.
The tool answers with the (possibly changed) body, or says no with
`isError`.

What the server sends back is untrusted, and the transport allows more than
Plano reads: a reply is either one JSON object (`application/json`) or an
SSE stream (`text/event-stream`) that may carry the server's own requests
and notifications before the response, or a priming event with no data.
`ReplyReader` therefore takes body chunks as they arrive, skips everything
that is not the response to our request id, and stops at that response, so
the caller can hang up on a server that keeps the stream open.  Every read
is bounded (`limit` bytes in all), each byte is scanned a constant number of
times, and every way a reply can be wrong ends in an `McpError` subclass.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import msgspec

from plano_trio.translate.sse import SseError, SseParser

PROTOCOL_VERSION = "2024-11-05"
"""The version Plano offers in `initialize`; a server may answer with another it prefers."""
CLIENT_NAME = "brightstaff"
CLIENT_VERSION = "1.0.0"
MAX_REPLY_BYTES = 8 * 1024 * 1024
"""Default cap on one reply: a filter returns one request body, never more than a few MiB."""


class McpError(Exception):
    """A filter's MCP reply cannot be used."""


class McpReplyError(McpError):
    """The reply is not a readable JSON-RPC response to our request (or the request body is not JSON)."""


class McpRpcError(McpError):
    """The server answered our request with a JSON-RPC `error`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"JSON-RPC error {code}: {message}")
        self.code = code
        self.rpc_message = message


class McpToolError(McpError):
    """The tool ran and said no (`isError: true`); `text` is its first text content, as Plano reports it."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class RpcError(msgspec.Struct, frozen=True):
    code: int
    message: str


class RpcReply(msgspec.Struct, frozen=True):
    """The JSON-RPC response to our request: exactly one of `result` (raw JSON) and `error` is set."""

    result: msgspec.Raw | None = None
    error: RpcError | None = None


# --- requests -------------------------------------------------------------------------------------------


def new_request_id() -> str:
    """A fresh JSON-RPC id (a UUID string, as Plano uses)."""
    return str(uuid.uuid4())


_encode = msgspec.json.Encoder().encode


def initialize_request(request_id: str) -> bytes:
    """The `initialize` request, with the protocol version and client info Plano sends."""
    return _encode(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": CLIENT_NAME, "version": CLIENT_VERSION},
            },
        }
    )


def initialized_notification() -> bytes:
    """`notifications/initialized`: sent once the server accepted `initialize`."""
    return _encode({"jsonrpc": "2.0", "method": "notifications/initialized"})


def tool_call_request(request_id: str, tool: str, body: bytes, path: str) -> bytes:
    """`tools/call` passing the request body (embedded as JSON, not as a string) and the request path.

    Raises `McpReplyError` when `body` is not JSON: the tool's `body`
    argument is a JSON value, so a body that is not one (an SSE chunk given
    to an MCP output filter) cannot be sent, as in Plano.
    """
    try:
        raw = msgspec.json.decode(body, type=msgspec.Raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise McpReplyError(f"the body to filter is not JSON ({exc})") from None
    arguments = {"body": raw, "path": path}
    return _encode(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        }
    )


# --- replies --------------------------------------------------------------------------------------------


_ABSENT = msgspec.Raw()
"""Default of the raw fields below: msgspec cannot decode `Raw | None`, so absence is an empty Raw."""


def _present(raw: msgspec.Raw) -> bool:
    """A raw field that was sent and is not `null`."""
    return len(raw) > 0 and bytes(raw) != b"null"


class _Envelope(msgspec.Struct):
    """Any JSON-RPC message: a response (id + result|error), a request or a notification (method)."""

    id: Any = None
    method: Any = None
    result: msgspec.Raw = _ABSENT
    error: msgspec.Raw = _ABSENT


class _ErrorShape(msgspec.Struct):
    code: Any = 0
    message: Any = ""


_decode_message = msgspec.json.Decoder(_Envelope | list[_Envelope]).decode
_decode_error = msgspec.json.Decoder(_ErrorShape).decode

Mode = Literal["sse", "json"]


def reply_mode(content_type: bytes | None) -> Mode | None:
    """`sse` or `json` from the Content-Type; None when it says neither (the body is sniffed instead)."""
    if content_type is None:
        return None
    media = content_type.split(b";", 1)[0].strip().lower()
    if media == b"text/event-stream":
        return "sse"
    if media == b"application/json" or media.endswith(b"+json"):
        return "json"
    return None


def _reply_in(data: bytes, request_id: str) -> RpcReply | None:
    """The response to `request_id` among the JSON-RPC message(s) in `data`, if there is one.

    Raises `McpReplyError` when `data` is not a JSON-RPC message (or batch).
    """
    try:
        decoded = _decode_message(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise McpReplyError(f"not a JSON-RPC message ({exc})") from None
    for message in decoded if isinstance(decoded, list) else (decoded,):
        if message.method is not None or message.id != request_id:
            continue  # the server's own request or notification, or another response
        if _present(message.error):
            return RpcReply(error=_rpc_error(message.error))
        if not len(message.result):
            raise McpReplyError("the JSON-RPC response has neither result nor error")
        return RpcReply(result=message.result)
    return None


def _rpc_error(raw: msgspec.Raw) -> RpcError:
    try:
        shape = _decode_error(raw)
    except (msgspec.DecodeError, RecursionError):
        return RpcError(0, "malformed JSON-RPC error")
    code = shape.code if isinstance(shape.code, int) and not isinstance(shape.code, bool) else 0
    message = shape.message if isinstance(shape.message, str) else ""
    return RpcError(code, message[:500])


class ReplyReader:
    """Feed an HTTP reply's body chunks; get the JSON-RPC response to one request id.

    `feed` returns the response as soon as an SSE event completes it (the
    caller may stop reading); a JSON body is only complete at `end`.  Beyond
    `limit` bytes in total, or on a malformed stream, `McpReplyError`; after
    an error the reader stays failed.
    """

    __slots__ = ("_body", "_limit", "_mode", "_request_id", "_size", "_skipped", "_sse")

    def __init__(self, content_type: bytes | None, request_id: str, *, limit: int = MAX_REPLY_BYTES) -> None:
        self._request_id = request_id
        self._limit = limit
        self._mode: Mode | None = reply_mode(content_type)
        self._size = 0
        self._body = bytearray()
        self._sse = SseParser(max_line_bytes=limit, max_event_bytes=limit)
        self._skipped = 0
        """SSE events that were not JSON-RPC at all (reported if no response turns up)."""

    def feed(self, chunk: bytes) -> RpcReply | None:
        self._size += len(chunk)
        if self._size > self._limit:
            raise McpReplyError(f"reply larger than {self._limit} bytes")
        if self._mode is None:
            if not chunk.strip():
                self._body += chunk
                return None
            self._mode = "json" if chunk.lstrip()[:1] in (b"{", b"[") else "sse"
            chunk, self._body = bytes(self._body) + chunk, bytearray()
        if self._mode == "json":
            self._body += chunk
            return None
        return self._events(chunk)

    def end(self) -> RpcReply:
        """The response, now that the body is complete; `McpReplyError` if it never came."""
        if self._mode == "sse":
            # A last event without its blank line still counts (Plano reads such replies too).
            found = self._events(b"\n\n") if self._sse.has_partial else None
            if found is not None:
                return found
            detail = f" ({self._skipped} unreadable event(s))" if self._skipped else ""
            raise McpReplyError(f"no JSON-RPC response to request {self._request_id} in the stream{detail}")
        if not self._body.strip():
            raise McpReplyError("empty reply")
        found = _reply_in(bytes(self._body), self._request_id)
        if found is None:
            raise McpReplyError(f"the reply is not the response to request {self._request_id}")
        return found

    def _events(self, chunk: bytes) -> RpcReply | None:
        try:
            events = self._sse.feed(chunk)
        except SseError as exc:
            raise McpReplyError(f"malformed SSE reply: {exc}") from None
        for event in events:
            if event.event not in (None, "message") or not event.data.strip():
                continue  # another event type, or a priming / keep-alive event
            try:
                found = _reply_in(event.data, self._request_id)
            except McpReplyError:
                self._skipped += 1
                continue
            if found is not None:
                return found
        return None


def parse_reply(
    content_type: bytes | None, body: bytes, request_id: str, *, limit: int = MAX_REPLY_BYTES
) -> RpcReply:
    """A whole reply body at once (`ReplyReader` fed one chunk)."""
    reader = ReplyReader(content_type, request_id, limit=limit)
    found = reader.feed(body)
    return found if found is not None else reader.end()


# --- results --------------------------------------------------------------------------------------------


class _InitializeResult(msgspec.Struct):
    protocolVersion: Any = None


class _ToolResult(msgspec.Struct):
    content: msgspec.Raw = _ABSENT
    structuredContent: msgspec.Raw = _ABSENT
    isError: Any = False


class _TextPart(msgspec.Struct):
    text: Any = None


_decode_initialize = msgspec.json.Decoder(_InitializeResult).decode
_decode_tool_result = msgspec.json.Decoder(_ToolResult).decode
_decode_parts = msgspec.json.Decoder(list[msgspec.Raw]).decode
_decode_text_part = msgspec.json.Decoder(_TextPart).decode
_decode_object = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


def _raise_rpc_error(reply: RpcReply) -> msgspec.Raw:
    if reply.error is not None:
        raise McpRpcError(reply.error.code, reply.error.message)
    assert reply.result is not None  # RpcReply holds one or the other
    return reply.result


def initialize_outcome(reply: RpcReply) -> str:
    """The protocol version the server chose (ours if it named none); `McpRpcError` if it refused."""
    result = _raise_rpc_error(reply)
    try:
        version = _decode_initialize(result).protocolVersion
    except msgspec.ValidationError:
        raise McpReplyError("the initialize result is not an object") from None
    if isinstance(version, str) and version and len(version) <= 64 and version.isprintable():
        return version
    return PROTOCOL_VERSION


def _first_text(content: msgspec.Raw) -> str | None:
    """`content[0].text` when it is a string (Plano reads only the first part)."""
    if not _present(content):
        return None
    try:
        parts = _decode_parts(content)
        first = _decode_text_part(parts[0]) if parts else None
    except msgspec.ValidationError:
        return None
    return first.text if first is not None and isinstance(first.text, str) else None


def tool_outcome(reply: RpcReply) -> bytes:
    """The filtered body a `tools/call` reply carries, as JSON bytes.

    As Plano: `isError: true` → `McpToolError` with `content[0].text` (or
    "unknown_error"); otherwise `structuredContent.result` if present, else
    `content[0].text` parsed as JSON.  The JSON is returned as the server
    sent it (not re-encoded); whether it must be an object is the caller's
    rule.
    """
    result = _raise_rpc_error(reply)
    try:
        tool = _decode_tool_result(result)
    except msgspec.ValidationError:
        raise McpReplyError("the tools/call result is not an object") from None
    if tool.isError is True:
        raise McpToolError(_first_text(tool.content) or "unknown_error")
    if _present(tool.structuredContent):
        try:
            structured = _decode_object(tool.structuredContent)
        except msgspec.ValidationError:
            structured = {}
        if "result" in structured:
            return bytes(structured["result"])
    text = _first_text(tool.content)
    if text is None:
        raise McpReplyError("the tool result has neither structuredContent.result nor text content")
    try:
        return bytes(msgspec.json.decode(text, type=msgspec.Raw))
    except (msgspec.DecodeError, RecursionError):
        raise McpReplyError("the tool's text content is not JSON") from None
