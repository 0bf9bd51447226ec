"""Client keys: finding the one a request presents, and what it may use (pure).

Lookup is by SHA-256: the presented credential is hashed once and the
digest looked up in a dict (O(1) whatever the number of keys), then
confirmed with `hmac.compare_digest`.  Comparing digests rather than keys
means the time taken tells an attacker nothing about the key's bytes (they
would have to find inputs whose digests share a prefix with it), and the
table holds no key at all: the config may give only `key_sha256`.

A key is named in logs by its `name` or its fingerprint (the first 8 hex
digits of its SHA-256), never by its text; a refused credential likewise.

Headers.  The client's key arrives where its SDK puts it: OpenAI's
`Authorization: Bearer <key>`, Anthropic's `x-api-key`, Azure's `api-key`.
Once the gateway has checked it, it is ours and goes no further: every
credential header is removed from the request the stages see, so no
provider (`passthrough_auth`), agent or filter receives it.  A client that
must hand a key on (a `passthrough_auth` provider's) sends it in
`x-plano-upstream-authorization`, which takes the place of `Authorization`
after the check.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

from plano_trio.apis.http import Header
from plano_trio.config.access_settings import InboundAuthSettings, InboundKey

CREDENTIAL_HEADERS: Final = frozenset({b"authorization", b"x-api-key", b"api-key"})
UPSTREAM_AUTH_HEADER: Final = b"x-plano-upstream-authorization"
"""Carries the key for a `passthrough_auth` provider while inbound keys are on; becomes `Authorization`."""


def fingerprint(credential: bytes) -> str:
    """The first 8 hex digits of the credential's SHA-256: names it in a log line without revealing it."""
    return hashlib.sha256(credential).hexdigest()[:8]


class ClientKey(NamedTuple):
    """A client key the gateway accepted, with what it may use."""

    settings: InboundKey
    models: frozenset[str]
    """Names it may use (empty: every model)."""
    prefixes: tuple[str, ...]
    """`prefix/` of every `prefix/*` in its models."""

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def restricted(self) -> bool:
        return bool(self.models)

    def may_use(self, names: Iterable[str]) -> bool:
        """Whether any of `names` (one model's names: as requested, full, bare, provider's) is allowed."""
        if not self.models:
            return True
        prefixes = self.prefixes
        return any(name in self.models or (prefixes and name.startswith(prefixes)) for name in names)


def _client_key(settings: InboundKey) -> ClientKey:
    prefixes = tuple(m[:-1] for m in settings.models if m.endswith("/*"))
    return ClientKey(settings, frozenset(settings.models), prefixes)


class KeyTable:
    """Every configured client key, by digest."""

    def __init__(self, settings: InboundAuthSettings) -> None:
        self._by_digest = {key.digest: _client_key(key) for key in settings.keys}

    def __len__(self) -> int:
        return len(self._by_digest)

    def find(self, credential: bytes) -> ClientKey | None:
        """The key whose SHA-256 is the credential's, or None."""
        digest = hashlib.sha256(credential).digest()
        found = self._by_digest.get(digest)
        if found is not None and hmac.compare_digest(found.settings.digest, digest):
            return found
        return None

    def keys(self) -> list[ClientKey]:
        return list(self._by_digest.values())


def presented_credentials(headers: Sequence[Header]) -> list[bytes]:
    """Every credential the request carries, `Authorization` first (its `Bearer ` stripped)."""
    found: list[bytes] = []
    for name, value in headers:
        if name in CREDENTIAL_HEADERS:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                value = token if scheme.lower() == b"bearer" else value
                value = value.strip()
                if value:
                    found.insert(0, value)
            elif value.strip():
                found.append(value.strip())
    return found


def without_inbound_credentials(headers: Sequence[Header]) -> list[Header]:
    """`headers` with every credential removed and `x-plano-upstream-authorization` as `Authorization`."""
    return [
        (b"authorization", value) if name == UPSTREAM_AUTH_HEADER else (name, value)
        for name, value in headers
        if name not in CREDENTIAL_HEADERS
    ]
