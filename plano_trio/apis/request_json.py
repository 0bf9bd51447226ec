"""Reading a client's request body so that every hostile body is one typed error.

msgspec checks JSON syntax at C speed, but on its own it lets four kinds of
body through as exceptions no handler expects (each was answered 500):

* nesting deeper than the interpreter's recursion budget raises `RecursionError`;
* bytes that are not UTF-8 raise `UnicodeDecodeError`, and only when a string
  is actually decoded (a skipped value is never checked);
* an integer of more than ~4,300 digits or a float beyond double range
  (`1e999999`) raises `ValidationError` from an untyped decode;
* a key given twice silently keeps its last value, while a provider whose
  parser keeps the first one would see (and bill) another request.

Everything here raises `RequestJsonError` for a bad body and nothing else.
The module is pure (bytes in, values or that error out) so it is tested with
tables and with arbitrary bytes; `gateway.clients` turns the error into a 400
in the client's error shape.

Costs, measured on a 1.7 KB chat body: every request pays one top-level
decode (`decode_members`, which replaces the routing view's own decode) plus
a few hundred nanoseconds; nothing here rescans the body in Python.  Plain
`bytes.count` runs at about msgspec's own decoding speed, so even a counting
precheck would double the cost of reading a large body; the checks below use
what the one decode already returned instead.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

MAX_DEPTH = 128
"""Deepest nesting a decoded request may have (the top-level object is level 1).

Real requests nest a handful of levels (a tool's JSON schema rarely passes
ten); 128 leaves room for any of them while keeping every walk over a
decoded request far inside the interpreter's recursion limit (1,000 frames).
"""

_decode_members = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_decode_any = msgspec.json.Decoder().decode
_decode_key = msgspec.json.Decoder(str).decode

# From the end of the previous value (or the body's start) to the start of a member's value: in
# JSON that is already known to be one object, only whitespace and the `{` or `,` before the key
# can come first.  Possessive quantifiers keep the match linear in the key's length.
_MEMBER = re.compile(rb'[ \t\n\r{,]*+"([^"\\]*+(?:\\.[^"\\]*+)*+)"[ \t\n\r]*+:[ \t\n\r]*+', re.DOTALL)


_LONE_HIGH_SURROGATE = re.compile(rb"(?<!\\)(?:\\\\)*+(\\u[dD][89abAB][0-9a-fA-F]{2})(?!\\u)")
"""A `\\uD800`-`\\uDBFF` escape (preceded by an even number of backslashes, so it is an escape) that no
second `\\u` escape follows: msgspec reports that as "Input data was truncated", which sends whoever
reads the error looking for a cut-off body.  Searched only once a decode has failed."""


class RequestJsonError(ValueError):
    """A request body the gateway refuses; `message` completes "Invalid ... request: "."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def require_utf8(body: bytes) -> None:
    """JSON text is UTF-8 (RFC 8259); refuse any other bytes before a stage meets them.

    `isascii` is a vectorized scan (~70 ns for 1.7 KB), so the full check
    only runs on bodies that carry non-ASCII bytes.
    """
    if body.isascii():
        return
    try:
        body.decode()
    except UnicodeDecodeError as error:
        raise RequestJsonError(
            f"the body is not valid JSON: it is not UTF-8 (invalid byte at offset {error.start})"
        ) from None


def decode_members(body: bytes) -> dict[str, msgspec.Raw]:
    """The body's top-level object as key → undecoded value, checked for what routing relies on.

    The body must be UTF-8 JSON whose top level is an object with no key
    given twice.  Nested values are validated as JSON but not decoded;
    nesting deep enough to exhaust the decoder's recursion budget (several
    hundred levels, always more than `MAX_DEPTH`) is refused as too deep.
    """
    require_utf8(body)
    try:
        members = _decode_members(body)
    except RecursionError:
        raise _too_deep() from None
    except msgspec.ValidationError:
        raise RequestJsonError(f"the body must be a JSON object, not {_kind(body)}") from None
    except msgspec.DecodeError as error:
        raise _not_json(body, error) from None
    key = duplicate_key(body, members)
    if key is not None:
        raise RequestJsonError(f"the key '{key}' is given more than once", param=key)
    return members


