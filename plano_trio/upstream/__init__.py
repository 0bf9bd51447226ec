"""Pooled keep-alive HTTP/1.1 client for upstream LLM APIs (our own sans-I/O `http1` on trio streams).

On the hot path of every proxied request, hence hand-rolled rather than httpx:
measured under trio, httpx cost ~1.5 ms of CPU per request and its latency
collapsed as concurrency grew; this client costs ~0.15-0.2 ms.  Typical use::

    pool = UpstreamPool(ssl_context=make_ssl_context(ca_bundle), read_timeout=120)
    async with await pool.request(origin, b"POST", b"/v1/chat/completions", headers, body) as resp:
        async for chunk in resp:          # streamed: each wait bounded by read_timeout
            ...
        # or: body = await resp.read(limit=32 * 2**20)   # whole, capped ("too_large" beyond)

A written request is never sent again by this package (see `UpstreamPool`).
"""

from .errors import UpstreamError, UpstreamErrorKind
from .origin import Origin
from .pool import OriginStats, UpstreamPool
from .response import DEFAULT_BODY_LIMIT, UpstreamResponse
from .tls import make_ssl_context

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "Origin",
    "OriginStats",
    "UpstreamError",
    "UpstreamErrorKind",
    "UpstreamPool",
    "UpstreamResponse",
    "make_ssl_context",
]
