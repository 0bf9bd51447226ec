"""The built-in demo model `plano_trio/echo`: a provider that answers offline, for a first request.

A newcomer's first request should succeed before they have an API key or a
network: this provider runs inside the gateway (an in-process origin, see
`providers.local`) and answers OpenAI Chat Completions by repeating the last
user message, streamed piece by piece when asked, with usage.  Messages and
Responses clients reach it through the gateway's ordinary translators, so
all three client APIs, streaming and not, and Responses conversation state
work against it exactly as against a remote Chat provider.  It is a demo,
not a model: it does not call tools and ignores sampling parameters.

Usage is counted in whitespace-separated words (not a real tokenizer): the
prompt counts every word of every message, the answer one token per piece
it is streamed in.  `max_tokens` / `max_completion_tokens` cut the answer
at that many pieces with `finish_reason: "length"`, so clients can see how
a cut-off answer looks.  A stream is at most `MAX_EVENTS` content events
(long messages are sent in larger pieces), so the work per request stays
linear in the message size.

Everything here is pure (request bytes in, reply parts out); the one I/O
edge is `open_stream`, which the upstream pool calls to "connect".
"""

from __future__ import annotations

import random
import re
import time
from typing import Any

import msgspec

from plano_trio.providers.local import InProcessServer, LocalReply, LocalRequest

INTERFACE = "plano_trio"
"""The provider prefix: `model: plano_trio/echo` in a config."""
MODEL = "echo"
MAX_EVENTS = 256
NO_MESSAGE = "The echo demo model repeats the last user message; this request had none with text."

_PIECE = re.compile(r"\s*\S+\s*")
_WORD = re.compile(r"\S+")
_JSON = b"application/json"
_encode = msgspec.json.encode


def open_stream() -> InProcessServer:
    """A fresh in-process connection to the demo provider (the pool's `Origin.local`)."""
    return InProcessServer(answer)


def answer(request: LocalRequest) -> LocalReply:
    """The demo provider's reply to one HTTP request, in OpenAI's wire format (errors included)."""
    if request.method != b"POST" or not request.target.split(b"?", 1)[0].endswith(b"/chat/completions"):
        what = f"{request.method.decode('latin-1')} {request.target.decode('latin-1')}"
        return _error(404, f"The demo provider serves POST /v1/chat/completions only, not {what}")
    try:
        payload = msgspec.json.decode(request.body)
    except msgspec.DecodeError as error:
        return _error(400, f"Request body is not valid JSON: {error}")
    if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
        return _error(400, "Request must be a JSON object with a `messages` list", param="messages")
    model = payload.get("model")
    if model != MODEL:
        return _error(
            404, f"The demo provider has one model, `{MODEL}`, not {model!r}", code="model_not_found"
        )
    messages: list[Any] = payload["messages"]
    pieces, tokens, finish = _pieces(_last_user_text(messages), _limit(payload))
    usage = {
        "prompt_tokens": sum(
            len(_WORD.findall(_text(m.get("content")))) for m in messages if isinstance(m, dict)
        ),
        "completion_tokens": tokens,
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    reply_id = f"chatcmpl-echo{random.getrandbits(64):016x}"
    created = int(time.time())
    if payload.get("stream") is True:
        options = payload.get("stream_options")
        with_usage = isinstance(options, dict) and options.get("include_usage") is True
        return _stream(reply_id, created, pieces, finish, usage if with_usage else None)
    completion = {
        "id": reply_id,
        "object": "chat.completion",
        "created": created,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(pieces)},
                "finish_reason": finish,
            }
        ],
        "usage": usage,
    }
    return LocalReply(200, _JSON, [_encode(completion)])


def _stream(
    reply_id: str, created: int, pieces: list[str], finish: str, usage: dict[str, int] | None
) -> LocalReply:
    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return {
            "id": reply_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": MODEL,
            "choices": [choice],
        }

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in pieces]
    events.append(chunk({}, finish))
    if usage is not None:
        events.append({**chunk({}), "choices": [], "usage": usage})
    parts = [b"data: " + _encode(event) + b"\n\n" for event in events]
    parts.append(b"data: [DONE]\n\n")
    return LocalReply(200, b"text/event-stream", parts, stream=True)


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            text = _text(message.get("content"))
            if text.strip():
                return text
    return NO_MESSAGE


def _text(content: Any) -> str:
    """The text of a Chat message's `content`: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _limit(payload: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = payload.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _pieces(text: str, limit: int | None) -> tuple[list[str], int, str]:
    """The answer as stream pieces, its token count and the finish reason.

    A token is a word with the spaces around it; the answer is cut at
    `limit` tokens, then grouped into at most `MAX_EVENTS` pieces.
    """
    pieces = _PIECE.findall(text) or [text]
    finish = "stop"
    if limit is not None and len(pieces) > limit:
        pieces, finish = pieces[:limit], "length"
    tokens = len(pieces)
    if tokens > MAX_EVENTS:
        size = -(-tokens // MAX_EVENTS)
        pieces = ["".join(pieces[i : i + size]) for i in range(0, tokens, size)]
    return pieces, tokens, finish


def _error(status: int, message: str, *, param: str | None = None, code: str | None = None) -> LocalReply:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return LocalReply(status, _JSON, [_encode({"error": error})])
