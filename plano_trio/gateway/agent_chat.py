"""The Chat-shaped data an agent chain passes around, as pure functions (no I/O).

An agent listener speaks OpenAI Chat to its agents whatever API the client
used, so everything here works on decoded Chat JSON:

* where an agent lives: `agent_target` turns its configured `url` into an
  origin and a request target (`/v1/chat/completions` when the URL has no
  path, as Plano's Envoy hop amounts to, else the URL's own path, which
  Plano ignores);
* what an intermediate agent said: `ChatCollector` folds a Chat stream's
  chunks into one completion, `completion_text` reads a whole answer;
* how the next agent hears it: `insert_answer` puts it into the conversation
  as `{"role": "assistant", "name": <agent id>, "content": <text>}` before the
  last user message, as Plano does;
* how a last answer reaches a client that asked for the other form:
  `completion_chunks` turns a whole answer into stream chunks (an agent
  that ignores `stream: true`), `ChatCollector.completion` a stream into a
  whole answer (an agent that always streams, like Plano's demo agents).

Agent output is untrusted: it is read through the typed wire model of
`apis.provider_chat`, so a wrong shape is an `AgentAnswerError` with a
short reason, never a KeyError halfway through.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from plano_trio.apis import provider_chat as chat_wire
from plano_trio.config.values import split_url
from plano_trio.translate.base import Json
from plano_trio.upstream import Origin

CHAT_PATH = "/v1/chat/completions"
"""Where an agent whose `url` has no path is called (Plano always calls this path)."""


class AgentAnswerError(Exception):
    """An agent's answer is not a Chat completion (or stream) we can read; `reason` is client-safe."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AgentTarget(NamedTuple):
    origin: Origin
    target: bytes
    """The request target: path and query."""


def agent_target(url: str) -> AgentTarget:
    """Where to POST an agent's Chat request; ValueError when `url` is not a usable http(s) URL."""
    parts = split_url(url.strip())
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"agent url {url!r} is not an http(s) URL with a host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path if parts.path not in ("", "/") else CHAT_PATH
    target = f"{path}?{parts.query}" if parts.query else path
    try:
        encoded = target.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"agent url {url!r} has a path that is not ASCII (percent-encode it)") from None
    return AgentTarget(Origin(parts.scheme, parts.hostname, port), encoded)


def insert_answer(messages: list[Any], agent_id: str, text: str) -> list[Any]:
    """`messages` with the agent's answer as a named assistant message before the last user message.

    As Plano: the next agent sees the user's request last, with what the
    earlier agents said just before it.  A conversation whose last user
    message is not last (it ends with an assistant or tool message) gets the
    answer before that last user message all the same; without any user
    message, the answer goes before the last message, as Plano puts it.
    Raises ValueError for an empty conversation (Plano's "No messages in
    conversation history").
    """
    if not messages:
        raise ValueError("No messages in conversation history")
    at = len(messages) - 1
    for index in range(len(messages) - 1, -1, -1):
        entry = messages[index]
        if isinstance(entry, dict) and entry.get("role") == "user":
            at = index
            break
    answer = {"role": "assistant", "name": agent_id, "content": text}
    return [*messages[:at], answer, *messages[at:]]


def _completion(value: object) -> chat_wire.Completion:
    try:
        return msgspec.convert(value, chat_wire.Completion)
    except msgspec.ValidationError as error:
        raise AgentAnswerError(f"answered with a malformed chat completion: {error}") from None


def _error_text(error: object) -> str:
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str):
            return message
    return str(error)[:500]


def completion_text(body: object) -> str:
    """The text of a whole Chat completion (its first choice's message)."""
    if not isinstance(body, dict):
        raise AgentAnswerError("answered with JSON that is not an object")
    completion = _completion(body)
    if completion.error is not None:
        raise AgentAnswerError(f"answered with an error: {_error_text(completion.error)}")
    choices = completion.choices
    if not choices:
        raise AgentAnswerError("answered with a chat completion without choices")
    message = choices[0].message
    if message is None:
        raise AgentAnswerError("answered with a chat completion whose choice has no message")
    return message.text()


