"""Pooled keep-alive HTTP/1.1 client for upstream LLM APIs (our own sans-I/O `http1` on trio streams).

On the hot path of every proxied request, hence hand-rolled rather than httpx
(see stack-notes §2).  Typical use::

    pool = UpstreamPool(ssl_context=make_ssl_context(ca_bundle))
    async with await pool.request(origin, b"POST", b"/v1/chat/completions", headers, body,
                                  read_timeout=60) as resp:
        async for chunk in resp:
            ...
"""

from .errors import UpstreamError, UpstreamErrorKind
from .origin import Origin
from .pool import UpstreamPool
from .response import UpstreamResponse
from .tls import make_ssl_context

__all__ = [
    "Origin",
    "UpstreamError",
    "UpstreamErrorKind",
    "UpstreamPool",
    "UpstreamResponse",
    "make_ssl_context",
]
