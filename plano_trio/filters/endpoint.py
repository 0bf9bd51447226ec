"""Where a filter call goes and with which headers (pure).

Addresses.  An HTTP filter is POSTed at `{url}{request path}`, as Plano does
(`http://guard:10500` + `/v1/chat/completions`), so one filter can tell the
client APIs apart by path.  Plano sends MCP filters through its Envoy to the
path `/mcp` on the filter's host and port, whatever path the configured URL
has; the MCP SDKs serve the streamable-HTTP endpoint at `/mcp` by default,
so that works for `url: http://host:10500`.  We call the server directly:
at `/mcp` when the URL has no path (the same request Plano's hop amounts to),
and at the URL's own path when it has one (`http://host:10500/mcp`, or a
server mounted elsewhere), which Plano would ignore.

Headers.  A filter gets the client's headers (it may want the caller's
`authorization`, `traceparent` or `x-request-id`, and Plano forwards them
all) minus what belongs to one hop (RFC 9110 §7.6.1, names listed in
`Connection`), framing (the pool writes its own Content-Length), `host`, and
the headers this client sets itself.  `accept-encoding: identity` is sent
because nothing here decompresses a reply.  Plano's `x-envoy-max-retries: 3`
is not sent: it instructed Plano's Envoy, and nothing here retries a filter
call that may have acted.
"""

from __future__ import annotations

from collections.abc import Iterable

from plano_trio.apis.http import HOP_BY_HOP, Header
from plano_trio.config.schema import AgentEndpoint
from plano_trio.config.values import split_url
from plano_trio.upstream import Origin

MCP_DEFAULT_PATH = "/mcp"

_SET_HERE = frozenset(
    {
        b"host",
        b"content-length",
        b"content-type",
        b"content-encoding",
        b"accept",
        b"accept-encoding",
        b"expect",
        b"x-arch-upstream",
        b"mcp-session-id",
        b"mcp-protocol-version",
        b"last-event-id",
    }
)
_NOT_FORWARDED = HOP_BY_HOP | _SET_HERE
_JSON = b"application/json"
_MCP_ACCEPT = b"application/json, text/event-stream"


class EndpointError(ValueError):
    """A filter's configured URL cannot be called (the config loader should have caught it)."""


class Target:
    """A filter's origin and the path its URL names (without a trailing slash), parsed once."""

    __slots__ = ("base_path", "origin")

    def __init__(self, origin: Origin, base_path: str) -> None:
        self.origin = origin
        self.base_path = base_path

    def http_target(self, request_path: str) -> bytes:
        """`{url path}{request path}`: where an HTTP filter is POSTed."""
        return (self.base_path + request_path).encode("ascii", "strict")

    def mcp_target(self) -> bytes:
        """The MCP endpoint: the URL's own path, else `/mcp` (where Plano's Envoy sends it)."""
        return (self.base_path or MCP_DEFAULT_PATH).encode("ascii", "strict")


def parse_target(endpoint: AgentEndpoint) -> Target:
    """The filter's origin and base path; `EndpointError` for a URL that is not http(s)://host[:port]/..."""
    parts = split_url(endpoint.url)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(f"filter '{endpoint.id}': url {endpoint.url!r} is not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path.rstrip("/")
    if not path.isascii() or any(ch.isspace() for ch in path):
        raise EndpointError(f"filter '{endpoint.id}': url {endpoint.url!r} has an unusable path")
    return Target(Origin(parts.scheme, parts.hostname, port), path)


def forwarded_headers(client: Iterable[Header], filter_id: str) -> list[Header]:
    """The client's headers a filter receives, plus `x-arch-upstream: <filter id>` as Plano sends."""
    headers = list(client)
    listed: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            listed.update(token.strip().lower() for token in value.split(b","))
    out = [
        (name, value)
        for name, value in headers
        if name.lower() not in _NOT_FORWARDED and name.lower() not in listed
    ]
    out.append((b"x-arch-upstream", filter_id.encode("utf-8", "replace")))
    out.append((b"accept-encoding", b"identity"))
    return out


def http_filter_headers(forwarded: list[Header]) -> list[Header]:
    """Headers of an HTTP filter call: JSON in, JSON out (also for output chunks, as Plano)."""
    return [*forwarded, (b"content-type", _JSON), (b"accept", _JSON)]


def mcp_headers(
    forwarded: list[Header], session_id: bytes | None, protocol_version: bytes | None
) -> list[Header]:
    """Headers of an MCP POST: both reply kinds accepted, and the session once there is one.

    `mcp-protocol-version` is sent after `initialize` with the version the
    server chose, as the transport asks of clients from 2025-06-18 on
    (Plano sends none; servers accept it for older versions too).
    """
    out = [*forwarded, (b"content-type", _JSON), (b"accept", _MCP_ACCEPT)]
    if session_id is not None:
        out.append((b"mcp-session-id", session_id))
    if protocol_version is not None:
        out.append((b"mcp-protocol-version", protocol_version))
    return out
