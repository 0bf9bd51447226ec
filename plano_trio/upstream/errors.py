"""The one exception the upstream client raises.

Callers (the gateway) turn upstream failures into HTTP errors for the client:
a refused connection and a timeout deserve different status codes and texts,
so the failure is classified once, here, by `kind` instead of leaking trio,
ssl and http1 exception types up the stack.
"""

from __future__ import annotations

from typing import Literal

UpstreamErrorKind = Literal["connect", "timeout", "protocol", "closed", "too_large"]


class UpstreamError(Exception):
    """An upstream exchange failed.

    `kind`:
    - ``connect``: TCP connect, DNS or TLS handshake failed (nothing was sent);
    - ``timeout``: connect, response head or a gap between body chunks took too long;
    - ``protocol``: the upstream spoke broken HTTP/1.1 (or the request itself was invalid);
    - ``closed``: the upstream closed/reset the connection before the response was complete;
    - ``too_large``: a body read whole (`UpstreamResponse.read`) exceeded the caller's limit.

    None of them is retried by the client: a request that was written may
    have reached the upstream, and only the caller knows whether sending it
    again is safe.

    `message` is human-readable and names the upstream as ``host:port``.
    """

    __slots__ = ("kind", "message")

    def __init__(self, kind: UpstreamErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: UpstreamErrorKind = kind
        self.message = message

    def __repr__(self) -> str:
        return f"UpstreamError({self.kind!r}, {self.message!r})"
