"""The exchange stage: send one attempt's request and wait for the provider's response head.

Failures are classified here, once, into what the client is told: a
provider that cannot be reached is 502, one that does not answer in time is
504, and either names the provider so the operator knows where to look.
(Failover will read the same classification to decide whether to retry.)
"""

from __future__ import annotations

from plano_trio.gateway.errors import ApiError
from plano_trio.gateway.outbound import Outbound
from plano_trio.providers.resolve import Route
from plano_trio.upstream import UpstreamError, UpstreamPool, UpstreamResponse


async def open_response(
    pool: UpstreamPool,
    route: Route,
    outbound: Outbound,
    head_timeout: float | None = None,
    *,
    method: bytes = b"POST",
) -> UpstreamResponse:
    """The provider's response, head received and body unread; ApiError 502/504 if there is none.

    `head_timeout` (the failover stage sets it) bounds the wait for the head
    without ending the request: running out is a 504 the next attempt can
    follow.
    """
    try:
        response = await pool.request(
            route.origin, method, outbound.target, outbound.headers, outbound.body, head_timeout=head_timeout
        )
    except UpstreamError as error:
        raise ApiError(
            504 if error.kind == "timeout" else 502,
            f"Provider '{route.label}' could not be reached: {error}",
            type="upstream_error",
            code="upstream_unreachable",
        ) from None
    if not 200 <= response.status <= 599:
        await response.aclose()
        raise ApiError(
            502,
            f"Provider '{route.label}' answered with an invalid HTTP status {response.status}",
            type="upstream_error",
            code="upstream_malformed",
        )
    return response


def provider_broke(route: Route, what: str) -> ApiError:
    """A provider answer that cannot be relayed (malformed, cut off, too large): 502 naming it."""
    return ApiError(502, f"Provider '{route.label}' {what}", type="upstream_error", code="upstream_malformed")
