"""Mock LLM provider speaking the real OpenAI / Anthropic wire formats over real sockets.

One module serves two masters:

* the test-suite starts it in a background thread (``MockProvider().start()``) and inspects what the
  gateway sent (``requests``, ``events``), scripting behaviour per request with ``x-mock-*`` headers;
* the load benchmarks run it as a process (``python -m tests.mock_provider --port 9999 --workers N``).

It is built on ``asyncio.Protocol`` with a hand-written HTTP/1.1 parser (uvloop when available) because
that design measured ~10-16 CPU-µs per request, 30-60x cheaper than any hypercorn worker and ~4x cheaper
than uvicorn with httptools, so the mock never becomes the bottleneck of a gateway benchmark that shares
a core with it (``docs/measurements.md``, "Mock provider server choice").  For the same reason a reply
is built once per distinct request (method, path, body, control) and cached as wire bytes; each send
only stamps a fresh id into them and issues one write, so a benchmark's repeated request costs no JSON
work at all (measured ~14 CPU-µs per JSON request, ~21 per 20-chunk stream).

Deliberately stdlib-only (plus optional uvloop) and independent of ``plano_trio``: the mock must behave
like a third-party provider, not share code paths with the gateway it is testing.

Endpoints: ``POST …/chat/completions`` (OpenAI Chat Completions), ``POST …/messages`` (Anthropic
Messages), ``POST …/responses`` (OpenAI Responses), ``POST /model/{modelId}/converse`` and
``…/converse-stream`` (Amazon Bedrock Converse / ConverseStream; the model id is URL-encoded in the path
and the stream is AWS binary event-stream framing, see ``_es_frame``), ``GET /healthz``; anything else is
a 404.

Control, per request (header, or query parameter without the ``x-mock-`` prefix; CLI flags set defaults):

===============================  ====================================================================
``x-mock-chunks: N``             content deltas in a stream (default 5); also tool-argument fragments
``x-mock-delay-ms: D``           sleep between deltas (default 0)
``x-mock-ttft-ms: T``            sleep before anything is written (stream or JSON)
``x-mock-status: S``             reply status S >= 400 with the provider's real error JSON
``x-mock-error-message: M``      message of that error (or of a Bedrock exception frame)
``x-mock-drop-after: K``         stream the preamble and K deltas, then close the TCP connection
``x-mock-chunk-bytes: B``        pad every text delta to about B bytes (the bench uses ~180)
``x-mock-bedrock-exception: E``  ConverseStream: after the deltas, end with exception frame E
                                 (e.g. ``throttlingException``) instead of ``contentBlockStop`` …
===============================  ====================================================================

Reply text is ``"Hello from mock"`` (or ``--reply-text``'s) unless the last user message contains
``reply with exactly: X`` (then ``X``); with tools in the request (``tools``, or Converse's
``toolConfig``) and ``call tool`` in that message the reply is a call of the first tool with arguments
``{"location":"Seattle"}``.  The concatenated deltas of a stream always equal the non-streamed content,
so tests can compare both modes.

Failing a share of requests (the failover bench's flaky primary): ``--fail-fraction F`` answers F of all
POST requests with ``--fail-status`` (default 429) and that provider's real error body.  The failures are
spread evenly (request k fails when ``floor(k*F)`` steps up, so 0.2 is exactly every fifth request), not
drawn at random: each run and each round then sees the same number of failures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import http
import itertools
import json
import math
import os
import re
import signal
import socket
import string
import struct
import threading
import time
import zlib
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, Self, cast
from urllib.parse import parse_qsl, unquote

__all__ = ["Control", "MockProvider", "RecordedRequest", "main"]

DEFAULT_TEXT = "Hello from mock"
TOOL_ARGUMENTS = '{"location":"Seattle"}'
_EXACT_MARKER = "reply with exactly:"
_TOOL_MARKER = "call tool"
_PAD = " lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt"
_MAX_HEAD = 64 * 1024
DEFAULT_CHUNKS = 5

Api = Literal["openai", "anthropic", "bedrock"]


# ---------------------------------------------------------------------------------------------------------
# Control knobs


@dataclasses.dataclass(frozen=True, slots=True)
class Control:
    """Per-request behaviour; CLI/constructor defaults overridden by query params, then by headers."""

    chunks: int = DEFAULT_CHUNKS
    delay_ms: float = 0.0
    ttft_ms: float = 0.0
    status: int = 200
    error_message: str | None = None
    drop_after: int | None = None
    chunk_bytes: int = 0
    bedrock_exception: str | None = None  # exception frame that ends a ConverseStream
    reply_text: str = DEFAULT_TEXT  # the answer without a ``reply with exactly:`` marker (CLI only)

    def override(self, values: dict[str, str]) -> Control:
        """Apply ``{"chunks": "20", "delay-ms": "5", ...}``; raises ValueError on a malformed value."""
        changes: dict[str, Any] = {}
        for raw_key, value in values.items():
            key = raw_key.replace("-", "_")
            if key in ("chunks", "drop_after", "chunk_bytes"):
                changes[key] = max(0, int(value))
            elif key == "status":
                status = int(value)
                if not 100 <= status <= 599:
                    raise ValueError(f"bad status {value!r}")
                changes[key] = status
            elif key in ("delay_ms", "ttft_ms"):
                changes[key] = max(0.0, float(value))
            elif key in ("error_message", "bedrock_exception"):
                changes[key] = value or None
        return dataclasses.replace(self, **changes) if changes else self


_QUERY_KEYS = frozenset(
    k.replace("_", "-")
    for k in (
        "chunks",
        "delay_ms",
        "ttft_ms",
        "status",
        "error_message",
        "drop_after",
        "chunk_bytes",
        "bedrock_exception",
    )
)


# ---------------------------------------------------------------------------------------------------------
# Recording


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the mock received it. ``time`` is ``time.monotonic()``; ``path`` has no query."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any | None
    connection_id: int
    time: float
    target: str = ""  # the raw request target, query string included


# ---------------------------------------------------------------------------------------------------------
# Reply generation (pure functions of the request; no I/O)

_HOLE = "\x00"  # placeholder in a template object; json-encodes to a unique token
_HOLE_JSON = '"\\u0000"'

# Replies are built once per distinct request as templates carrying this stand-in, which ``_stamper``
# swaps for a fresh id on every send (same width, so lengths never change).
_ID = "{mock-id:00}"  # 12 characters, like the zero-padded counter it becomes
_ids = itertools.count(1)


def _stamper(framed: tuple[bytes, ...] = ()) -> Callable[[bytes], bytes]:
    """Return ``stamp(data)`` that gives a template this request's ids.

    ``framed`` lists the binary event-stream frames of the template that carry ``_ID``: their trailing
    CRC covers the id, so ``stamp`` swaps each whole frame for its stamped and re-checksummed self (the
    lengths, hence the prelude CRC, are unchanged).  Frames are never split across writes, so every blob
    handed to ``stamp`` holds either all of a frame or none of it.
    """
    n = b"%012d" % next(_ids)
    fixes = [(frame, _es_reseal(frame.replace(b"{mock-id:00}", n))) for frame in framed]

    def stamp(data: bytes) -> bytes:
        return data.replace(b"{mock-id:00}", n)

    if not fixes:
        return stamp

    def stamp_framed(data: bytes) -> bytes:
        for template, stamped in fixes:
            data = data.replace(template, stamped)
        return stamp(data)

    return stamp_framed


_UNPARSED: Any = object()  # payload not decoded yet (it is only needed on a reply-cache miss)


def _loads(body: bytes) -> Any:
    """The JSON body, or None when there is none or it is not JSON."""
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _sse(obj: Any, event: str | None = None) -> bytes:
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {_dumps(obj)}\n\n".encode()


class _Frame:
    """An SSE event (or, with ``sse=False``, a bare JSON payload) with holes, rendered once per response
    and filled per delta.

    ``json.dumps`` of a whole chunk dict per delta would dominate the mock's CPU cost for long streams;
    concatenating pre-encoded parts keeps a 20-chunk stream close to the cost of one JSON response.
    """

    __slots__ = ("_parts",)

    def __init__(self, obj: Any, event: str | None = None, *, sse: bool = True) -> None:
        parts = _dumps(obj).split(_HOLE_JSON)
        if sse:
            parts[0] = (f"event: {event}\n" if event else "") + "data: " + parts[0]
            parts[-1] += "\n\n"
        self._parts = parts

    def fill(self, *json_values: str) -> bytes:
        out = [self._parts[0]]
        for value, part in zip(json_values, self._parts[1:], strict=True):
            out += (value, part)
        return "".join(out).encode()


# AWS binary event-stream (Bedrock ConverseStream).  A deliberately separate, minimal encoder: the
# gateway's decoder is tested against it, so it must not share that decoder's code.  A frame is
#   total length u32 | headers length u32 | prelude CRC32 u32 | headers | payload | message CRC32 u32
# (big-endian; CRC-32 as ``zlib.crc32``, the prelude CRC over the first 8 bytes, the message CRC over
# everything before it), and a header is ``name length u8 | name | type u8 | value``; only type 7
# (string: u16 length + UTF-8) is needed here.

_U32 = struct.Struct(">I")
_ES_LENGTHS = struct.Struct(">II")
_ES_OVERHEAD = 16  # prelude (12 bytes) + message CRC (4)
_ES_STRING = 7
_P_ALPHABET = string.ascii_lowercase + string.ascii_uppercase + string.digits


def _es_headers(*pairs: tuple[str, str]) -> bytes:
    """Encode string-valued event-stream headers, in order."""
    out = bytearray()
    for name, value in pairs:
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name
        out += struct.pack(">BH", _ES_STRING, len(raw_value)) + raw_value
    return bytes(out)


def _es_frame(headers: bytes, payload: bytes) -> bytes:
    """One complete event-stream message: prelude with its CRC, headers, payload, message CRC."""
    prelude = _ES_LENGTHS.pack(_ES_OVERHEAD + len(headers) + len(payload), len(headers))
    message = prelude + _U32.pack(zlib.crc32(prelude)) + headers + payload
    return message + _U32.pack(zlib.crc32(message))


def _es_reseal(frame: bytes) -> bytes:
    """``frame`` with its message CRC recomputed (after an id was stamped into it in place)."""
    body = frame[:-4]
    return body + _U32.pack(zlib.crc32(body))


@functools.cache
def _es_event_headers(event_type: str) -> bytes:
    """Headers of a Bedrock ``event`` message, in the order the service sends them."""
    return _es_headers(
        (":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")
    )


def _es_event(event_type: str, payload: bytes | dict[str, Any]) -> bytes:
    """A Bedrock stream event frame; ``payload`` is encoded JSON, or an object to encode."""
    data = payload if isinstance(payload, bytes) else _dumps(payload).encode()
    return _es_frame(_es_event_headers(event_type), data)


def _es_exception(exception_type: str, message: str) -> bytes:
    """A Bedrock modelled-exception frame (``:message-type: exception``) ending a stream."""
    headers = _es_headers(
        (":exception-type", exception_type),
        (":content-type", "application/json"),
        (":message-type", "exception"),
    )
    return _es_frame(headers, _dumps({"message": message}).encode())


def _padding(i: int) -> str:
    """The ``p`` field Bedrock adds to stream events (a prefix of ``a…zA…Z0…9`` of varying length, which
    hides the size of the real content); deterministic here, varying with ``i``."""
    return _P_ALPHABET[: 1 + (7 * i + 3) % len(_P_ALPHABET)]


def _split(text: str, n: int, by_char: bool) -> list[str]:
    """Split ``text`` into ``n`` consecutive pieces whose concatenation is ``text``.

    Text goes into word-ish pieces (``"Hello"``, ``" from"``, ...) like a tokenizer's; asking for more
    pieces than words splits the longest piece in two until there are enough, and only a text shorter than
    ``n`` characters yields empty pieces.  ``by_char`` splits evenly by characters (tool arguments).
    """
    if by_char:
        size, extra = divmod(len(text), n)
        bounds = list(itertools.accumulate([0] + [size + (i < extra) for i in range(n)]))
        return [text[a:b] for a, b in itertools.pairwise(bounds)]
    pieces: list[str] = re.findall(r"\s*\S+|\s+$", text)
    while len(pieces) > n:  # merge the shortest adjacent pair
        i = min(range(len(pieces) - 1), key=lambda j: len(pieces[j]) + len(pieces[j + 1]))
        pieces[i : i + 2] = [pieces[i] + pieces[i + 1]]
    while len(pieces) < n:
        i = max(range(len(pieces)), key=lambda j: len(pieces[j]), default=-1)
        if i < 0 or len(pieces[i]) < 2:
            pieces += [""] * (n - len(pieces))
            break
        mid = len(pieces[i]) // 2
        pieces[i : i + 1] = [pieces[i][:mid], pieces[i][mid:]]
    return pieces


def _pieces(text: str, n: int, pad_to: int, by_char: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The ``n`` deltas of ``text``, padded to ``pad_to`` bytes, and their JSON encodings."""
    if n <= 0:
        return (), ()
    pieces = _split(text, n, by_char)
    if pad_to:
        filler = _PAD * (pad_to // len(_PAD) + 1)
        pieces = [p + filler[: max(0, pad_to - len(p.encode()))] for p in pieces]
    return tuple(pieces), tuple(_dumps(p) for p in pieces)


def _message_text(content: Any) -> str:
    """Text of a message ``content``: a string, or a list of parts/blocks carrying ``text`` (OpenAI parts,
    Anthropic ``{"type": "text", ...}`` blocks and Converse's untyped ``{"text": ...}`` blocks alike;
    images, tool results and Converse's ``toolResult``/``image`` blocks carry no ``text`` and are skipped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _last_user_text(payload: dict[str, Any]) -> str:
    """Text of the last user turn: ``messages`` (Chat, Messages, Converse) or Responses ``input``."""
    items = payload.get("messages")
    if items is None:  # Responses API: ``input`` is a string or a list of items
        items = payload.get("input")
        if isinstance(items, str):
            return items
    if not isinstance(items, list):
        return ""
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            return _message_text(item.get("content"))
    return ""


def _first_tool_name(payload: dict[str, Any]) -> str | None:
    """Name of the first declared tool: ``tools[0]`` (Chat, Messages, Responses) or Converse's
    ``toolConfig.tools[0].toolSpec``; None when the request declares none."""
    tools = payload.get("tools")
    config = payload.get("toolConfig")
    if tools is None and isinstance(config, dict):
        tools = config.get("tools")
    if not isinstance(tools, list) or not tools or not isinstance(tools[0], dict):
        return None
    tool = tools[0]
    # Chat Completions nests it in ``function``, Converse in ``toolSpec``; Anthropic and Responses do not
    spec = tool.get("function") or tool.get("toolSpec")
    name = spec.get("name") if isinstance(spec, dict) else tool.get("name")
    return name if isinstance(name, str) else None


@dataclasses.dataclass(slots=True)
class _Plan:
    """What to answer, independent of the wire format."""

    model: str
    tool: str | None  # name of the tool to call, or None for a text reply
    pieces: tuple[str, ...]  # text deltas, or argument fragments for a tool call
    encoded: tuple[str, ...]  # the same, JSON-encoded
    prompt_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        return max(1, len(self.pieces))  # one streamed delta ~ one token, as with real providers


def _plan(payload: dict[str, Any], path: str, body: bytes, ctl: Control) -> _Plan:
    """Decide the reply (text or tool call, split into deltas) from any API's request."""
    model = payload.get("model")
    if not isinstance(model, str):  # Azure's deployment and Bedrock's model id are in the path instead
        match = re.search(r"/(?:deployments|model)/([^/]+)/", path)
        model = unquote(match.group(1)) if match else "mock-model"
    user = _last_user_text(payload)
    lowered = user.lower()
    tool = _first_tool_name(payload) if _TOOL_MARKER in lowered else None
    if tool is not None:
        pieces, encoded = _pieces(TOOL_ARGUMENTS, max(1, ctl.chunks), 0, True)
    else:
        at = lowered.find(_EXACT_MARKER)
        text = user[at + len(_EXACT_MARKER) :].strip() if at >= 0 else ctl.reply_text
        pieces, encoded = _pieces(text, ctl.chunks, ctl.chunk_bytes, False)
    return _Plan(model, tool, pieces, encoded, max(1, len(body) // 4))  # ~4 bytes per token


_SSE_TYPE = "content-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n"
_EVENTSTREAM_TYPE = "content-type: application/vnd.amazon.eventstream\r\n"


@dataclasses.dataclass(slots=True)
class _Reply:
    """A response template: a JSON body, or stream events (SSE or event-stream frames) split where delays
    and drops may apply.

    Templates are cached per distinct request and carry ``_ID`` stand-ins (see ``_stamper``).
    """

    status: int
    body: bytes = b""
    stream: bool = False
    head: list[bytes] = dataclasses.field(default_factory=list)  # events before the first delta
    deltas: list[bytes] = dataclasses.field(default_factory=list)
    tail: list[bytes] = dataclasses.field(default_factory=list)  # events after the last delta
    headers: str = ""  # extra header lines, each ending in CRLF
    stream_type: str = _SSE_TYPE  # content-type (and cache) header lines of a stream
    framed: tuple[bytes, ...] = ()  # event-stream frames holding ``_ID`` (re-checksummed by the stamper)
    _whole: dict[bool, bytes] = dataclasses.field(default_factory=dict)

    def wire_head(self, keep_alive: bool) -> bytes:
        """Status line and headers: Content-Length for JSON, chunked for streams (so keep-alive survives)."""
        if self.stream:
            framing = f"{self.stream_type}transfer-encoding: chunked\r\n"
        else:
            framing = f"content-type: application/json\r\ncontent-length: {len(self.body)}\r\n"
        close = "" if keep_alive else "connection: close\r\n"
        return f"{_status_line(self.status)}{framing}{self.headers}{close}\r\n".encode()

    def whole(self, keep_alive: bool) -> bytes:
        """The complete undelayed response as written to the socket; a stream goes out as one HTTP chunk."""
        data = self._whole.get(keep_alive)
        if data is None:
            data = self.wire_head(keep_alive)
            if self.stream:
                data += _http_chunk(b"".join(self.head + self.deltas + self.tail)) + b"0\r\n\r\n"
            else:
                data += self.body
            self._whole[keep_alive] = data
        return data


def _json_reply(status: int, obj: Any, headers: str = "") -> _Reply:
    return _Reply(status, _dumps(obj).encode(), headers=headers)


# Error shapes per provider: (OpenAI type, OpenAI code, Anthropic type, default message)
_ERRORS: dict[int, tuple[str, str | None, str, str]] = {
    400: ("invalid_request_error", None, "invalid_request_error", "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "authentication_error", "Incorrect API key provided."),
    403: ("permission_error", None, "permission_error", "You do not have access to this resource."),
    404: ("invalid_request_error", "model_not_found", "not_found_error", "The model does not exist."),
    413: ("invalid_request_error", None, "request_too_large", "Request exceeds the maximum allowed size."),
    429: ("requests", "rate_limit_exceeded", "rate_limit_error", "Rate limit reached for requests."),
    500: ("server_error", None, "api_error", "The server had an error while processing your request."),
    503: ("server_error", None, "api_error", "The engine is currently overloaded."),
    529: ("server_error", None, "overloaded_error", "Overloaded"),
}


# Bedrock errors: (``x-amzn-errortype`` exception name, default message)
_BEDROCK_ERRORS: dict[int, tuple[str, str]] = {
    400: ("ValidationException", "Malformed input request, please reformat your input and try again."),
    401: ("UnrecognizedClientException", "The security token included in the request is invalid."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    404: ("ResourceNotFoundException", "The provided model identifier is invalid."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request. Try your request again."),
    413: ("ValidationException", "Input is too long for requested model."),
    424: ("ModelErrorException", "The model returned an error. Try your request again."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The system encountered an unexpected error during processing."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}
# Default messages of ConverseStream exception frames, by ``:exception-type``
_BEDROCK_STREAM_ERRORS = {
    "throttlingException": "Too many requests, please wait before trying again.",
    "modelStreamErrorException": "The model stream encountered an error.",
    "internalServerException": "The system encountered an unexpected error during processing.",
    "serviceUnavailableException": "Bedrock is unable to process your request.",
    "validationException": "Malformed input request, please reformat your input and try again.",
}
# ``x-amzn-requestid`` is a UUID; its last group is the stamped id
_AMZN_REQUEST_ID = f"x-amzn-requestid: 6d0c7a4e-0000-4000-8000-{_ID}\r\n"


def _error_reply(api: Api, status: int, message: str | None = None, code: str | None = None) -> _Reply:
    """The provider's real error body: OpenAI ``{"error": {...}}``, Anthropic ``{"type": "error", ...}``,
    Bedrock ``{"message": ...}`` named by an ``x-amzn-errortype`` header."""
    if api == "bedrock":
        name, default = _BEDROCK_ERRORS.get(
            status,
            ("InternalServerException" if status >= 500 else "ValidationException", f"Mock error {status}."),
        )
        errortype = f"x-amzn-errortype: {name}:http://internal.amazon.com/coral/com.amazon.bedrock/\r\n"
        return _json_reply(status, {"message": message or default}, errortype + _AMZN_REQUEST_ID)
    oa_type, oa_code, an_type, default = _ERRORS.get(
        status,
        (
            "server_error" if status >= 500 else "invalid_request_error",
            None,
            "api_error" if status >= 500 else "invalid_request_error",
            f"Mock error {status}.",
        ),
    )
    message = message or default
    if api == "anthropic":
        return _json_reply(
            status,
            {"type": "error", "error": {"type": an_type, "message": message}},
            f"request-id: req_mock{_ID}\r\n",
        )
    error = {"message": message, "type": oa_type, "param": None, "code": code or oa_code}
    return _json_reply(status, {"error": error}, f"x-request-id: req_mock{_ID}\r\n")


def _chat_reply(plan: _Plan, payload: dict[str, Any], stream: bool) -> _Reply:
    """OpenAI Chat Completions: ``chat.completion`` JSON, or ``chat.completion.chunk`` SSE + ``[DONE]``."""
    base = {
        "id": f"chatcmpl-mock{_ID}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": plan.model,
        "service_tier": "default",
        "system_fingerprint": "fp_mock",
    }
    usage = {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": plan.completion_tokens,
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    call_id = f"call_mock{_ID}"
    finish = "tool_calls" if plan.tool else "stop"
    headers = f"x-request-id: req_mock{_ID}\r\n"
    if not stream:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": plan.text,
            "refusal": None,
            "annotations": [],
        }
        if plan.tool:
            message["content"] = None
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": plan.tool, "arguments": plan.text}}
            ]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        return _json_reply(200, {**base, "choices": [choice], "usage": usage}, headers)

    options = payload.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    base["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        c = {**base, "choices": [choice]}
        if include_usage:
            c["usage"] = None  # real streams carry ``usage: null`` on every chunk but the last
        return c

    if plan.tool:
        function = {"name": plan.tool, "arguments": ""}
        call = {"index": 0, "id": call_id, "type": "function", "function": function}
        first = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]}
        frame = _Frame(chunk({"tool_calls": [{"index": 0, "function": {"arguments": _HOLE}}]}))
    else:
        first = {"role": "assistant", "content": "", "refusal": None}
        frame = _Frame(chunk({"content": _HOLE}))
    tail = [_sse(chunk({}, finish))]
    if include_usage:
        tail.append(_sse({**base, "choices": [], "usage": usage}))
    tail.append(b"data: [DONE]\n\n")
    return _Reply(
        200,
        stream=True,
        head=[_sse(chunk(first))],
        deltas=[frame.fill(e) for e in plan.encoded],
        tail=tail,
        headers=headers,
    )


def _messages_reply(plan: _Plan, stream: bool) -> _Reply:
    """Anthropic Messages: a ``message`` object, or the exact ``message_start`` … ``message_stop`` events."""
    headers = f"request-id: req_mock{_ID}\r\n"
    stop_reason = "tool_use" if plan.tool else "end_turn"
    usage = {
        "input_tokens": plan.prompt_tokens,
        "output_tokens": plan.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "service_tier": "standard",
    }
    message: dict[str, Any] = {
        "id": f"msg_mock{_ID}",
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    tool_id = f"toolu_mock{_ID}"
    if not stream:
        block = (
            {"type": "tool_use", "id": tool_id, "name": plan.tool, "input": json.loads(plan.text)}
            if plan.tool
            else {"type": "text", "text": plan.text}
        )
        return _json_reply(
            200, {**message, "content": [block], "stop_reason": stop_reason, "usage": usage}, headers
        )

    if plan.tool:
        start_block: dict[str, Any] = {"type": "tool_use", "id": tool_id, "name": plan.tool, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": _HOLE}
    else:
        start_block, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": _HOLE}
    frame = _Frame({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta")
    head = [
        _sse(
            {"type": "message_start", "message": {**message, "usage": {**usage, "output_tokens": 1}}},
            "message_start",
        ),
        _sse(
            {"type": "content_block_start", "index": 0, "content_block": start_block}, "content_block_start"
        ),
        _sse({"type": "ping"}, "ping"),
    ]
    tail = [
        _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": plan.completion_tokens},
            },
            "message_delta",
        ),
        _sse({"type": "message_stop"}, "message_stop"),
    ]
    return _Reply(
        200, stream=True, head=head, deltas=[frame.fill(e) for e in plan.encoded], tail=tail, headers=headers
    )


def _responses_reply(plan: _Plan, payload: dict[str, Any], stream: bool) -> _Reply:
    """OpenAI Responses: a ``response`` object, or ``response.created`` … ``response.completed`` events."""
    headers = f"x-request-id: req_mock{_ID}\r\n"
    usage = {
        "input_tokens": plan.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": plan.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
    }
    text = plan.text
    if plan.tool:
        item_id = f"fc_mock{_ID}"
        item: dict[str, Any] = {
            "id": item_id,
            "type": "function_call",
            "status": "completed",
            "arguments": text,
            "call_id": f"call_mock{_ID}",
            "name": plan.tool,
        }
    else:
        item_id = f"msg_mock{_ID}"
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        item = {
            "id": item_id,
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [part],
        }

    def response(status: str, output: list[Any], usage: Any) -> dict[str, Any]:
        return {
            "id": f"resp_mock{_ID}",
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "error": None,
            "incomplete_details": None,
            "instructions": payload.get("instructions"),
            "max_output_tokens": payload.get("max_output_tokens"),
            "model": plan.model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": payload.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "store": payload.get("store", True),
            "temperature": payload.get("temperature", 1.0),
            "text": {"format": {"type": "text"}},
            "tool_choice": payload.get("tool_choice", "auto"),
            "tools": payload.get("tools", []),
            "top_p": payload.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": payload.get("metadata") or {},
        }

    if not stream:
        return _json_reply(200, response("completed", [item], usage), headers)

    seq = itertools.count()

    def event(kind: str, **fields: Any) -> bytes:
        return _sse({"type": kind, "sequence_number": next(seq), **fields}, kind)

    pending = response("in_progress", [], None)
    head = [event("response.created", response=pending), event("response.in_progress", response=pending)]
    where = {"item_id": item_id, "output_index": 0}
    if plan.tool:
        head.append(
            event(
                "response.output_item.added",
                output_index=0,
                item={**item, "status": "in_progress", "arguments": ""},
            )
        )
        kind = "response.function_call_arguments.delta"
        frame = _Frame({"type": kind, "sequence_number": _HOLE, **where, "delta": _HOLE}, kind)
        deltas = [frame.fill(str(next(seq)), e) for e in plan.encoded]
        tail = [event("response.function_call_arguments.done", **where, name=plan.tool, arguments=text)]
    else:
        head.append(
            event(
                "response.output_item.added",
                output_index=0,
                item={**item, "status": "in_progress", "content": []},
            )
        )
        where["content_index"] = 0
        head.append(event("response.content_part.added", **where, part={**part, "text": ""}))
        kind = "response.output_text.delta"
        frame = _Frame(
            {"type": kind, "sequence_number": _HOLE, **where, "delta": _HOLE, "logprobs": []}, kind
        )
        deltas = [frame.fill(str(next(seq)), e) for e in plan.encoded]
        tail = [
            event("response.output_text.done", **where, text=text, logprobs=[]),
            event("response.content_part.done", **where, part=part),
        ]
    tail += [
        event("response.output_item.done", output_index=0, item=item),
        event("response.completed", response=response("completed", [item], usage)),
    ]
    return _Reply(200, stream=True, head=head, deltas=deltas, tail=tail, headers=headers)


def _converse_reply(plan: _Plan, stream: bool, ctl: Control) -> _Reply:
    """Bedrock Converse: an ``output.message`` object, or ConverseStream's event-stream frames
    ``messageStart``, [``contentBlockStart``], ``contentBlockDelta`` (N of them), ``contentBlockStop``,
    ``messageStop``, ``metadata`` (or an exception frame right after the deltas)."""
    stop_reason = "tool_use" if plan.tool else "end_turn"
    usage = {
        "inputTokens": plan.prompt_tokens,
        "outputTokens": plan.completion_tokens,
        "totalTokens": plan.prompt_tokens + plan.completion_tokens,
    }
    metrics = {"latencyMs": max(1, round(ctl.ttft_ms))}
    tool_id = f"tooluse_mock{_ID}"
    if not stream:
        block = (
            {"toolUse": {"toolUseId": tool_id, "name": plan.tool, "input": json.loads(plan.text)}}
            if plan.tool
            else {"text": plan.text}
        )
        reply = {
            "output": {"message": {"role": "assistant", "content": [block]}},
            "stopReason": stop_reason,
            "usage": usage,
            "metrics": metrics,
        }
        return _json_reply(200, reply, _AMZN_REQUEST_ID)

    pad = map(_padding, itertools.count())
    head = [_es_event("messageStart", {"role": "assistant", "p": next(pad)})]
    framed: tuple[bytes, ...] = ()
    if plan.tool:
        start = {"toolUse": {"toolUseId": tool_id, "name": plan.tool}}
        head.append(_es_event("contentBlockStart", {"contentBlockIndex": 0, "start": start, "p": next(pad)}))
        framed = (head[-1],)  # the only frame with an id in it
        delta: dict[str, Any] = {"toolUse": {"input": _HOLE}}
    else:
        delta = {"text": _HOLE}
    frame = _Frame({"contentBlockIndex": 0, "delta": delta, "p": _HOLE}, sse=False)
    deltas = [_es_event("contentBlockDelta", frame.fill(e, _dumps(next(pad)))) for e in plan.encoded]
    if ctl.bedrock_exception:
        name = ctl.bedrock_exception
        message = ctl.error_message or _BEDROCK_STREAM_ERRORS.get(name, f"Mock {name}.")
        tail = [_es_exception(name, message)]
    else:
        tail = [
            _es_event("contentBlockStop", {"contentBlockIndex": 0, "p": next(pad)}),
            _es_event("messageStop", {"stopReason": stop_reason, "p": next(pad)}),
            _es_event("metadata", {"usage": usage, "metrics": metrics, "p": next(pad)}),
        ]
    return _Reply(
        200,
        stream=True,
        head=head,
        deltas=deltas,
        tail=tail,
        headers=_AMZN_REQUEST_ID,
        stream_type=_EVENTSTREAM_TYPE,
        framed=framed,
    )


_CONVERSE_PATH = re.compile(r"/model/[^/]+/(converse|converse-stream)$")


def build_reply(method: str, path: str, body: bytes, payload: Any, ctl: Control) -> _Reply:
    """Route a parsed request to its reply. ``payload`` is the decoded JSON body (None if absent/invalid)."""
    if path.endswith("/healthz") and method in ("GET", "HEAD"):
        return _json_reply(200, {"status": "ok"})
    api: Api
    converse = _CONVERSE_PATH.search(path)
    if path.endswith("/chat/completions") or path.endswith("/responses"):
        api = "openai"
    elif path.endswith("/messages"):
        api = "anthropic"
    elif converse:
        api = "bedrock"
    else:
        return _error_reply("openai", 404, f"Unknown route {method} {path}", "unknown_url")
    if method != "POST":
        return _error_reply(api, 404, f"Unknown route {method} {path}", "unknown_url")
    if ctl.status >= 400:
        return _error_reply(api, ctl.status, ctl.error_message)
    if not isinstance(payload, dict):
        return _error_reply(api, 400, "We could not parse the JSON body of your request.")
    plan = _plan(payload, path, body, ctl)
    if converse:  # Bedrock streams by endpoint, not by a body flag
        return _converse_reply(plan, converse.group(1) == "converse-stream", ctl)
    stream = payload.get("stream") is True
    if api == "anthropic":
        return _messages_reply(plan, stream)
    if path.endswith("/responses"):
        return _responses_reply(plan, payload, stream)
    return _chat_reply(plan, payload, stream)


# ---------------------------------------------------------------------------------------------------------
# HTTP/1.1 wire


@functools.cache
def _status_line(status: int) -> str:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP/1.1 {status} {phrase}\r\n"


def _parse_head(block: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Request line and headers (lowercased names; repeats joined with ', '). ValueError if malformed."""
    lines = block.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"unsupported version {version!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name[-1] in " \t":
            raise ValueError(f"bad header line {line!r}")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return method, target, version, headers


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``pos``: (body, end offset), or None if still incomplete."""
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)  # ValueError on garbage
        pos = eol + 2
        if size == 0:
            while True:  # skip trailer fields up to the empty line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return bytes(out), pos + 2
                pos = eol + 2
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        pos += size + 2


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class _Connection(asyncio.Protocol):
    """One client connection: parse a request, answer it, repeat (keep-alive).

    Undelayed replies are written synchronously from ``data_received``; delayed ones run as a task, and
    further buffered requests wait until it finishes (no pipelining across a delayed stream).
    """

    def __init__(self, owner: MockProvider) -> None:
        self.owner = owner
        self.id = next(owner._connection_ids)
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.task: asyncio.Task[None] | None = None
        self.closed = False
        self.closing_on_purpose = False  # our own drop/close/shutdown, not the client's doing
        self.continue_sent = False

    # -- asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.owner._connection_made(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.task is not None and not self.task.done():
            if not self.closing_on_purpose:
                self.owner._event("client_closed_midstream", self.id)
            self.task.cancel()
        self.owner._connection_lost(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.task is None:
            self._process()

    # -- request handling ---------------------------------------------------------------------------------

    def _process(self) -> None:
        while not self.closed and self.task is None and self.buf:
            try:
                request = self._take_request()
            except ValueError:
                self._respond_and_close(_error_reply("openai", 400, "Malformed HTTP request."))
                return
            if request is None:
                return
            self._handle(*request)

    def _take_request(self) -> tuple[str, str, str, dict[str, str], bytes] | None:
        """Pop one complete request off the buffer, or return None until more bytes arrive."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > _MAX_HEAD:
                raise ValueError("request head too large")
            return None
        method, target, version, headers = _parse_head(bytes(self.buf[:end]))
        start = end + 4
        if "chunked" in headers.get("transfer-encoding", "").lower():
            decoded = _dechunk(self.buf, start)
        else:
            length = int(headers.get("content-length", "0"))
            decoded = (
                (bytes(self.buf[start : start + length]), start + length)
                if len(self.buf) - start >= length
                else None
            )
        if decoded is None:
            if not self.continue_sent and headers.get("expect", "").lower() == "100-continue":
                self.continue_sent = True
                self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return None
        body, stop = decoded
        del self.buf[:stop]
        self.continue_sent = False
        return method, target, version, headers, body

    def _handle(self, method: str, target: str, version: str, headers: dict[str, str], body: bytes) -> None:
        owner = self.owner
        path, _, query = target.partition("?")
        payload = _loads(body) if owner.record else _UNPARSED
        if owner.record:
            owner._record(
                RecordedRequest(method, path, headers, body, payload, self.id, time.monotonic(), target)
            )
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        try:
            mock_headers = tuple((k[7:], v) for k, v in headers.items() if k.startswith("x-mock-"))
            ctl = owner._control(query, mock_headers)
        except ValueError as exc:
            self._respond_and_close(_error_reply("openai", 400, f"Bad mock control: {exc}"))
            return
        if owner.fail_fraction and method == "POST" and owner._fails_next():
            ctl = dataclasses.replace(ctl, status=owner.fail_status)
        reply = owner._reply(method, path, body, payload, ctl)
        stamp = _stamper(reply.framed)
        if ctl.ttft_ms or (reply.stream and ctl.delay_ms and len(reply.deltas) > 1):
            slow = self._send_slowly(reply, stamp, ctl, keep_alive)
            self.task = asyncio.get_running_loop().create_task(slow)
            self.task.add_done_callback(self._task_done)
        elif reply.stream and ctl.drop_after is not None:
            events = b"".join(reply.head + reply.deltas[: ctl.drop_after])
            self._write(stamp(reply.wire_head(keep_alive) + _http_chunk(events)))
            self._close_on_purpose()
        else:  # the fast path: one cached blob, stamped, one write
            self._write(stamp(reply.whole(keep_alive)))
            if not keep_alive:
                self._close_on_purpose()

    # -- writing ------------------------------------------------------------------------------------------

    async def _send_slowly(
        self, reply: _Reply, stamp: Callable[[bytes], bytes], ctl: Control, keep_alive: bool
    ) -> None:
        """Delayed path: TTFT sleep, then one HTTP chunk per delta with ``delay_ms`` between them."""
        if ctl.ttft_ms:
            await asyncio.sleep(ctl.ttft_ms / 1000)
        if not reply.stream:
            self._write(stamp(reply.whole(keep_alive)))
        else:
            deltas = reply.deltas if ctl.drop_after is None else reply.deltas[: ctl.drop_after]
            self._write(stamp(reply.wire_head(keep_alive) + _http_chunk(b"".join(reply.head + deltas[:1]))))
            for delta in deltas[1:]:
                if ctl.delay_ms:
                    await asyncio.sleep(ctl.delay_ms / 1000)
                if self.closed:
                    return
                self._write(_http_chunk(stamp(delta)))
            if ctl.drop_after is not None:
                self._close_on_purpose()
                return
            self._write(_http_chunk(stamp(b"".join(reply.tail))) + b"0\r\n\r\n")
        if not keep_alive:
            self._close_on_purpose()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.task = None
        if not task.cancelled() and task.exception() is not None:
            self._close_on_purpose()
        if not self.closed:
            self._process()  # requests that arrived while we were streaming

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _respond_and_close(self, reply: _Reply) -> None:
        self._write(_stamper(reply.framed)(reply.whole(keep_alive=False)))
        self._close_on_purpose()

    def _close_on_purpose(self) -> None:
        """Close after flushing what was written; for drop-after this is the abrupt, terminator-less end."""
        self.closing_on_purpose = True
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closing_on_purpose = True
        if self.transport is not None:
            self.transport.abort()


# ---------------------------------------------------------------------------------------------------------
# Server object: threaded for tests, in-process for the CLI


def _new_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class MockProvider:
    """The mock server. ``start()`` runs it on its own event loop in a daemon thread (tests);
    ``serve()`` runs it on the current loop (CLI/bench).

    With ``record=True`` every request and connection event is kept for inspection; the bench passes
    ``record=False`` so no lock or allocation is spent on that.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        record: bool = True,
        defaults: Control | None = None,
        use_uvloop: bool = True,
        fail_fraction: float = 0.0,
        fail_status: int = 429,
    ) -> None:
        self.host = host
        self.port = port
        self.record = record
        self.defaults = defaults or Control()
        self.use_uvloop = use_uvloop
        self.fail_fraction = min(1.0, max(0.0, fail_fraction))
        self.fail_status = fail_status
        self._posts = 0  # POST requests seen, for the evenly spread failures
        self.requests: list[RecordedRequest] = []
        self.events: list[tuple[float, str, int]] = []
        self._cond = threading.Condition()
        self._connection_ids = itertools.count(1)
        self._connections: set[_Connection] = set()
        self._opened = 0
        self._replies: dict[tuple[str, str, bytes, Control], tuple[int, _Reply]] = {}
        self._controls: dict[tuple[str, tuple[tuple[str, str], ...]], Control] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start (or the last ``clear()``)."""
        return self._opened

    # -- recording (called on the loop thread) -------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()

    def _event(self, kind: str, connection_id: int) -> None:
        if self.record:
            with self._cond:
                self.events.append((time.monotonic(), kind, connection_id))
                self._cond.notify_all()

    def _connection_made(self, conn: _Connection) -> None:
        self._connections.add(conn)
        self._opened += 1
        self._event("connect", conn.id)

    def _connection_lost(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        self._event("disconnect", conn.id)

    def _reply(self, method: str, path: str, body: bytes, payload: Any, ctl: Control) -> _Reply:
        """The reply template for this request, built once per distinct (method, path, body, control)
        and second (``created`` timestamps have one-second resolution).

        A benchmark repeats one request, so this skips JSON decoding and encoding entirely: the hot path
        is parse head, look up, stamp, write.
        """
        key = (method, path, body, ctl)
        now = int(time.time())
        second, reply = self._replies.get(key) or (0, None)
        if reply is None or second != now:
            if payload is _UNPARSED:
                payload = _loads(body)
            reply = build_reply(method, path, body, payload, ctl)
            if len(self._replies) >= 1024:
                self._replies.clear()
            self._replies[key] = (now, reply)
        return reply

    def _fails_next(self) -> bool:
        """Count a POST; True when it is one of the ``fail_fraction`` share (every 1/F-th, evenly)."""
        self._posts += 1
        k, f = self._posts, self.fail_fraction
        return math.floor(k * f + 1e-9) > math.floor((k - 1) * f + 1e-9)

    def _control(self, query: str, mock_headers: tuple[tuple[str, str], ...]) -> Control:
        """Defaults, overridden by query parameters, then by ``x-mock-*`` headers (memoized)."""
        key = (query, mock_headers)
        ctl = self._controls.get(key)
        if ctl is None:
            ctl = self.defaults
            if query:
                params = {k.removeprefix("x-mock-"): v for k, v in parse_qsl(query)}
                ctl = ctl.override({k: v for k, v in params.items() if k.replace("_", "-") in _QUERY_KEYS})
            ctl = ctl.override(dict(mock_headers))
            if len(self._controls) >= 1024:
                self._controls.clear()
            self._controls[key] = ctl
        return ctl

    # -- inspection (any thread) ---------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[MockProvider], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate(self)`` holds (re-checked on every recorded request/event)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def clear(self) -> None:
        with self._cond:
            self.requests.clear()
            self.events.clear()
            self._opened = 0

    # -- serving -------------------------------------------------------------------------------------------

    async def serve(
        self,
        stop: asyncio.Event,
        sock: socket.socket | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        """Serve on the running loop until ``stop`` is set, then drop every connection."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            server = await loop.create_server(lambda: _Connection(self), sock=sock)
        else:
            server = await loop.create_server(lambda: _Connection(self), self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        if on_ready is not None:
            on_ready()
        try:
            await stop.wait()
        finally:
            server.close()
            tasks = [c.task for c in self._connections if c.task is not None]
            for conn in list(self._connections):
                conn.abort()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

    def start(self) -> Self:
        """Listen on a private event loop in a daemon thread; returns once ``port``/``url`` are valid."""
        if self._thread is not None:
            raise RuntimeError("MockProvider already started")
        self._ready.clear()
        self._thread = threading.Thread(
            target=self._thread_main, name=f"mock-provider:{self.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("mock provider did not start")
        if self._error is not None:
            self._thread = None
            raise self._error
        return self

    def _thread_main(self) -> None:
        loop = _new_loop(self.use_uvloop)
        asyncio.set_event_loop(loop)
        self._loop, self._stop = loop, asyncio.Event()
        try:
            loop.run_until_complete(self.serve(self._stop, on_ready=self._ready.set))
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    def stop(self) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or loop is None or stop is None:
            return
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stop.set)
            thread.join(5)
        self._thread = self._loop = self._stop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------------------
# CLI


def _listen_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _run_worker(provider: MockProvider, sock: socket.socket) -> None:
    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await provider.serve(stop, sock=sock)

    loop = _new_loop(provider.use_uvloop)
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.mock_provider``: serve until SIGINT/SIGTERM; N workers share the port via
    SO_REUSEPORT (the listening sockets are created before forking, so the port is ready when we print)."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.mock_provider",
        description="Mock LLM provider (OpenAI/Anthropic/Bedrock wire formats).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--chunks", type=int, default=DEFAULT_CHUNKS, help="default x-mock-chunks")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="default x-mock-delay-ms")
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="default x-mock-ttft-ms")
    parser.add_argument("--chunk-bytes", type=int, default=0, help="default x-mock-chunk-bytes")
    parser.add_argument(
        "--reply-text",
        default=DEFAULT_TEXT,
        help="fixed reply text, e.g. a router's JSON route list (a 'reply with exactly:' still wins)",
    )
    parser.add_argument(
        "--fail-fraction", type=float, default=0.0, help="answer this share of POSTs (evenly) with an error"
    )
    parser.add_argument("--fail-status", type=int, default=429, help="status of those errors (default 429)")
    parser.add_argument("--no-uvloop", action="store_true", help="use the stdlib event loop")
    parser.add_argument("--record", action="store_true", help="keep requests in memory (debugging only)")
    args = parser.parse_args(argv)

    defaults = Control(
        chunks=args.chunks,
        delay_ms=args.delay_ms,
        ttft_ms=args.ttft_ms,
        chunk_bytes=args.chunk_bytes,
        reply_text=args.reply_text,
    )
    provider = MockProvider(
        args.host,
        args.port,
        record=args.record,
        defaults=defaults,
        use_uvloop=not args.no_uvloop,
        fail_fraction=args.fail_fraction,
        fail_status=args.fail_status,
    )
    workers = max(1, args.workers)
    socks = [_listen_socket(args.host, args.port, reuse_port=workers > 1)]
    port = socks[0].getsockname()[1]
    socks += [_listen_socket(args.host, port, reuse_port=True) for _ in range(workers - 1)]
    provider.port = port
    print(f"listening on {provider.url}", flush=True)
    if workers == 1:
        _run_worker(provider, socks[0])
        return

    pids = []
    for sock in socks:
        pid = os.fork()
        if pid == 0:  # child: keep only its own socket, or the kernel would route connections to the others
            for other in socks:
                if other is not sock:
                    other.close()
            code = 1
            try:
                _run_worker(provider, sock)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for sock in socks:
        sock.close()

    def forward(signum: int, frame: object) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    for pid in pids:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
