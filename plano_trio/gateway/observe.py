"""The observe stage: how a request ended, written as exactly one access-log line.

Every handler returns an `Outcome`; the app hands it here once the response
is over.  Metrics and spans read the same record when they land, so what is
logged, counted and traced cannot disagree.
"""

from __future__ import annotations

import logging
import time
from typing import Literal, NamedTuple

from plano_trio.apis.openai_chat import Usage
from plano_trio.gateway.context import RequestContext

access_log = logging.getLogger("plano_trio.access")

Result = Literal["ok", "error", "upstream_error", "client_disconnected", "timeout", "cut"]
"""ok: answered as the provider meant · error: refused by the gateway (4xx/5xx of its own) ·
upstream_error: the provider failed or broke off · client_disconnected: the client left (or stopped
reading) first · timeout: the listener deadline or an idle bound ended it · cut: the shutdown grace
period ended a stream."""


class Outcome(NamedTuple):
    status: int
    """The HTTP status sent (0 if nothing was: the client left before the response began)."""
    result: Result = "ok"
    model: str | None = None
    upstream: str | None = None
    stream: bool = False
    first_byte: float | None = None
    """`perf_counter()` when the first response byte was ready for the client."""
    usage: Usage | None = None
    error: str | None = None
    attempts: int = 0
    """Attempts made under a retry policy (0: the request had none, so exactly one was made)."""


def log_access(ctx: RequestContext, outcome: Outcome) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    now = time.perf_counter()
    fields: dict[str, object] = {
        "request_id": ctx.request_id.decode("ascii"),
        "method": ctx.method,
        "path": ctx.path,
        "status": outcome.status,
        "duration_ms": round((now - ctx.started) * 1000, 2),
        "outcome": outcome.result,
    }
    if outcome.model is not None:
        fields["model"] = outcome.model
    if outcome.upstream is not None:
        fields["upstream"] = outcome.upstream
    if outcome.stream:
        fields["stream"] = True
    if outcome.first_byte is not None:
        fields["ttfb_ms"] = round((outcome.first_byte - ctx.started) * 1000, 2)
    if outcome.usage is not None:
        fields["prompt_tokens"] = outcome.usage.prompt_tokens
        fields["completion_tokens"] = outcome.usage.completion_tokens
    if outcome.attempts:
        fields["attempts"] = outcome.attempts
    if outcome.error is not None:
        fields["error"] = outcome.error
    access_log.info("%s %s %s", ctx.method, ctx.path, outcome.status, extra={"fields": fields})
