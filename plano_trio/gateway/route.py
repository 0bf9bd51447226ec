"""The route stage: which configured provider and model serve the requested model name.

Today that is alias, full name, bare id or wildcard resolution (in
`providers.resolve`); preference-based routing and sessions plug in here.
"""

from __future__ import annotations

from plano_trio.gateway.errors import ApiError
from plano_trio.gateway.runtime import Runtime
from plano_trio.providers.resolve import Route, RouteError


def resolve(runtime: Runtime, model: str) -> Route:
    try:
        route = runtime.resolver.resolve(model)
    except RouteError as error:
        raise ApiError(
            500, f"Provider for model '{model}' is misconfigured: {error}", type="server_error"
        ) from None
    if route is None:
        raise ApiError(
            400, f"Model '{model}' not found in configured providers", param="model", code="model_not_found"
        )
    return route
