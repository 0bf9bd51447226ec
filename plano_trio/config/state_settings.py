"""`StateSettings`: the `state_storage` mapping of the plano config, plus plano-trio's own knobs.

These types live with the config, not with the store, because the config is
the lower layer: the loader builds them, and `plano_trio.state` only reads
them.  (The store package re-exports them under its old names.)

Plano's config only has `type` and `connection_string`.  plano-trio reads
these optional keys from the same mapping (all have defaults):

| key | default | meaning |
|---|---|---|
| `queue_size` | 10000 | write-behind queue capacity; `admit()` refuses (503) when full |
| `max_batch` | 500 | most turns written in one batch (one COPY, one commit) |
| `consistency_window_s` | 0.5 | postgres: on a miss, keep looking this long (a peer may flush late) |
| `ttl_s` | none | delete turns older than this; a conversation is gone once any of its turns is |
| `cleanup_interval_s` | 60 | how often the TTL cleanup runs |
| `memory_max_entries` | 100000 | memory backend: most turns kept (LRU eviction of whole turns) |
| `memory_max_bytes` | 256 MiB | memory backend: most JSON bytes kept |
| `cache_max_bytes` | 64 MiB | postgres: byte bound of the in-process cache of rebuilt conversations |
| `startup_timeout_s` | 30 | postgres: keep retrying the first connection this long |
| `drain_timeout_s` | 10 | on shutdown, flush the queue for at most this long |
| `op_timeout_s` | 10 | postgres: bound on one batch write or read; a stuck connection is cut, replaced |
| `read_pool_size` | 4 | postgres: connections used for reads and cleanup |

`connection_string` is handed to libpq as-is (URL or `key=value`), so every
libpq parameter works (`sslmode`, `options`, `target_session_attrs`, ...).
It is parsed here, once, with libpq's own parser: a malformed string can
never connect, so retrying it until `startup_timeout_s` would only delay the
error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

MIB = 1024 * 1024


class StateConfigError(ValueError):
    """The `state_storage` mapping is invalid (unknown key, wrong type, bad value)."""


class StateSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    type: Literal["memory", "postgres"]
    connection_string: str | None = None
    queue_size: int = 10_000
    max_batch: int = 500
    consistency_window_s: float = 0.5
    ttl_s: float | None = None
    cleanup_interval_s: float = 60.0
    memory_max_entries: int = 100_000
    memory_max_bytes: int = 256 * MIB
    cache_max_bytes: int = 64 * MIB
    startup_timeout_s: float = 30.0
    drain_timeout_s: float = 10.0
    op_timeout_s: float = 10.0
    read_pool_size: int = 4

    def __post_init__(self) -> None:
        if self.type == "postgres":
            if not self.connection_string:
                raise StateConfigError("connection_string is required when type is postgres")
            problem = connection_string_problem(self.connection_string)
            if problem is not None:
                raise StateConfigError(f"connection_string: {problem}")
        for name in ("queue_size", "max_batch", "memory_max_entries", "memory_max_bytes", "read_pool_size"):
            if getattr(self, name) < 1:
                raise StateConfigError(f"{name} must be >= 1")
        for name in ("cleanup_interval_s", "startup_timeout_s", "op_timeout_s"):
            if getattr(self, name) <= 0:
                raise StateConfigError(f"{name} must be > 0")
        for name in ("consistency_window_s", "drain_timeout_s", "cache_max_bytes"):
            if getattr(self, name) < 0:
                raise StateConfigError(f"{name} must be >= 0")
        if self.ttl_s is not None and self.ttl_s <= 0:
            raise StateConfigError("ttl_s must be > 0 (omit it to keep turns forever)")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> StateSettings:
        """Build settings from the config's `state_storage` mapping; `StateConfigError` names the bad key."""
        try:
            return msgspec.convert(dict(mapping), cls, str_keys=True)
        except msgspec.ValidationError as exc:
            raise StateConfigError(f"state_storage: {exc}") from None


# --- connection strings ----------------------------------------------------------------------------------

_INTEGER_PARAMS = ("port", "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval")
"""libpq parameters whose value must be an integer; its parser accepts anything and only `connect` fails."""

_NAMED_KEY = re.compile(
    r'^(invalid connection option|invalid URI query parameter:) "([A-Za-z0-9_.-]{1,64})"$'
)
"""libpq messages whose quoted part is a parameter *name* (left of `=`), safe to show."""

_QUOTED = re.compile(r'"[^"]*"')
_SYNTAX = frozenset({'"="', '"["', '"]"'})
"""Quoted pieces that are libpq's own syntax, not the user's text."""


def _hide_quoted(message: str) -> str:
    return _QUOTED.sub(lambda match: match.group(0) if match.group(0) in _SYNTAX else '"…"', message)


def connection_string_problem(conninfo: str) -> str | None:
    """Why libpq could never use `conninfo`, or None; the text never contains a value from it.

    libpq quotes pieces of the string in its messages (a password with a space
    comes back as `unexpected spaces found in "p w"`, a broken IPv6 URL as the
    whole URL), so only a quoted parameter *name* is kept; every other quoted
    piece becomes `"…"`.  psycopg is imported here, not at module level, so a
    memory-state gateway does not pay its start-up cost.
    """
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(conninfo)
    except ProgrammingError as exc:
        message = " ".join(str(exc).split())
        if _NAMED_KEY.match(message):
            return message
        return _hide_quoted(message) or "cannot be parsed"
    for name in _INTEGER_PARAMS:
        value = params.get(name)
        if value is None:
            continue
        # libpq takes a comma-separated list of ports (one per host); an empty entry means the default.
        entries = str(value).split(",") if name == "port" else [str(value)]
        for entry in entries:
            if entry.strip() and not _valid_integer(name, entry.strip()):
                return f"{name} must be an integer{' from 1 to 65535' if name == 'port' else ''}"
    return None


_INTEGER = re.compile(r"^-?[0-9]{1,10}$")


def _valid_integer(name: str, text: str) -> bool:
    if not _INTEGER.match(text):
        return False
    return 1 <= int(text) <= 65535 if name == "port" else True
