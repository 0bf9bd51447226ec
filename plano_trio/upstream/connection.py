"""One keep-alive HTTP/1.1 connection: an h11 state machine fed from a trio stream.

h11 does all the protocol work (framing, keep-alive rules, HEAD/204/304
bodies); this module only moves bytes between it and the socket, and turns
trio/h11 failures into `UpstreamError`s with the right `kind`.  It knows
nothing about pools or retries: the pool decides what to do with a failure by
looking at `bytes_in` (was anything received in this cycle?).
"""

from __future__ import annotations

import contextlib

import h11
import trio

from .errors import UpstreamError

RECEIVE_SIZE = 65536
"""Bytes asked for per socket read; one read becomes at most one body chunk."""

CLOSE_GRACE = 0.1
"""Seconds a shielded close may take; closing a TCP (or https_compatible TLS) stream is immediate."""

_Data = h11.Data
_EndOfMessage = h11.EndOfMessage
_NEED_DATA = h11.NEED_DATA


class Connection:
    """A client-side h11 connection over `stream` to the upstream named `label` (`host:port`)."""

    __slots__ = ("_eof", "_h11", "_stream", "bytes_in", "closed", "idle_since", "label", "message_done")

    def __init__(self, stream: trio.abc.Stream, label: str) -> None:
        self._stream = stream
        self._h11 = h11.Connection(h11.CLIENT)
        self._eof = False
        self.label = label
        self.bytes_in = 0
        """Bytes received in the current request/response cycle: 0 means a failure is a stale connection."""
        self.message_done = False
        """The response's EndOfMessage was consumed (the body is fully read)."""
        self.closed = False
        self.idle_since = 0.0

    # --- request --------------------------------------------------------------------------------------

    def encode_request(self, request: h11.Request, body: bytes) -> bytes:
        """The whole request (head, body, end of message) as one buffer, for a single `send_all`."""
        conn = self._h11
        head = conn.send(request)
        assert head is not None
        data = conn.send(_Data(data=body)) if body else b""
        end = conn.send(_EndOfMessage())
        assert data is not None and end is not None
        return b"".join((head, data, end))

    async def send(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            msg = f"connection to {self.label} was closed while sending: {exc}"
            raise UpstreamError("closed", msg) from exc

    # --- response -------------------------------------------------------------------------------------

    async def receive_head(self) -> h11.Response:
        """Wait for the final response head (1xx interim responses are skipped). No timeout here."""
        try:
            while True:
                event = self._h11.next_event()
                if event is _NEED_DATA:
                    await self._receive(None)
                    continue
                if type(event) is h11.Response:
                    return event
                if type(event) is h11.InformationalResponse:
                    continue
                if type(event) is h11.ConnectionClosed:
                    raise UpstreamError("closed", f"{self.label} closed the connection before responding")
                raise UpstreamError("protocol", f"unexpected {type(event).__name__} from {self.label}")
        except h11.RemoteProtocolError as exc:
            raise self._protocol_error(exc, "response head") from exc

    async def receive_body(self, timeout: float | None) -> bytes | None:
        """The next body chunk, or None once the body is complete.

        One call performs at most one socket read; all Data events h11 can
        produce from what is buffered are joined into one chunk (so a read that
        carried several SSE chunks becomes one downstream write).  `timeout`
        bounds the wait for that read.
        """
        if self.message_done:
            return None
        conn = self._h11
        first: bytearray | bytes | None = None
        parts: list[bytearray | bytes] | None = None
        try:
            while True:
                event = conn.next_event()
                if type(event) is _Data:
                    data = event.data
                    if not data:
                        continue
                    if first is None:
                        first = data
                    elif parts is None:
                        parts = [first, data]
                    else:
                        parts.append(data)
                    continue
                if event is _NEED_DATA:
                    if first is not None:
                        break
                    await self._receive(timeout)
                    continue
                if type(event) is _EndOfMessage:
                    self.message_done = True
                    if first is None:
                        return None
                    break
                msg = f"unexpected {type(event).__name__} in body from {self.label}"
                raise UpstreamError("protocol", msg)
        except h11.RemoteProtocolError as exc:
            raise self._protocol_error(exc, "response body") from exc
        # h11 hands out bytearray slices of its buffer; callers get immutable bytes.
        return b"".join(parts) if parts is not None else bytes(first)

    def drain_buffered(self) -> bool:
        """Consume whatever body h11 already holds, without I/O; True if that completes the response.

        Lets a caller that ignores a bodiless (HEAD/204/304) or already-buffered
        small body still return the connection to the pool.  No unread bytes can
        remain on the socket if this returns True.
        """
        if self.message_done:
            return True
        conn = self._h11
        try:
            while True:
                event = conn.next_event()
                if type(event) is _Data:
                    continue
                if type(event) is _EndOfMessage:
                    self.message_done = True
                    return True
                return False
        except h11.RemoteProtocolError:
            return False

    async def _receive(self, timeout: float | None) -> None:
        """One socket read into h11 (b"" marks EOF); `timeout` bounds it."""
        try:
            if timeout is None:
                data = await self._stream.receive_some(RECEIVE_SIZE)
            else:
                with trio.move_on_after(timeout):
                    data = await self._stream.receive_some(RECEIVE_SIZE)
                    self._feed(data)
                    return
                msg = f"{self.label} sent nothing for {timeout:g}s during the response"
                raise UpstreamError("timeout", msg)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise UpstreamError("closed", f"connection to {self.label} was reset: {exc}") from exc
        self._feed(data)

    def _feed(self, data: bytes | bytearray) -> None:
        if data:
            self.bytes_in += len(data)
        else:
            self._eof = True
        # h11 appends to its own bytearray, so any bytes-like is fine (its stub says bytes).
        self._h11.receive_data(data)  # type: ignore[arg-type]

    def _protocol_error(self, exc: h11.RemoteProtocolError, where: str) -> UpstreamError:
        if self._eof:
            return UpstreamError("closed", f"{self.label} closed the connection mid-{where}: {exc}")
        return UpstreamError("protocol", f"invalid HTTP/1.1 {where} from {self.label}: {exc}")

    # --- lifecycle ------------------------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        """Both sides finished the exchange and neither asked to close (keep-alive allowed)."""
        conn = self._h11
        return not self.closed and conn.our_state is h11.DONE and conn.their_state is h11.DONE

    def start_next_cycle(self) -> None:
        """Reset for the next request; only valid when `reusable`."""
        self._h11.start_next_cycle()
        self.bytes_in = 0
        self.message_done = False

    async def aclose(self) -> None:
        """Close the socket now, even inside a cancelled scope. Idempotent.

        Shielded, with a short deadline, so that a request cancelled because
        the client went away still releases its upstream socket promptly
        (the upstream then sees EOF and can stop generating).
        """
        if self.closed:
            return
        self.closed = True
        with trio.move_on_after(CLOSE_GRACE, shield=True):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await self._stream.aclose()