class _ToolCall:
    """One tool call's fragments, joined once at the end (a `str +=` per fragment copies the whole string
    each time: quadratic in a hostile agent's fragment count)."""

    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: list[str] = []
        self.arguments: list[str] = []


class ChatCollector:
    """Chat stream chunks folded into one answer: its text, and a whole `chat.completion`.

    Content and tool-call fragments are joined in arrival order; the id,
    model and creation time of the first chunk that has them are kept, and
    the last finish reason and usage seen.  An in-stream `error` chunk is an
    AgentAnswerError.  The caller bounds how much it feeds.
    """

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.created: int | None = None
        self.finish_reason: str | None = None
        self.usage: chat_wire.Usage | None = None
        self._text: list[str] = []
        self._tools: dict[int, _ToolCall] = {}

    def feed(self, chunk: Json) -> None:
        completion = _completion(chunk)
        if completion.error is not None:
            raise AgentAnswerError(f"broke off its stream with an error: {_error_text(completion.error)}")
        self.id = self.id or completion.id
        self.model = self.model or completion.model
        self.created = self.created if self.created is not None else completion.created
        if completion.usage is not None:
            self.usage = completion.usage
        for choice in completion.choices or ():
            if choice.index != 0:
                continue
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
            delta = choice.delta or choice.message
            if delta is None:
                continue
            text = delta.text()
            if text:
                self._text.append(text)
            for position, call in enumerate(delta.tool_calls or ()):
                self._tool_fragment(position if call.index is None else call.index, call)

    def _tool_fragment(self, index: int, call: chat_wire.ToolCall) -> None:
        entry = self._tools.get(index)
        if entry is None:
            entry = self._tools[index] = _ToolCall()
        entry.id = entry.id or call.id
        function = call.function
        if function is not None:
            if function.name:
                entry.name.append(function.name)
            if function.arguments:
                entry.arguments.append(function.arguments)

    @property
    def text(self) -> str:
        return "".join(self._text)

    def completion(self, model: str) -> Json:
        """The stream as the `chat.completion` a non-streaming request would have received."""
        message: Json = {"role": "assistant", "content": self.text}
        if self._tools:
            message["tool_calls"] = [
                {
                    "id": call.id or f"call_{index}",
                    "type": "function",
                    "function": {"name": "".join(call.name), "arguments": "".join(call.arguments)},
                }
                for index, call in sorted(self._tools.items())
            ]
            if not self._text:
                message["content"] = None
        out: Json = {
            "id": self.id or "chatcmpl-agent",
            "object": "chat.completion",
            "created": self.created or 0,
            "model": self.model or model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason or "stop"}],
        }
        if self.usage is not None:
            out["usage"] = msgspec.to_builtins(self.usage)
        return out


def completion_chunks(body: Json, model: str, include_usage: bool) -> list[Json]:
    """A whole Chat completion as the chunks of a stream saying the same (first choice only)."""
    completion = _completion(body)
    if completion.error is not None:
        raise AgentAnswerError(f"answered with an error: {_error_text(completion.error)}")
    choices = completion.choices
    if not choices or choices[0].message is None:
        raise AgentAnswerError("answered with a chat completion without a message")
    message = choices[0].message
    base: Json = {
        "id": completion.id or "chatcmpl-agent",
        "object": "chat.completion.chunk",
        "created": completion.created or 0,
        "model": completion.model or model,
    }
    delta: Json = {"role": "assistant", "content": message.text()}
    if message.tool_calls:
        delta["tool_calls"] = [
            {
                "index": position,
                "id": call.id or f"call_{position}",
                "type": "function",
                "function": {
                    "name": (call.function.name if call.function else None) or "",
                    "arguments": (call.function.arguments if call.function else None) or "",
                },
            }
            for position, call in enumerate(message.tool_calls)
        ]
    finish = choices[0].finish_reason or "stop"
    chunks = [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
    ]
    if include_usage and completion.usage is not None:
        chunks.append({**base, "choices": [], "usage": msgspec.to_builtins(completion.usage)})
    return chunks
