"""Where a request goes: the pool's key, plus the strings derived from it once."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import trio

_DEFAULT_PORTS = {"http": 80, "https": 443}


class Origin(NamedTuple):
    """An upstream `scheme://host:port`.

    `sni` is Plano's `http_host`: when set it replaces the Host header *and* the
    TLS server name (SNI + certificate hostname check), while the TCP connection
    still goes to `host`.  It is part of the key, so connections made for
    different `sni` values are never mixed.

    `local` makes the origin in-process: the pool opens a connection by
    calling it for a stream that speaks HTTP/1.1 like a server would (the
    built-in demo provider), instead of dialling `host:port`.
    """

    scheme: str
    host: str
    port: int
    sni: str | None = None
    local: Callable[[], trio.abc.Stream] | None = None


def authority(origin: Origin) -> str:
    """`host:port` for error messages (IPv6 literals bracketed)."""
    host = f"[{origin.host}]" if ":" in origin.host else origin.host
    return f"{host}:{origin.port}"


def host_header(origin: Origin) -> bytes:
    """The Host header value: `sni` if given, else host with the port unless it is the scheme default."""
    if origin.sni:
        return origin.sni.encode("ascii")
    host = f"[{origin.host}]" if ":" in origin.host else origin.host
    if _DEFAULT_PORTS.get(origin.scheme) != origin.port:
        host = f"{host}:{origin.port}"
    return host.encode("ascii")


def server_hostname(origin: Origin) -> str:
    """The name TLS sends as SNI and checks the certificate against."""
    return origin.sni or origin.host
