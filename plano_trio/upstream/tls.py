"""The TLS client context for https upstreams.

Built once per pool (loading a CA bundle costs tens of milliseconds) and shared
by every connection.
"""

from __future__ import annotations

import ssl


def make_ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """A verifying client context: the system CA store, or only `ca_bundle` (a PEM file) when given.

    ALPN offers only `http/1.1` so a server that would otherwise pick h2 keeps
    speaking the protocol this client implements.
    """
    ctx = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
