"""Session keys and prefix hashes: byte-for-byte Plano's, so a shared Redis sees one key space."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.router.affinity import (
    HASH_SALT,
    MAX_HASHED_CHUNK_BYTES,
    MEMO_MIN_BYTES,
    AffinityHasher,
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
from plano_trio.router.conversation import AffinityParts

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
    ("explicit", "first_user", "implicit_enabled", "cache_off", "expected", "reads"),
    [
        # explicit id always wins; the prefix hash is still derived (drift detection)
        ("abc", U, True, False, SessionResolution("abc", PREFIX), 1),
        ("abc", U, False, False, SessionResolution("abc", PREFIX), 1),
        # cache off suppresses the derived key and the prefix hash, not the explicit id
        ("abc", U, True, True, SessionResolution("abc", None), 0),
        (None, U, True, True, SessionResolution(None, None), 0),
        # implicit key only when implicit affinity is on
        (None, U, True, False, SessionResolution(KEY, PREFIX), 1),
        # no session: nothing read, nothing hashed (Plano derives the prefix for its header; we send
        # that header only with a session)
        (None, U, False, False, SessionResolution(None, None), 0),
        # nothing to anchor on: no key, no prefix hash
        (None, None, True, False, SessionResolution(None, None), 1),
        ("abc", None, True, False, SessionResolution("abc", None), 1),
    ],
)
def test_resolve_session(
    explicit: str | None,
    first_user: str | None,
    implicit_enabled: bool,
    cache_off: bool,
    expected: SessionResolution,
    reads: int,
) -> None:
    calls: list[None] = []

    def parts() -> AffinityParts:
        calls.append(None)
        return AffinityParts(S, "", first_user)

    got = resolve_session(
        explicit, None, parts, AffinityHasher(), implicit_enabled=implicit_enabled, cache_off=cache_off
    )
    assert got == expected
    assert len(calls) == reads


def test_an_explicit_id_hashes_the_prefix_but_not_the_first_user_message() -> None:
    hasher = AffinityHasher()
    first_user = "u" * 10_000
    resolve_session(
        "abc", None, lambda: AffinityParts(S, "", first_user), hasher, implicit_enabled=True, cache_off=False
    )
    assert hasher.hashed_bytes == len(S)


def test_the_session_key_continues_from_the_prefix_state_in_one_pass() -> None:
    hasher = AffinityHasher()
    got = resolve_session(
        None,
        "t",
        lambda: AffinityParts("sys\ndev", "a,b", "héllo ✓"),
        hasher,
        implicit_enabled=True,
        cache_off=False,
    )
    assert got == SessionResolution("implicit:06c9e739382b78ce", 0x464EB016244BCFF3)  # Plano's vectors
    assert hasher.hashed_bytes == len("tsys\ndeva,bhéllo ✓".encode())  # each byte once


def _text(size: int) -> str:
    return "".join(chr(0x61 + (i * 7) % 26) for i in range(size))


@pytest.mark.parametrize(
    "size",
    [0, 1, MEMO_MIN_BYTES - 1, MEMO_MIN_BYTES, 5_000, MAX_HASHED_CHUNK_BYTES - 1, MAX_HASHED_CHUNK_BYTES],
)
def test_up_to_the_cap_the_hasher_is_plano_exactly(size: int) -> None:
    system, first = _text(size), "é" * (size // 2)
    expected_key = f"implicit:{fnv1a64(('acme', system, 'x,y', first)):016x}"
    hasher = AffinityHasher()
    for _ in range(2):  # computed, then remembered: the same values
        assert hasher.derive("acme", system, "x,y", first) == ImplicitAffinity(
            expected_key, fnv1a64(("acme", system, "x,y"))
        )


def test_past_the_cap_a_chunk_is_its_head_and_its_digest() -> None:
    hasher = AffinityHasher()
    head = "a" * MAX_HASHED_CHUNK_BYTES
    one = hasher.derive(None, "s", "", head + "b" * 1_000_000)
    assert one is not None
    assert hasher.hashed_bytes <= 1 + MAX_HASHED_CHUNK_BYTES + 32  # never the megabyte
    other = hasher.derive(None, "s", "", head + "b" * 999_999 + "c")
    shorter = hasher.derive(None, "s", "", head + "b")
    assert other is not None and shorter is not None
    # stable, and still distinct past the cap (only the head is Plano's bytes)
    assert len({one.session_key, other.session_key, shorter.session_key}) == 3
    assert hasher.derive(None, "s", "", head + "b" * 1_000_000) == one
    assert one.prefix_hash == shorter.prefix_hash == fnv1a64(("", "s", ""))


def test_a_growing_conversation_hashes_its_stable_chunks_once() -> None:
    hasher = AffinityHasher()
    system, first = "You are a coding agent. " * 400, "Fix the bug in main.rs " * 200
    expected = derive_implicit_affinity(None, system, "", first)
    assert expected is not None
    assert hasher.derive(None, system, "", first) == expected
    once = hasher.hashed_bytes
    for _ in range(5):  # every later turn: the same chunks, found in the memo
        assert hasher.derive(None, system, "", first) == expected
    assert hasher.hashed_bytes == once
    # another conversation of the same agent: only its first message is new
    other = hasher.derive(None, system, "", "Another task " * 100)
    assert other is not None and other.prefix_hash == expected.prefix_hash
    assert hasher.hashed_bytes == once + len("Another task " * 100)


def test_the_memo_is_bounded() -> None:
    hasher = AffinityHasher(memo_entries=4)
    texts = [str(i) * MEMO_MIN_BYTES for i in range(10)]
    for text in texts:
        hasher.derive(None, "", "", text)
    before = hasher.hashed_bytes
    hasher.derive(None, "", "", texts[-1])  # recent: remembered
    assert hasher.hashed_bytes == before
    hasher.derive(None, "", "", texts[0])  # evicted: hashed again, same value
    assert hasher.hashed_bytes == before + len(texts[0])
    assert hasher.derive(None, "", "", texts[0]) == derive_implicit_affinity(None, "", "", texts[0])


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


HASHER = AffinityHasher(memo_entries=64)


@given(st.text(), st.text(), st.text(), st.text() | st.text(min_size=MEMO_MIN_BYTES))
def test_the_hasher_is_plano_below_the_cap_with_or_without_its_memo(
    tenant: str, system: str, tools: str, first: str
) -> None:
    expected = ImplicitAffinity(
        f"implicit:{fnv1a64((tenant, system, tools, first)):016x}", fnv1a64((tenant, system, tools))
    )
    assert HASHER.derive(tenant, system, tools, first) == expected
    assert HASHER.derive(tenant, system, tools, first) == expected
