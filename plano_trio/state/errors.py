"""Exceptions raised by the state store.

They are separate from HTTP concerns: the gateway maps `StoreFullError` to
`503` with `Retry-After: <retry_after_s>`, `StateUnavailableError` to `503`,
and decides itself what an unknown `previous_response_id` means (Plano: 409).
"""

from __future__ import annotations

from plano_trio.config.state_settings import StateConfigError

__all__ = [
    "StateConfigError",
    "StateError",
    "StateStartupError",
    "StateUnavailableError",
    "StoreClosedError",
    "StoreFullError",
]


class StateError(Exception):
    """Base class of the errors the running store raises (`StateConfigError` comes from the config)."""


class StoreFullError(StateError):
    """The write queue has no free slot: refuse the request before it goes upstream.

    Raised by `admit()` (and by `put()` without a prior `admit()`).  Refusing
    up front is the whole point: a turn that was accepted is never dropped.
    """

    def __init__(self, message: str = "state store write queue is full", *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StoreClosedError(StoreFullError):
    """The store is draining or closed; like a full queue, the request must not go upstream."""

    def __init__(self, message: str = "state store is shutting down") -> None:
        super().__init__(message, retry_after_s=1)


class StateStartupError(StateError):
    """The store could not start (database unreachable, migrations failed).

    The message names host, port, database and user, never the password.
    """


class StateUnavailableError(StateError):
    """A read (`history`, `get`, `delete`) could not reach the database in time.

    `str()` is what a client may be told, and only that: the gateway puts it in
    a 503 body, and the database's host, port, name and user are nobody's
    business outside the operator's log.  `detail` (target and cause,
    password scrubbed) is for that log; the store writes it there itself,
    once per incident.
    """

    public_message = "conversation state database unavailable"

    def __init__(self, detail: str = "") -> None:
        super().__init__(self.public_message)
        self.detail = detail
