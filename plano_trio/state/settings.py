"""`StateSettings`: the `state_storage` mapping of the plano config, plus plano-trio's own knobs.

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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from .errors import StateConfigError

MIB = 1024 * 1024


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
        if self.type == "postgres" and not self.connection_string:
            raise StateConfigError("connection_string is required when type is postgres")
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
