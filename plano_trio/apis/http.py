"""The one HTTP header type every layer passes around, and the headers no proxy forwards.

`(name, value)` as raw bytes, names lowercased: the form hypercorn hands the
app, our HTTP/1.1 client sends, and no layer needs to re-encode.
"""

from __future__ import annotations

Header = tuple[bytes, bytes]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"http2-settings",
    }
)
"""Headers that describe one connection, not the message (RFC 9110 §7.6.1, plus the ones older
proxies and HTTP/2 upgrades use): a proxy drops them in both directions."""
