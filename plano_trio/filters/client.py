"""Calling filters over the network: the thin I/O around `endpoint` and `mcp_protocol`.

One `FilterClient` per process, shared by all requests: it holds the MCP
sessions, so they outlive a request.  Plano opens a new MCP session for
every request pipeline (an `initialize` and a `notifications/initialized`
round trip before each tool call); here a session is kept per filter and
reused while the server accepts it.  When the server answers 404 to our
session id (it restarted, or expired the session) the session is dropped,
a new one is made once, and the tool call is sent again: a 404 means the
server did not run the tool.  The handshake is guarded by a lock per filter,
so many requests arriving at once on a cold filter wait for one `initialize`
instead of each making their own.  One consequence to know: a session is
made with the headers of the request that happened to open it; every tool
call still carries its own request's headers.

Every call is bounded: connecting by the pool, the whole call (waiting for
the handshake included) by `timeout_s`, each reply by `max_body_bytes`.  It
runs in the caller's cancel scope, so a client that goes away cancels its
filter calls; a cancelled handshake leaves the session unmade for the next
caller.

A traced request (`trace`) gets one span per filter call, recorded here
because only here is each call of a chain seen on its own; the call carries
that span as the filter's `traceparent` parent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NoReturn

import msgspec
import trio

from plano_trio.apis.http import Header
from plano_trio.config.schema import AgentEndpoint
from plano_trio.telemetry import RequestTrace, spans
from plano_trio.upstream import UpstreamError, UpstreamPool, UpstreamResponse

from . import mcp_protocol as mcp
from .endpoint import (
    EndpointError,
    Target,
    forwarded_headers,
    http_filter_headers,
    mcp_headers,
    parse_target,
)
from .errors import FilterError, FilterFailed, FilterRejected, snippet

log = logging.getLogger("plano_trio.filters")

DEFAULT_MAX_BODY_BYTES = mcp.MAX_REPLY_BYTES
_MAX_SESSION_ID_BYTES = 1024

_decode_object = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


class _McpSession:
    """One MCP server's session as this process knows it."""

    __slots__ = ("lock", "protocol_version", "ready", "session_id")

    def __init__(self) -> None:
        self.lock = trio.Lock()
        self.ready = False
        self.session_id: bytes | None = None
        """None with `ready`: the server works without sessions (allowed by the transport)."""
        self.protocol_version: bytes | None = None

    def expire(self, session_id: bytes) -> None:
        """Forget `session_id`, unless another task already replaced it."""
        if self.ready and self.session_id == session_id:
            self.ready = False
            self.session_id = None


