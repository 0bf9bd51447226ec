"""Inbound authentication: which client key a request carries, checked without leaking timing or keys."""

from __future__ import annotations

from .keys import (
    CREDENTIAL_HEADERS,
    UPSTREAM_AUTH_HEADER,
    ClientKey,
    KeyTable,
    fingerprint,
    presented_credentials,
    without_inbound_credentials,
)

__all__ = [
    "CREDENTIAL_HEADERS",
    "UPSTREAM_AUTH_HEADER",
    "ClientKey",
    "KeyTable",
    "fingerprint",
    "presented_credentials",
    "without_inbound_credentials",
]
