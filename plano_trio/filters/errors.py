"""The two ways a filter call ends badly, and the bodies Plano answers the client with for each.

A filter that *says no* (an HTTP 4xx, or an MCP tool result with `isError`)
is a decision the client must see with the filter's own words: the request is
rejected with that status.  A filter that is down, slow, answers 5xx or
garbage is an outage, not a verdict.  Callers need to tell the two apart
(the model listener answers 4xx vs 500, output filters pass the chunk
through either way), so they are two exception types with one base.

The body builders are pure and return Plano's exact field names, so a client
written against Plano parses ours; the gateway may wrap them in the client
API's own error shape.
"""

from __future__ import annotations

import json

MAX_MESSAGE_CHARS = 500
"""How much of a misbehaving filter's reply goes into an error message (a log line, not a dump)."""


class FilterError(Exception):
    """A filter call did not produce a body to continue with."""

    def __init__(self, filter_id: str, message: str) -> None:
        super().__init__(message)
        self.filter_id = filter_id
        self.message = message


class FilterRejected(FilterError):
    """The filter refused the request: an HTTP 4xx, or MCP `isError` (reported as 400, as Plano does).

    `body` is the filter's reply (HTTP) or the tool's error text (MCP), as
    bytes, already capped by the client's body limit.
    """

    def __init__(self, filter_id: str, status: int, body: bytes) -> None:
        super().__init__(filter_id, f"filter '{filter_id}' rejected the request (HTTP {status})")
        self.status = status
        self.body = body

    def __repr__(self) -> str:
        return f"FilterRejected({self.filter_id!r}, {self.status}, {self.body[:80]!r})"


class FilterFailed(FilterError):
    """The filter could not be used: unreachable, timed out, 5xx, or a reply we cannot read."""

    def __repr__(self) -> str:
        return f"FilterFailed({self.filter_id!r}, {self.message!r})"


def snippet(data: bytes) -> str:
    """The start of an untrusted reply, decoded leniently, for an error message."""
    text = data[: MAX_MESSAGE_CHARS * 4].decode("utf-8", "replace")
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "…"


def _json(value: object) -> bytes:
    """Compact, non-ASCII kept, keys in insertion order: what Plano's serde_json writes."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _agent_response(body: bytes) -> str:
    """The filter's reply as the string Plano puts in `agent_response` (lossy UTF-8, like Rust's)."""
    return body.decode("utf-8", "replace")


def _status(status: int) -> int:
    """Plano sends the filter's status when it is a valid HTTP status, else 400."""
    return status if 100 <= status <= 999 else 400


def model_listener_rejection(error: FilterRejected) -> tuple[int, bytes]:
    """Status and JSON body for a rejection on the model listener (Plano's `FilterChainError`)."""
    body = {
        "error": "FilterChainError",
        "agent": error.filter_id,
        "status": error.status,
        "agent_response": _agent_response(error.body),
    }
    return _status(error.status), _json(body)


def model_listener_failure(error: FilterFailed) -> tuple[int, bytes]:
    """Status and plain-text body Plano's model listener sends when the chain fails (500)."""
    return 500, f"Filter chain processing failed: {error.message}".encode()


def agent_listener_rejection(error: FilterRejected) -> tuple[int, bytes]:
    """Status and JSON body for a rejection on an agent listener (Plano's `ClientError`)."""
    body = {
        "error": "ClientError",
        "agent": error.filter_id,
        "status": error.status,
        "agent_response": _agent_response(error.body),
    }
    return _status(error.status), _json(body)


def agent_listener_failure(error: FilterFailed) -> tuple[int, bytes]:
    """Status and JSON body for any other failure on an agent listener (400 `AgentFilterChainError`)."""
    body = {
        "error": {
            "type": "AgentFilterChainError",
            "message": error.message,
            "error_chain": [error.message],
            "debug_info": repr(error),
        }
    }
    return 400, _json(body)
