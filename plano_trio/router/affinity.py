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

What it costs, and how that is kept small (`AffinityHasher`):

- FNV-1a is one multiply per byte and cannot be vectorised, so in Python it
  runs at ~90 ns per byte (~95 ms for a 1 MB first message, on the event
  loop, where every other request waits).  It is therefore computed only
  when a session needs it (`resolve_session`), in one pass: the session key
  continues from the prefix hash's state instead of starting over.
- The chunks are constant for a conversation's life and the system text is
  shared by all of an agent's conversations, so each hashed chunk's result
  is remembered, keyed by the state it was fed into and the SHA-256 of its
  bytes (SHA-256 runs in C at ~0.6 ms per MB): the next turn of the same
  conversation, or a new conversation of the same agent, pays that digest
  instead of the byte loop.  The memo is a bounded LRU of digests; no prompt
  text is kept.
- A chunk longer than `MAX_HASHED_CHUNK_BYTES` is hashed as its first that
  many bytes followed by the SHA-256 of the whole chunk.  Keys stay stable and
  distinct (two messages differing only past the cap still hash apart), but
  for such a chunk they are not Plano's: a Plano deployment sharing the
  Redis would keep its own binding for that conversation.  Below the cap
  (nearly every system prompt and first message) the keys are Plano's.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import NamedTuple

from .conversation import AffinityParts

HASH_SALT = "plano-affinity-v1"
"""Folded into every hash so a stored key cannot be matched to prompt text across systems."""

IMPLICIT_KEY_PREFIX = "implicit:"
"""Tells a derived key apart from a client-supplied affinity id."""

MAX_HASHED_CHUNK_BYTES = 32 * 1024
"""Most bytes of one chunk fed to FNV (~3 ms in Python): past it, the chunk's SHA-256 stands in."""

MEMO_MIN_BYTES = 256
"""Chunks shorter than this are hashed directly: cheaper than a digest and a lookup."""

MEMO_ENTRIES = 4096
"""Remembered chunk hashes (~0.2 kB each): a conversation's two or three long chunks, for thousands."""

_FNV_OFFSET_BASIS = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_U64 = (1 << 64) - 1
_SEPARATOR = 0x1F
"""Fed after every chunk so ("ab", "c") and ("a", "bc") hash apart."""


def _utf8(text: str) -> bytes:
    # `surrogatepass`: a lone surrogate that slipped past a JSON parser must not crash a hash.
    return text.encode("utf-8", "surrogatepass")


def _feed(state: int, data: bytes) -> int:
    """FNV-1a 64 of `data` and then the separator, continuing from `state`."""
    prime, mask = _FNV_PRIME, _U64
    for byte in data:
        state = ((state ^ byte) * prime) & mask
    return ((state ^ _SEPARATOR) * prime) & mask


_SALTED = _feed(_FNV_OFFSET_BASIS, _utf8(HASH_SALT))
"""The state every hash starts from: the salt already fed."""


def fnv1a64(chunks: Iterable[str]) -> int:
    """FNV-1a 64 over the salt and then each chunk, every one of them followed by 0x1f: Plano's
    hash exactly, with no cap (the definition `AffinityHasher` agrees with below the cap)."""
    state = _SALTED
    for chunk in chunks:
        state = _feed(state, _utf8(chunk))
    return state


class ImplicitAffinity(NamedTuple):
    session_key: str
    """`implicit:<16 hex>` over tenant, system, tools and the first user message."""
    prefix_hash: int
    """Over tenant, system and tools only: drift detection and the `x-plano-prefix-hash` header."""