class _HttpStatus(Exception):
    """A non-2xx answer to an MCP POST (internal: the caller decides what it means)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class FilterClient:
    """Runs request and response bodies through configured filters (`type: http` or `mcp`).

    `endpoints` are the config's agents and filters (`Config.agents`); a
    call names one by id.  `counts` holds running totals for metrics and
    tests: `output_filter_errors`, `mcp_initializations`,
    `mcp_session_renewals`.
    """

    def __init__(
        self,
        pool: UpstreamPool,
        endpoints: Sequence[AgentEndpoint],
        timeout_s: float,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._pool = pool
        self._endpoints = {endpoint.id: endpoint for endpoint in endpoints}
        self._targets: dict[str, Target | EndpointError] = {}
        for endpoint in endpoints:
            try:
                self._targets[endpoint.id] = parse_target(endpoint)
            except EndpointError as exc:
                self._targets[endpoint.id] = exc
        self._timeout_s = timeout_s
        self._limit = max_body_bytes
        self._sessions: dict[str, _McpSession] = {}
        self.counts: dict[str, int] = {
            "output_filter_errors": 0,
            "mcp_initializations": 0,
            "mcp_session_renewals": 0,
        }

    # --- public API -------------------------------------------------------------------------------------

    async def apply(
        self,
        filter_id: str,
        path: str,
        body: bytes,
        headers: list[Header],
        *,
        trace: RequestTrace | None = None,
    ) -> bytes:
        """One input filter: the body it returns, which must be a JSON object.

        Raises `FilterRejected` (the filter said no) or `FilterFailed`.
        """
        return await self._apply(filter_id, path, body, headers, require_object=True, trace=trace)

    async def run_chain(
        self,
        ids: Sequence[str],
        path: str,
        body: bytes,
        headers: list[Header],
        *,
        trace: RequestTrace | None = None,
    ) -> bytes:
        """Input filters in order, each given the previous one's output (as Plano's raw filter chain)."""
        for filter_id in ids:
            body = await self._apply(filter_id, path, body, headers, require_object=True, trace=trace)
        return body

    async def filter_chunk(
        self,
        ids: Sequence[str],
        path: str,
        chunk: bytes,
        headers: list[Header],
        *,
        trace: RequestTrace | None = None,
    ) -> bytes:
        """Output filters over one response chunk; on any failure the original chunk, as Plano.

        The chunk is sent as it is (JSON, or SSE bytes of a stream), and
        whatever a filter returns replaces it: an output filter is not held
        to JSON.  An MCP output filter can only take a chunk that is JSON.
        A rejection counts as a failure here: the response is already on
        its way to the client.
        """
        if not ids or not chunk:
            return chunk
        try:
            out = chunk
            for filter_id in ids:
                out = await self._apply(filter_id, path, out, headers, require_object=False, trace=trace)
        except FilterError as exc:
            self.counts["output_filter_errors"] += 1
            log.warning(
                "output filter failed, passing the chunk through",
                extra={"fields": {"filter": exc.filter_id, "error": exc.message}},
            )
            return chunk
        return out

    # --- one call ---------------------------------------------------------------------------------------

    async def _apply(
        self,
        filter_id: str,
        path: str,
        body: bytes,
        headers: list[Header],
        *,
        require_object: bool,
        trace: RequestTrace | None = None,
    ) -> bytes:
        endpoint = self._endpoints.get(filter_id)
        target = self._targets.get(filter_id)
        if endpoint is None or target is None:
            raise FilterFailed(filter_id, f"Agent '{filter_id}' not found in configuration")
        if isinstance(target, EndpointError):
            raise FilterFailed(filter_id, str(target))
        if trace is None:
            return await self._call(endpoint, target, path, body, headers, require_object)
        span = trace.begin()  # traced: the call's span is the filter's parent
        error: str | None = "cancelled"
        try:
            out = await self._call(
                endpoint, target, path, body, trace.propagate(headers, span.span_id), require_object
            )
            error = None
            return out
        except FilterError as failed:
            error = failed.message
            raise
        finally:
            spans.filter_call(trace, span, filter_id, endpoint.type, endpoint.url, len(body), error)

    async def _call(
        self,
        endpoint: AgentEndpoint,
        target: Target,
        path: str,
        body: bytes,
        headers: list[Header],
        require_object: bool,
    ) -> bytes:
        filter_id = endpoint.id
        forwarded = forwarded_headers(headers, filter_id)
        out = b""
        with trio.move_on_after(self._timeout_s) as scope:
            try:
                if endpoint.type == "http":
                    out = await self._http(endpoint, target, path, body, forwarded)
                else:
                    out = await self._mcp(endpoint, target, path, body, forwarded)
            except UpstreamError as exc:
                raise FilterFailed(filter_id, f"filter '{filter_id}': {exc.message}") from None
            except UnicodeError:
                message = f"filter '{filter_id}': request path {path!r} is not ASCII"
                raise FilterFailed(filter_id, message) from None
        if scope.cancelled_caught:
            raise FilterFailed(filter_id, f"filter '{filter_id}' timed out after {self._timeout_s:g}s")
        if require_object and not _is_json_object(out):
            raise FilterFailed(
                filter_id, f"filter '{filter_id}' returned a body that is not a JSON object: {snippet(out)}"
            )
        return out

    async def _http(
        self, endpoint: AgentEndpoint, target: Target, path: str, body: bytes, forwarded: list[Header]
    ) -> bytes:
        """POST `{url}{path}`; 2xx → the reply body, 4xx → rejected, anything else → failed."""
        async with await self._pool.request(
            target.origin, b"POST", target.http_target(path), http_filter_headers(forwarded), body
        ) as response:
            data = await response.read(self._limit)
        status = response.status
        if 200 <= status < 300:
            return data
        if 400 <= status < 500:
            raise FilterRejected(endpoint.id, status, data)
        raise FilterFailed(endpoint.id, f"filter '{endpoint.id}' answered HTTP {status}: {snippet(data)}")

    # --- MCP --------------------------------------------------------------------------------------------

    async def _mcp(
        self, endpoint: AgentEndpoint, target: Target, path: str, body: bytes, forwarded: list[Header]
    ) -> bytes:
        """`tools/call` in this filter's session, renewing the session once if the server lost it."""
        filter_id = endpoint.id
        request_id = mcp.new_request_id()
        try:
            payload = mcp.tool_call_request(request_id, endpoint.tool or filter_id, body, path)
        except mcp.McpError as exc:
            raise FilterFailed(filter_id, f"filter '{filter_id}': {exc}") from None
        session = self._sessions.get(filter_id)
        if session is None:
            session = self._sessions[filter_id] = _McpSession()
        for attempt in (1, 2):
            session_id, version = await self._session(endpoint, target, session, forwarded)
            try:
                reply, _ = await self._post_rpc(
                    target, mcp_headers(forwarded, session_id, version), payload, request_id
                )
                break
            except _HttpStatus as answer:
                if answer.status == 404 and session_id is not None and attempt == 1:
                    session.expire(session_id)
                    self.counts["mcp_session_renewals"] += 1
                    log.info("MCP session expired, renewing", extra={"fields": {"filter": filter_id}})
                    continue
                if 400 <= answer.status < 500:
                    raise FilterRejected(filter_id, answer.status, answer.body) from None
                self._fail_status(filter_id, "tools/call", answer)
            except mcp.McpError as exc:
                raise FilterFailed(filter_id, f"filter '{filter_id}': {exc}") from None
        else:  # pragma: no cover - the second attempt either breaks or raises
            raise FilterFailed(filter_id, f"filter '{filter_id}': MCP session lost twice")
        try:
            return mcp.tool_outcome(reply)
        except mcp.McpToolError as exc:
            raise FilterRejected(filter_id, 400, exc.text.encode()) from None
        except mcp.McpError as exc:
            raise FilterFailed(filter_id, f"filter '{filter_id}': {exc}") from None

    async def _session(
        self, endpoint: AgentEndpoint, target: Target, session: _McpSession, forwarded: list[Header]
    ) -> tuple[bytes | None, bytes | None]:
        """The session to call in, making it first if needed (one handshake at a time per filter)."""
        if not session.ready:
            async with session.lock:
                if not session.ready:
                    await self._initialize(endpoint, target, session, forwarded)
        return session.session_id, session.protocol_version

    async def _initialize(
        self, endpoint: AgentEndpoint, target: Target, session: _McpSession, forwarded: list[Header]
    ) -> None:
        """`initialize` → session id and protocol version → `notifications/initialized`."""
        filter_id = endpoint.id
        request_id = mcp.new_request_id()
        try:
            reply, headers = await self._post_rpc(
                target, mcp_headers(forwarded, None, None), mcp.initialize_request(request_id), request_id
            )
            version = mcp.initialize_outcome(reply)
        except _HttpStatus as answer:
            self._fail_status(filter_id, "initialize", answer)
        except mcp.McpError as exc:
            raise FilterFailed(filter_id, f"filter '{filter_id}': MCP initialize failed: {exc}") from None
        session_id = _header(headers, b"mcp-session-id")
        if session_id is not None and not _valid_session_id(session_id):
            message = f"filter '{filter_id}': unusable mcp-session-id {snippet(session_id)!r}"
            raise FilterFailed(filter_id, message)
        version_header = version.encode("ascii", "replace")
        # Plano reads neither the status nor the body of this answer (202 Accepted, usually); nor do we.
        async with await self._pool.request(
            target.origin,
            b"POST",
            target.mcp_target(),
            mcp_headers(forwarded, session_id, version_header),
            mcp.initialized_notification(),
        ) as response:
            await response.read(self._limit)
        session.session_id = session_id
        session.protocol_version = version_header
        session.ready = True
        self.counts["mcp_initializations"] += 1

    async def _post_rpc(
        self, target: Target, headers: list[Header], payload: bytes, request_id: str
    ) -> tuple[mcp.RpcReply, list[Header]]:
        """POST one JSON-RPC request; its response and the reply's headers, reading no further than needed.

        An SSE reply is read event by event and left as soon as our
        response is in: the transport lets the server keep the stream open
        for more messages, which we would otherwise wait on until the timeout.
        """
        async with await self._pool.request(
            target.origin, b"POST", target.mcp_target(), headers, payload
        ) as response:
            if not 200 <= response.status < 300:
                raise _HttpStatus(response.status, await response.read(self._limit))
            content_type = _header(response.headers, b"content-type")
            reader = mcp.ReplyReader(content_type, request_id, limit=self._limit)
            async for chunk in response:
                found = reader.feed(chunk)
                if found is not None:
                    await _finish_briefly(response, self._limit)
                    return found, response.headers
            return reader.end(), response.headers

    @staticmethod
    def _fail_status(filter_id: str, step: str, answer: _HttpStatus) -> NoReturn:
        message = f"filter '{filter_id}': MCP {step} answered HTTP {answer.status}: {snippet(answer.body)}"
        raise FilterFailed(filter_id, message) from None


_STREAM_END_WAIT_S = 0.002
"""How long to wait for the end of an SSE reply once our response is in it.  Servers (the official
SDK's among them) end the stream right after the response, and the end usually arrives with it or
within microseconds: reading it lets the connection go back to the pool, where leaving at once made
about a third of the calls open a new connection (bench scenario 14).  A server that keeps the
stream open costs this much once per call, and its connection is closed as before."""


async def _finish_briefly(response: UpstreamResponse, limit: int) -> None:
    """Read what is left of `response` for at most `_STREAM_END_WAIT_S` and `limit` bytes."""
    seen = 0
    with trio.move_on_after(_STREAM_END_WAIT_S):
        async for chunk in response:
            seen += len(chunk)
            if seen > limit:
                break


def _header(headers: list[Header], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _valid_session_id(value: bytes) -> bool:
    """Visible ASCII only (0x21-0x7E), as the transport requires, and of sane length."""
    return 0 < len(value) <= _MAX_SESSION_ID_BYTES and all(0x21 <= byte <= 0x7E for byte in value)


def _is_json_object(data: bytes) -> bool:
    try:
        _decode_object(data)
    except (msgspec.DecodeError, RecursionError):
        return False
    return True
