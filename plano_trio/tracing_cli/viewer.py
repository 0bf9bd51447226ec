"""Ask a trace listener (ours or Plano's) for what it holds: one gRPC call, bounded in time and size.

The listener is found as `planoai trace` finds it: 127.0.0.1, port `PLANO_TRACE_PORT` (default 4317).
Unlike `planoai trace`, a listener that is down or answers garbage is an error the user sees
(`ViewerError`), not an empty list that reads like "no requests were traced".
"""

from __future__ import annotations

import os

import grpc  # type: ignore[import-untyped]  # grpcio ships no type information
import msgspec

from plano_trio.tracing_cli.limits import MiB
from plano_trio.tracing_cli.spans import TracesReply, decode_reply

PORT_ENV = "PLANO_TRACE_PORT"
DEFAULT_PORT = 4317
QUERY_METHOD = "/plano.TraceQuery/GetTraces"
QUERY_TIMEOUT_S = 3.0
MAX_REPLY_BYTES = 64 * MiB
"""Our listener answers within 4 MiB; this leaves room for a Plano listener holding large traces."""


class ViewerError(Exception):
    """No usable answer from the listener; the message says what to do."""


def listener_port(environ: dict[str, str] | None = None) -> int:
    """`PLANO_TRACE_PORT` as a port number (default 4317); `ViewerError` if it is not one."""
    text = (os.environ if environ is None else environ).get(PORT_ENV, "").strip()
    if not text:
        return DEFAULT_PORT
    if not text.isdecimal() or not 0 < int(text) < 65536:
        raise ViewerError(f"{PORT_ENV}={text!r} is not a port number")
    return int(text)


def fetch_reply(port: int, host: str = "127.0.0.1") -> bytes:
    """The listener's raw `GetTraces` answer."""
    target = f"{host}:{port}"
    options = [("grpc.max_receive_message_length", MAX_REPLY_BYTES), ("grpc.enable_retries", 0)]
    try:
        with grpc.insecure_channel(target, options=options) as channel:
            call = channel.unary_unary(QUERY_METHOD, request_serializer=None, response_deserializer=None)
            return bytes(call(b"", timeout=QUERY_TIMEOUT_S))
    except grpc.RpcError as error:
        code = error.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            raise ViewerError(
                f"no trace listener on {target}; start one with `plano-trio trace listen`"
                f" (or set {PORT_ENV} to the port of a running one)"
            ) from error
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise ViewerError(
                f"the trace listener on {target} did not answer in {QUERY_TIMEOUT_S:g} s"
            ) from error
        raise ViewerError(f"the trace listener on {target} failed: {code.name}: {error.details()}") from error


def fetch_traces(port: int, host: str = "127.0.0.1") -> TracesReply:
    """The listener's traces, newest first."""
    body = fetch_reply(port, host)
    try:
        return decode_reply(body)
    except msgspec.DecodeError as error:
        raise ViewerError(
            f"the listener on {host}:{port} answered something other than traces: {error}"
        ) from error