class AffinityHasher:
    """Plano's affinity hashes with each long chunk's result remembered (one per process).

    Not thread-safe; the gateway uses it from its one event loop.
    """

    def __init__(self, memo_entries: int = MEMO_ENTRIES) -> None:
        self._memo: OrderedDict[tuple[int, bytes], int] = OrderedDict()
        self._memo_entries = memo_entries
        self.hashed_bytes = 0
        """Bytes run through the FNV loop so far (a memo hit adds none): for tests and the curious."""

    def feed(self, state: int, text: str) -> int:
        """The state after `text` and its separator: the capped FNV, from the memo when it is there."""
        data = _utf8(text)
        if len(data) < MEMO_MIN_BYTES:
            self.hashed_bytes += len(data)
            return _feed(state, data)
        digest = hashlib.sha256(data).digest()
        key = (state, digest[:16])
        memo = self._memo
        known = memo.get(key)
        if known is not None:
            memo.move_to_end(key)
            return known
        if len(data) > MAX_HASHED_CHUNK_BYTES:
            data = data[:MAX_HASHED_CHUNK_BYTES] + digest
        self.hashed_bytes += len(data)
        result = _feed(state, data)
        if self._memo_entries > 0:
            memo[key] = result
            if len(memo) > self._memo_entries:
                memo.popitem(last=False)
        return result

    def prefix_hash(self, tenant: str | None, system_text: str, tool_names: str) -> int:
        """Hash of the stable prefix.  `tool_names` is the tool names joined by "," ("" without tools);
        a missing tenant hashes as "" (an empty tenant header and none at all share keys, as in Plano)."""
        return self.feed(self.feed(self.feed(_SALTED, tenant or ""), system_text), tool_names)

    def session_key(self, prefix_hash: int, first_user: str) -> str:
        """`implicit:<16 hex>`: the first user message fed on from the prefix hash's state (the
        same value as hashing all four chunks from the start, for half the work)."""
        return f"{IMPLICIT_KEY_PREFIX}{self.feed(prefix_hash, first_user):016x}"

    def derive(
        self, tenant: str | None, system_text: str, tool_names: str, first_user: str | None
    ) -> ImplicitAffinity | None:
        """Both identifiers, or None without a user message (nothing tells conversations apart).

        `system_text` is the system and developer messages' text joined by "\\n";
        `first_user` the text of the first user message.
        """
        if first_user is None:
            return None
        prefix = self.prefix_hash(tenant, system_text, tool_names)
        return ImplicitAffinity(self.session_key(prefix, first_user), prefix)


_UNREMEMBERED = AffinityHasher(memo_entries=0)


def prefix_hash(tenant: str | None, system_text: str, tool_names: str) -> int:
    """`AffinityHasher.prefix_hash` without a memo."""
    return _UNREMEMBERED.prefix_hash(tenant, system_text, tool_names)


def implicit_session_key(
    tenant: str | None, system_text: str, tool_names: str, first_user: str | None
) -> str | None:
    """`implicit:<16 hex>`, or None without a user message (no memo)."""
    derived = _UNREMEMBERED.derive(tenant, system_text, tool_names, first_user)
    return None if derived is None else derived.session_key


def derive_implicit_affinity(
    tenant: str | None, system_text: str, tool_names: str, first_user: str | None
) -> ImplicitAffinity | None:
    """`AffinityHasher.derive` without a memo."""
    return _UNREMEMBERED.derive(tenant, system_text, tool_names, first_user)


class SessionResolution(NamedTuple):
    session_id: str | None
    """The explicit affinity id, else the implicit key when implicit affinity is on; None: no session."""
    prefix_hash: int | None
    """Derived for a session whose prompt is anchorable, unless the cache is off for this request."""


NO_SESSION = SessionResolution(None, None)


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
    parts: Callable[[], AffinityParts],
    hasher: AffinityHasher,
    *,
    implicit_enabled: bool,
    cache_off: bool,
) -> SessionResolution:
    """The request's session key and prefix hash, as Plano resolves them, hashing only what is used.

    An explicit affinity id always wins, even with `X-Plano-Cache: off`
    (`cache_off`), which suppresses only the derived key and the prefix hash;
    with an explicit id only the prefix is hashed (for drift detection), not
    the first user message.  Without an explicit id and with implicit
    affinity off there is no session, and nothing is read or hashed: Plano
    would still derive the prefix hash for its `x-plano-prefix-hash` header,
    which plano-trio sends only for a session.  `parts` is called at most
    once, and only when something is hashed.
    """
    if explicit is None and (cache_off or not implicit_enabled):
        return NO_SESSION
    if cache_off:
        return SessionResolution(explicit, None)
    texts = parts()
    if texts.first_user is None:  # nothing anchors the prompt: no key, no prefix hash
        return SessionResolution(explicit, None)
    prefix = hasher.prefix_hash(tenant, texts.system_text, texts.tool_names)
    if explicit is not None:
        return SessionResolution(explicit, prefix)
    return SessionResolution(hasher.session_key(prefix, texts.first_user), prefix)


def cache_key(session_id: str, tenant: str | None) -> str:
    """The session store's key: `<tenant>:<session>` when a tenant header value is present."""
    return session_id if tenant is None else f"{tenant}:{session_id}"


def prefix_hash_header(prefix: int) -> str:
    """Value of `x-plano-prefix-hash`: the prefix hash as 16 lowercase hex digits."""
    return f"{prefix:016x}"
