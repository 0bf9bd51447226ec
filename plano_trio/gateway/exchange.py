"""One client request's life: its identity, timing and how it ended.

An `Exchange` is created per HTTP request by the app and handed to the
handler; the handler fills in what it learned (model, status, usage) and the
app writes exactly one access-log line from it when the request is over.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

from plano_trio.apis.openai_chat import Usage
from plano_trio.gateway.asgi import Header, Receive, Send
from plano_trio.gateway.errors import ErrorStyle

access_log = logging.getLogger("plano_trio.access")


def new_request_id() -> bytes:
    """32 hex digits; a correlation id, not a secret, so no `getrandom` syscall per request."""
    return b"%032x" % random.getrandbits(128)


@dataclass(slots=True)
class Exchange:
    method: str
    path: str
    headers: list[Header]
    receive: Receive
    send: Send
    request_id: bytes
    started: float = field(default_factory=time.perf_counter)
    status: int = 0
    model: str | None = None
    route: str | None = None
    stream: bool = False
    first_byte: float | None = None
    usage: Usage | None = None
    outcome: str = "ok"
    """ok | client_disconnected | upstream_error | timeout | error"""
    error: str | None = None
    style: ErrorStyle = ErrorStyle.OPENAI
    """Error JSON shape the client's SDK parses (Anthropic on `/v1/messages`)."""

    def log(self) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        now = time.perf_counter()
        fields: dict[str, object] = {
            "request_id": self.request_id.decode(),
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "duration_ms": round((now - self.started) * 1000, 2),
            "outcome": self.outcome,
        }
        if self.model is not None:
            fields["model"] = self.model
        if self.route is not None:
            fields["upstream"] = self.route
        if self.stream:
            fields["stream"] = True
        if self.first_byte is not None:
            fields["ttfb_ms"] = round((self.first_byte - self.started) * 1000, 2)
        if self.usage is not None:
            fields["prompt_tokens"] = self.usage.prompt_tokens
            fields["completion_tokens"] = self.usage.completion_tokens
        if self.error is not None:
            fields["error"] = self.error
        access_log.info("%s %s %s", self.method, self.path, self.status, extra={"fields": fields})
