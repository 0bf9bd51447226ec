"""Session keys and prefix hashes: byte-for-byte Plano's, so a shared Redis sees one key space."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.router.affinity import (
    HASH_SALT,
    ImplicitAffinity,
    SessionResolution,
    cache_key,
    derive_implicit_affinity,
    fnv1a64,
    implicit_affinity_enabled,
    implicit_session_key,
    prefix_hash,
    prefix_hash_header,
    resolve_session,
)

# Published FNV-1a 64 constants; the textbook hash of a byte string, written out independently.
OFFSET_BASIS = 14695981039346656037
PRIME = 1099511628211


def textbook_fnv1a64(data: bytes) -> int:
    h = OFFSET_BASIS
    for byte in data:
        h ^= byte
        h = (h * PRIME) % 2**64
    return h


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0xCBF29CE484222325),
        (b"a", 0xAF63DC4C8601EC8C),
        (b"foobar", 0x85944171F73967E8),
    ],
)
def test_textbook_fnv_matches_published_vectors(data: bytes, expected: int) -> None:
    assert textbook_fnv1a64(data) == expected


# Computed with Plano's `fnv1a64` (affinity.rs) for these chunk lists.
PLANO_VECTORS = [
    (("", "You are a coding agent.", "", "Fix the bug in main.rs"), 0x5A7D7357E976D47B),
    (("", "You are a coding agent.", ""), 0x5364DDA745ADBF65),
    (("", "s", "", "u"), 0x0F3606AE945D0841),
    (("", "s", "get_weather", "u"), 0xD3F22A8E83BDF204),
    (("acme", "s", "", "u"), 0x52C40C0E6600D2BF),
    (("", "s", ""), 0x3CB6023D6AFD0939),
    (("", "", "", ""), 0x0458FE3CB9EA19ED),
    (("", "", ""), 0xF1B40D9B814F65C0),
    (("t", "sys\ndev", "a,b", "héllo ✓"), 0x06C9E739382B78CE),
    (("t", "sys\ndev", "a,b"), 0x464EB016244BCFF3),
]


@pytest.mark.parametrize(("chunks", "expected"), PLANO_VECTORS)
def test_fnv_matches_plano_vectors(chunks: tuple[str, ...], expected: int) -> None:
    assert fnv1a64(chunks) == expected


@pytest.mark.parametrize(("chunks", "_expected"), PLANO_VECTORS)
def test_fnv_is_textbook_fnv_over_salt_and_separated_chunks(chunks: tuple[str, ...], _expected: int) -> None:
    data = b"".join(c.encode() + b"\x1f" for c in (HASH_SALT, *chunks))
    assert fnv1a64(chunks) == textbook_fnv1a64(data)


def test_derived_identifiers_use_the_vectors() -> None:
    got = derive_implicit_affinity(None, "You are a coding agent.", "", "Fix the bug in main.rs")
    assert got == ImplicitAffinity("implicit:5a7d7357e976d47b", 0x5364DDA745ADBF65)
    assert implicit_session_key("acme", "s", "", "u") == "implicit:52c40c0e6600d2bf"
    assert prefix_hash("t", "sys\ndev", "a,b") == 0x464EB016244BCFF3
    assert implicit_session_key("", "s", "", "u") == implicit_session_key(None, "s", "", "u")


def test_separator_keeps_chunk_boundaries() -> None:
    assert fnv1a64(("ab", "c")) != fnv1a64(("a", "bc"))


# Plano's affinity.rs tests, as behaviour.
def test_key_is_stable_as_history_grows() -> None:
    # Only system, tools and the first user message enter the key: later turns leave it alone.
    a = derive_implicit_affinity(None, "You are a coding agent.", "", "Fix the bug in main.rs")
    assert a is not None
    assert a.session_key.startswith("implicit:")


def test_different_first_user_message_yields_different_session() -> None:
    a = derive_implicit_affinity(None, "You are a coding agent.", "", "conversation A")
    b = derive_implicit_affinity(None, "You are a coding agent.", "", "conversation B")
    assert a is not None and b is not None
    assert a.prefix_hash == b.prefix_hash
    assert a.session_key != b.session_key


def test_changed_system_prompt_changes_prefix_hash() -> None:
    a = derive_implicit_affinity(None, "v1 prompt", "", "hi")
    b = derive_implicit_affinity(None, "v2 prompt", "", "hi")
    assert a is not None and b is not None
    assert a.prefix_hash != b.prefix_hash
    assert a.session_key != b.session_key


def test_tools_and_tenant_are_part_of_the_key() -> None:
    plain = implicit_session_key(None, "s", "", "u")
    assert plain != implicit_session_key(None, "s", "get_weather", "u")
    assert plain != implicit_session_key("acme", "s", "", "u")


def test_no_user_message_yields_none() -> None:
    assert derive_implicit_affinity(None, "s", "", None) is None
    assert implicit_session_key(None, "", "", None) is None


def test_empty_user_message_still_anchors() -> None:
    # Plano anchors on the first user message's text, even when that text is empty.
    assert implicit_session_key(None, "s", "", "") is not None


def test_lone_surrogate_does_not_crash() -> None:
    assert implicit_session_key(None, "\ud800", "", "u") is not None


S = "You are a coding agent."
U = "Fix the bug in main.rs"
KEY = "implicit:5a7d7357e976d47b"
PREFIX = 0x5364DDA745ADBF65


@pytest.mark.parametrize(
    ("explicit", "first_user", "implicit_enabled", "cache_off", "expected"),
    [
        # explicit id always wins; the prefix hash is still derived
        ("abc", U, True, False, SessionResolution("abc", PREFIX)),
        ("abc", U, False, False, SessionResolution("abc", PREFIX)),
        # cache off suppresses the derived key and the prefix hash, not the explicit id
        ("abc", U, True, True, SessionResolution("abc", None)),
        (None, U, True, True, SessionResolution(None, None)),
        # implicit key only when implicit affinity is on
        (None, U, True, False, SessionResolution(KEY, PREFIX)),
        (None, U, False, False, SessionResolution(None, PREFIX)),
        # nothing to anchor on: no key, no prefix hash
        (None, None, True, False, SessionResolution(None, None)),
        ("abc", None, True, False, SessionResolution("abc", None)),
    ],
)
def test_resolve_session(
    explicit: str | None,
    first_user: str | None,
    implicit_enabled: bool,
    cache_off: bool,
    expected: SessionResolution,
) -> None:
    got = resolve_session(
        explicit, None, S, "", first_user, implicit_enabled=implicit_enabled, cache_off=cache_off
    )
    assert got == expected


@pytest.mark.parametrize(
    ("affinity", "budget", "user_only", "override", "expected"),
    [
        (False, False, False, False, False),
        (True, False, False, False, True),
        (False, True, False, False, True),
        (False, False, True, False, False),
        (False, False, False, True, False),
        (False, False, True, True, True),
    ],
)
def test_implicit_affinity_enabled(
    affinity: bool, budget: bool, user_only: bool, override: bool, expected: bool
) -> None:
    got = implicit_affinity_enabled(
        session_affinity=affinity,
        budget_active=budget,
        route_on_user_only=user_only,
        routing_can_override_model=override,
    )
    assert got is expected


@pytest.mark.parametrize(
    ("session", "tenant", "expected"),
    [("s1", None, "s1"), ("s1", "acme", "acme:s1"), ("implicit:00", "", ":implicit:00")],
)
def test_cache_key(session: str, tenant: str | None, expected: str) -> None:
    assert cache_key(session, tenant) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(0, "0000000000000000"), (0xF, "000000000000000f"), (2**64 - 1, "f" * 16)]
)
def test_prefix_hash_header(value: int, expected: str) -> None:
    assert prefix_hash_header(value) == expected


@given(st.lists(st.text(), max_size=5))
def test_fnv_is_a_u64_and_textbook(chunks: list[str]) -> None:
    data = b"".join(c.encode("utf-8", "surrogatepass") + b"\x1f" for c in (HASH_SALT, *chunks))
    got = fnv1a64(chunks)
    assert 0 <= got < 2**64
    assert got == textbook_fnv1a64(data)
