"""Parsers for the small value formats inside a Plano config (durations, URLs, versions)."""

from __future__ import annotations

import ipaddress
import math
import re
from urllib.parse import SplitResult, urlsplit

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """`"30s"`, `"1.5s"`, `"500ms"`, `"5m"`, `"1h"` -> seconds; None if malformed.

    Plano hands these strings to Envoy, which only takes seconds (`"30s"`);
    minutes and hours are accepted here too because people write them.
    `"0s"` means "no deadline" to Envoy and becomes `math.inf`.
    """
    match = _DURATION.match(text)
    if match is None:
        return None
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return math.inf if seconds == 0 else seconds


DURATION_HINT = "use a duration such as 30s, 1.5s, 500ms or 5m"


def split_url(url: str) -> SplitResult | None:
    """`urlsplit`, but None instead of ValueError (bad IPv6 brackets, bad port)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        return None
    return parts


def http_url_error(url: str) -> str | None:
    """Why `url` is not a usable http(s) URL, or None if it is."""
    parts = split_url(url)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return "Please provide a valid URL with scheme (http/https) in base_url"
    return None


def version_tuple(version: str) -> tuple[int, int, int]:
    """`v0.3.0` -> (0, 3, 0); `0.1-beta` -> (0, 1, 0).  Used to gate legacy migrations."""
    stripped = version.strip().lstrip("vV").split("-", 1)[0]
    parts: list[int] = []
    for piece in stripped.split(".")[:3]:
        parts.append(int(piece) if piece.isdigit() else 0)
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def parse_socket_address(text: str) -> tuple[str, int] | None:
    """`"0.0.0.0:9092"`, `"[::1]:9092"` -> (ip, port); None unless an IP literal and a port.

    Plano's `METRICS_BIND_ADDRESS` is parsed as a Rust `SocketAddr`, which
    takes IP literals only (no host names, no missing port); the same rule
    here means a value moves between the two unchanged.
    """
    host, sep, port = text.strip().rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        return None
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if (ip.version == 6) != bracketed:
        return None
    return str(ip), int(port)
