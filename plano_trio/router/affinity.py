"""Which session a request belongs to: the explicit affinity id, or a key derived from its prompt.

A request without an `X-Model-Affinity` header still belongs to a
conversation: the parts of the prompt that repeat verbatim at the head of
every turn (system text, tool names, the first user message) are constant for
its whole life, because history grows at the tail.  They are also the bytes a
provider's prompt cache is keyed on.  So, as Plano does:

    session key = "implicit:" + hex(hash(tenant, system, tools, first user message))
    prefix hash = hash(tenant, system, tools)

The prefix hash covers only the fully stable segment and is stored with the
binding: when it changes, the provider cache is already lost, so re-routing
is free.  Only salted hashes are kept, never prompt text.

The hash is Plano's byte for byte (FNV-1a 64 over a salt and the chunks, each
chunk followed by a 0x1f separator), so a Redis shared with a Plano
deployment, or the `x-plano-prefix-hash` header a replica-sticky backend
hashes on, sees the same keys from both gateways.  FNV is not a defence
against collisions; a collision merely pins two conversations together,
which costs cache efficiency, not correctness.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

HASH_SALT = "plano-affinity-v1"
"""Folded into every hash so a stored key cannot be matched to prompt text across systems."""

IMPLICIT_KEY_PREFIX = "implicit:"
"""Tells a derived key apart from a client-supplied affinity id."""

_FNV_OFFSET_BASIS = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_U64 = (1 << 64) - 1
_SEPARATOR = 0x1F
"""Fed after every chunk so ("ab", "c") and ("a", "bc") hash apart."""


def _utf8(text: str) -> bytes:
    # `surrogatepass`: a lone surrogate that slipped past a JSON parser must not crash a hash.
    return text.encode("utf-8", "surrogatepass")


def fnv1a64(chunks: Iterable[str]) -> int:
    """FNV-1a 64 over the salt and then each chunk, every one of them followed by 0x1f."""
    h = _FNV_OFFSET_BASIS
    for chunk in (HASH_SALT, *chunks):
        for byte in _utf8(chunk):
            h = ((h ^ byte) * _FNV_PRIME) & _U64
        h = ((h ^ _SEPARATOR) * _FNV_PRIME) & _U64
    return h


class ImplicitAffinity(NamedTuple):
    session_key: str
    """`implicit:<16 hex>` over tenant, system, tools and the first user message."""
    prefix_hash: int
    """Over tenant, system and tools only: drift detection and the `x-plano-prefix-hash` header."""


def prefix_hash(tenant: str | None, system_text: str, tool_names: str) -> int:
    """Hash of the stable prefix.  `tool_names` is the tool names joined by "," ("" without tools)."""
    return fnv1a64((tenant or "", system_text, tool_names))


def implicit_session_key(
    tenant: str | None, system_text: str, tool_names: str, first_user: str | None
) -> str | None:
    """`implicit:<16 hex>`, or None without a user message (nothing tells conversations apart)."""
    if first_user is None:
        return None
    return f"{IMPLICIT_KEY_PREFIX}{fnv1a64((tenant or '', system_text, tool_names, first_user)):016x}"


def derive_implicit_affinity(
    tenant: str | None, system_text: str, tool_names: str, first_user: str | None
) -> ImplicitAffinity | None:
    """Both identifiers, or None without a user message.

    `system_text` is the system and developer messages' text joined by "\\n";
    `first_user` the text of the first user message; a missing tenant hashes
    as "" (so an empty tenant header and none at all share keys, as in Plano).
    """
    key = implicit_session_key(tenant, system_text, tool_names, first_user)
    if key is None:
        return None
    return ImplicitAffinity(key, prefix_hash(tenant, system_text, tool_names))


class SessionResolution(NamedTuple):
    session_id: str | None
    """The explicit affinity id, else the implicit key when implicit affinity is on; None: no session."""
    prefix_hash: int | None
    """Derived whenever the prompt is anchorable and the cache is not off for this request."""


def implicit_affinity_enabled(
    *,
    session_affinity: bool,
    budget_active: bool,
    route_on_user_only: bool,
    routing_can_override_model: bool,
) -> bool:
    """Whether a request without an affinity header gets a derived session key.

    Prompt caching's `session_affinity` wants one to stay on a warm cache; the
    routing budget needs a session to account spend against; and with
    `route_on_user_only`, a continuation turn can replay the router's earlier
    choice only if there is a session to find it in -- which matters only when
    routing preferences could have sent the request elsewhere.
    """
    return session_affinity or budget_active or (route_on_user_only and routing_can_override_model)


def resolve_session(
    explicit: str | None,
    tenant: str | None,
    system_text: str,
    tool_names: str,
    first_user: str | None,
    *,
    implicit_enabled: bool,
    cache_off: bool,
) -> SessionResolution:
    """The request's session key and prefix hash, as Plano resolves them.

    An explicit affinity id always wins, even with `X-Plano-Cache: off`
    (`cache_off`), which suppresses only the derived key and the prefix hash.
    The prefix hash is derived even when implicit affinity is off, so the
    replica-stickiness header works without sessions.
    """
    derived = None if cache_off else derive_implicit_affinity(tenant, system_text, tool_names, first_user)
    if explicit is not None:
        session_id: str | None = explicit
    elif implicit_enabled and derived is not None:
        session_id = derived.session_key
    else:
        session_id = None
    return SessionResolution(session_id, None if derived is None else derived.prefix_hash)


def cache_key(session_id: str, tenant: str | None) -> str:
    """The session store's key: `<tenant>:<session>` when a tenant header value is present."""
    return session_id if tenant is None else f"{tenant}:{session_id}"


def prefix_hash_header(prefix: int) -> str:
    """Value of `x-plano-prefix-hash`: the prefix hash as 16 lowercase hex digits."""
    return f"{prefix:016x}"
