"""An agent listener's errors: Plano's bodies, inside the error shape the client's SDK parses.

Plano answers an agent (or filter) 4xx with that status and
`{"error": "ClientError", "agent": <id>, "status": <n>, "agent_response": <body>}`,
and any other failure with `{"error": {"type": "AgentFilterChainError",
"message", "error_chain", "debug_info"}}`.  The first is no error shape any
SDK reads (it raises "could not parse"), so here both keep Plano's fields
but sit inside the client's own envelope: OpenAI's `{"error": {"message",
"type", "param", "code", ...}}` on Chat and Responses, Anthropic's
`{"type": "error", "error": {"type", "message", ...}}` on Messages.  The
`type` inside is Plano's (`ClientError`, `AgentFilterChainError`); SDKs pick
their exception class from the status, so nothing is lost.

Statuses differ from Plano in one place: Plano answers every failure that
is not an agent 4xx with 400, which tells an SDK the request itself was
wrong and must not be retried.  An agent that is down, answers garbage or
fails with a 5xx is 502 here, one that does not answer in time 504; a
request the listener cannot serve (no messages, unknown agent in the
listener) stays 400, as in Plano.
"""

from __future__ import annotations

from typing import Any

import msgspec

from plano_trio.gateway.errors import ApiError, ErrorStyle

_encode = msgspec.json.Encoder().encode

CHAIN_ERROR = "AgentFilterChainError"
CLIENT_ERROR = "ClientError"

MAX_AGENT_RESPONSE_CHARS = 64 * 1024
"""Most characters of an agent's (or filter's) own error body echoed to the client."""


class AgentError(ApiError):
    """An `ApiError` whose body also carries Plano's fields (`plano`), in either client shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str,
        code: str,
        plano: dict[str, Any],
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(status, message, type=type, code=code, headers=headers)
        self.plano = plano

    def but(
        self, *, message: str | None = None, headers: tuple[tuple[bytes, bytes], ...] | None = None
    ) -> AgentError:
        return AgentError(
            self.status,
            self.message if message is None else message,
            type=self.type,
            code=self.code or "",
            plano=self.plano,
            headers=self.headers if headers is None else headers,
        )

    def body(self, style: ErrorStyle = ErrorStyle.OPENAI) -> bytes:
        if style is ErrorStyle.ANTHROPIC:
            inner: dict[str, Any] = {"type": self.type, "message": self.message, **self.plano}
            return _encode({"type": "error", "error": inner})
        inner = {"message": self.message, "type": self.type, "param": None, "code": self.code, **self.plano}
        return _encode({"error": inner})


def _clip(text: str) -> str:
    return text if len(text) <= MAX_AGENT_RESPONSE_CHARS else text[:MAX_AGENT_RESPONSE_CHARS] + "…"


def client_error(agent_id: str, status: int, body: bytes, *, what: str = "Agent") -> AgentError:
    """An agent or filter refused the request with a 4xx: that status, Plano's `ClientError` fields."""
    text = _clip(body.decode("utf-8", "replace"))
    return AgentError(
        status,
        f"{what} '{agent_id}' answered {status}",
        type=CLIENT_ERROR,
        code="agent_client_error" if what == "Agent" else "filter_client_error",
        plano={"agent": agent_id, "status": status, "agent_response": text},
    )


def chain_error(status: int, message: str, code: str, *causes: str) -> AgentError:
    """Any other failure of the chain, as Plano's `AgentFilterChainError` (message, chain, debug info)."""
    chain = [message, *causes]
    return AgentError(
        status,
        message,
        type=CHAIN_ERROR,
        code=code,
        plano={"error_chain": chain, "debug_info": f"{code}: {' <- '.join(chain)}"},
    )


def bad_request(message: str, code: str) -> AgentError:
    """The request cannot be served by this listener (400, as Plano)."""
    return chain_error(400, message, code)


def agent_unreachable(agent_id: str, detail: str, timeout: bool) -> AgentError:
    if timeout:
        return chain_error(504, f"Agent '{agent_id}' did not answer in time", "agent_timeout", detail)
    return chain_error(502, f"Agent '{agent_id}' could not be reached", "agent_unreachable", detail)


def agent_server_error(agent_id: str, status: int, body: bytes) -> AgentError:
    """An agent 5xx: Plano's `ServerError` text, answered as 502 (the agent, not the request, failed)."""
    text = _clip(body.decode("utf-8", "replace"))
    return chain_error(
        502,
        f"Server error from agent '{agent_id}' (HTTP {status}): {text}",
        "agent_server_error",
    )


def agent_broke(agent_id: str, reason: str) -> AgentError:
    """An agent answered, but not with anything readable as a Chat completion or stream."""
    return chain_error(502, f"Agent '{agent_id}' {reason}", "agent_malformed")


def agent_deadline(agent_id: str, timeout_s: float) -> AgentError:
    return chain_error(
        504,
        f"Agent '{agent_id}' did not finish within the listener timeout of {timeout_s:g}s",
        "agent_timeout",
    )
