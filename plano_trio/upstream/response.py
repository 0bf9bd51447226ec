"""A response whose body is still on the wire.

The response owns its connection and one permit of its origin until the body
is finished with.  The one rule that matters: a connection goes back to the
pool only after the state machine has seen the end of the body; anything else
(early close, error, cancellation) closes the socket, so a half-read body can
never leak into the next request, and the upstream learns at once that nobody
is listening.
"""

from __future__ import annotations

from types import TracebackType
from typing import NoReturn

from .connection import Connection
from .errors import UpstreamError
from .http1 import Response
from .idle import IdleWatch
from .slots import OriginSlots

DEFAULT_BODY_LIMIT = 32 * 1024 * 1024
"""`read`'s default cap: provider JSON bodies are rarely above a few MiB, and an endless one must not
exhaust memory."""


class UpstreamResponse:
    """Status and headers of an upstream response, with its body readable once.

    Use as ``async with`` (or call `aclose`); iterate for body chunks as they
    arrive, or `await read()` for the whole body.  Reaching the end of the body
    releases the connection immediately, so a fully-read response costs nothing
    even if the caller forgets to close it.
    """

    __slots__ = ("_conn", "_read_timeout", "_slots", "_state", "_watch", "headers", "http_version", "status")

    def __init__(
        self, head: Response, conn: Connection, slots: OriginSlots, watch: IdleWatch, read_timeout: float
    ) -> None:
        self.status: int = head.status
        self.headers: list[tuple[bytes, bytes]] = head.headers
        """Raw header pairs in upstream order, names lowercased, values stripped of surrounding OWS."""
        self.http_version: bytes = head.http_version
        self._conn: Connection | None = conn
        self._slots = slots
        self._watch = watch
        self._read_timeout = read_timeout
        """Bound on each wait for a body chunk (not on the caller's time between chunks)."""
        # "open" → "complete" (body read to the end) | "aborted" (failed) | "closed" (by the caller)
        self._state = "open"

    def __repr__(self) -> str:
        return f"<UpstreamResponse {self.status} from {self._slots.label} ({self._state})>"

    # --- body -----------------------------------------------------------------------------------------

    def __aiter__(self) -> UpstreamResponse:
        return self

    async def __anext__(self) -> bytes:
        """The next chunk (one socket read's worth); UpstreamError if the body cannot be completed.

        Raises ``UpstreamError("closed")`` if the upstream hung up mid-body, so
        a truncated stream is never mistaken for a complete one, and
        ``UpstreamError("timeout")`` if it sent nothing for the read timeout.
        """
        conn = self._conn
        if conn is None:
            if self._state == "complete":
                raise StopAsyncIteration
            raise UpstreamError("closed", f"response from {self._slots.label} was closed before its end")
        try:
            chunk = await conn.receive_body(self._watch, self._read_timeout)
        except BaseException:
            # Error, timeout or cancellation (client went away): the socket goes now.
            await self._release(reuse=False, state="aborted")
            raise
        if chunk is None:
            await self._release(reuse=True, state="complete")
            raise StopAsyncIteration
        return chunk

    async def read(self, limit: int = DEFAULT_BODY_LIMIT) -> bytes:
        """The whole remaining body as one bytes, if it is at most `limit` bytes.

        Beyond `limit`, raises ``UpstreamError("too_large")`` and closes the
        connection at once: a declared Content-Length over the limit fails
        before anything is read, and an undeclared (chunked, close-delimited)
        body fails with the read that crosses the limit, which is never kept,
        so at most `limit` bytes are ever held.
        """
        remaining = self._conn.body_remaining() if self._conn is not None else None
        if remaining is not None and remaining > limit:
            await self._too_large(limit)
        parts: list[bytes] = []
        size = 0
        async for chunk in self:
            size += len(chunk)
            if size > limit:
                await self._too_large(limit)
            parts.append(chunk)
        return b"".join(parts)

    async def _too_large(self, limit: int) -> NoReturn:
        await self._release(reuse=False, state="aborted")
        raise UpstreamError("too_large", f"response body from {self._slots.label} exceeds {limit} bytes")

    # --- lifecycle ------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Finish with the response. Idempotent; safe (and prompt) inside a cancelled scope.

        If the body was fully received (or is already entirely buffered, as
        for HEAD/204/304) the connection returns to the pool; otherwise it is
        closed.
        """
        conn = self._conn
        if conn is not None:
            await self._release(reuse=conn.drain_buffered(), state="closed")

    async def _release(self, *, reuse: bool, state: str) -> None:
        """Hand the connection back (if `reuse` and keep-alive allows) or close it; free the permit."""
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        self._state = state
        try:
            if not (reuse and self._slots.check_in(conn)):
                await conn.aclose()
        finally:
            self._slots.permits.release()

    async def __aenter__(self) -> UpstreamResponse:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
