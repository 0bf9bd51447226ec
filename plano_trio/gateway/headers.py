"""Header hygiene between client, gateway and provider (pure functions).

Rules: hop-by-hop headers never cross the proxy (RFC 9110 §7.6.1, including
names listed in `Connection`); the client's own credentials never reach a
provider unless that provider is `passthrough_auth`; the provider's key and
its configured `headers` are added server-side.
"""

from __future__ import annotations

from collections.abc import Iterable

from plano_trio.apis.http import HOP_BY_HOP, Header
from plano_trio.auth import UPSTREAM_AUTH_HEADER
from plano_trio.gateway.errors import ApiError
from plano_trio.providers.resolve import Route, auth_for_key

CREDENTIALS = frozenset({b"authorization", b"x-api-key", b"api-key"})
_NOT_FORWARDED_UP = (
    HOP_BY_HOP | CREDENTIALS | {b"host", b"content-length", b"accept-encoding", b"x-request-id"}
)
_NOT_FORWARDED_UP |= {UPSTREAM_AUTH_HEADER}  # a provider key beside an inbound key: never as it is
_NOT_FORWARDED_DOWN = HOP_BY_HOP | {b"content-length", b"date", b"server", b"x-request-id"}


def _connection_tokens(headers: Iterable[Header]) -> frozenset[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(token.strip().lower() for token in value.split(b","))
    return frozenset(tokens)


def client_key(headers: Iterable[Header]) -> str | None:
    """The API key a client presented: `Authorization: Bearer`, `x-api-key` or `api-key`."""
    found: dict[bytes, bytes] = {name: value for name, value in headers if name in CREDENTIALS}
    bearer = found.get(b"authorization")
    if bearer is not None:
        scheme, _, token = bearer.partition(b" ")
        key = token.strip() if scheme.lower() == b"bearer" else bearer.strip()
        if key:
            return key.decode("latin-1")
    for name in (b"x-api-key", b"api-key"):
        value = found.get(name)
        if value:
            return value.strip().decode("latin-1")
    return None


def upstream_headers(client: list[Header], route: Route, request_id: bytes) -> list[Header]:
    """Headers for the provider request: client's minus hygiene, plus auth and provider headers."""
    extra = _connection_tokens(client)
    out = [(name, value) for name, value in client if name not in _NOT_FORWARDED_UP and name not in extra]
    out.append((b"accept-encoding", b"identity"))
    out.append((b"x-request-id", request_id))
    provider = route.provider
    if provider.passthrough_auth:
        key = client_key(client)
        if key is None:
            raise ApiError(
                401,
                f"Provider '{provider.name}' uses passthrough_auth, but the request carried no "
                "API key (send Authorization: Bearer <key> or x-api-key)",
                type="authentication_error",
                code="missing_api_key",
            )
        out.extend(auth_for_key(route, key))
    elif not provider.access_key and provider.base_url is None and route.spec.needs_key:
        raise ApiError(
            400,
            f'No access key configured for selected LLM Provider "{provider.name}": set its '
            "access_key (or passthrough_auth: true) in the gateway config",
            type="invalid_request_error",
            code="provider_key_missing",
        )
    if route.static_headers:
        configured = {name for name, _ in route.static_headers}
        out = [h for h in out if h[0] not in configured]
        out.extend(route.static_headers)
    return out


def downstream_headers(upstream: Iterable[Header], request_id: bytes) -> list[Header]:
    """Provider response headers safe to relay to the client, plus our request id."""
    upstream = list(upstream)
    extra = _connection_tokens(upstream)
    out = [(name, value) for name, value in upstream if name not in _NOT_FORWARDED_DOWN and name not in extra]
    out.append((b"x-request-id", request_id))
    return out