def decode_request_object(body: bytes) -> dict[str, Any]:
    """The whole body decoded, for the translated path; it is an object at most `MAX_DEPTH` deep.

    Numbers outside what msgspec can hold (integers beyond ~4,300 digits,
    floats beyond double range) are refused rather than decoded, and so is
    any byte that is not UTF-8.  Duplicate keys are `decode_members`' job:
    call this after the body passed it.
    """
    require_utf8(body)
    try:
        value = _decode_any(body)
    except RecursionError:
        raise _too_deep() from None
    except msgspec.ValidationError as error:  # an untyped decode validates nothing but number ranges
        reason = str(error).partition(" - at ")[0]
        raise RequestJsonError(f"a number in the body cannot be represented ({reason})") from None
    except msgspec.DecodeError as error:
        raise _not_json(body, error) from None
    if not isinstance(value, dict):
        raise RequestJsonError(f"the body must be a JSON object, not {_kind(body)}")
    if body.count(b"{") + body.count(b"[") > MAX_DEPTH and deeper_than(value, MAX_DEPTH):
        raise _too_deep()
    return value


def deeper_than(value: object, limit: int) -> bool:
    """Whether a decoded JSON value nests more than `limit` levels (a scalar is level 0).

    Level by level, without recursion, so a value of any depth is measured
    in time linear in its size; it stops as soon as the answer is known.
    """
    level: list[dict[str, Any] | list[Any]] = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        deeper: list[dict[str, Any] | list[Any]] = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            deeper.extend(child for child in children if isinstance(child, dict | list))
        if not deeper:
            return False
        level = deeper
    return bool(level)


def duplicate_key(body: bytes, members: dict[str, msgspec.Raw]) -> str | None:
    """The first top-level key `body` gives twice, or None; `members` is `body` decoded by `decode_members`.

    A decode keeps one entry per key, so the question is whether the body
    holds more members than `members`.  When the body is compact JSON the
    lengths answer it: every member adds its key, two quotes, a colon, a
    comma and its value, and anything else (whitespace, an escaped key, a
    member given again) only makes the body longer.  Otherwise the members
    are walked: each value is skipped by the length of the value the decode
    kept for its key, and a value that differs there is one a later member
    replaced.  Either way the cost grows with the number of top-level
    members, never with the size of the values.
    """
    if not members:
        return None
    compact = 1 + 4 * len(members) + sum(map(len, members)) + sum(map(len, members.values()))
    if len(body) == compact:
        return None
    return _walk_for_duplicate(body, members)


def _walk_for_duplicate(body: bytes, members: dict[str, msgspec.Raw]) -> str | None:
    seen: set[str] = set()
    pos = 0
    while (member := _MEMBER.match(body, pos)) is not None:
        raw_key = member.group(1)
        key = _decode_key(b'"' + raw_key + b'"') if b"\\" in raw_key else raw_key.decode()
        value = members[key]
        pos = member.end()
        if key in seen or not body.startswith(value, pos):
            return key
        seen.add(key)
        pos += len(value)
    return None


def _not_json(body: bytes, error: msgspec.DecodeError) -> RequestJsonError:
    """msgspec's reason, except where it misleads: a lone high surrogate escape is not truncation."""
    reason = str(error)
    if reason == "Input data was truncated":
        lone = _LONE_HIGH_SURROGATE.search(body)
        if lone is not None:
            escape = lone[1].decode()
            reason = (
                f"invalid utf-16 surrogate pair (byte {lone.start(1)}: {escape} is not followed by its pair)"
            )
    return RequestJsonError(f"the body is not valid JSON: {reason}")


def _too_deep() -> RequestJsonError:
    return RequestJsonError(f"the body nests deeper than {MAX_DEPTH} levels")


_KINDS = {ord("["): "an array", ord('"'): "a string", ord("t"): "a boolean", ord("f"): "a boolean"}


def _kind(body: bytes) -> str:
    """What a valid JSON text that is not an object holds, named from its first byte."""
    first = body.lstrip(b" \t\n\r")[:1]
    if not first:
        return "empty"
    return _KINDS.get(first[0], "null" if first == b"n" else "a number")
