"""Who may call the gateway and how much: inbound keys (ours) and token rate limits (Plano's `ratelimits`).

Built once at load time from the checked YAML.  Two sections:

* `plano_trio.inbound_auth` (ours; Plano has no inbound authentication, so
  anyone who reaches its port spends the provider keys): client keys, each
  with a `name`, the key itself (`key: $VAR`) or only its SHA-256
  (`key_sha256: <64 hex>`, so the file holds no secret), an optional list
  of the `models` it may use and an optional per-key `rate_limit`.  More
  entries of the same shape may come from `keys_file` (a YAML list),
  resolved against the config file's directory.  Only digests are kept:
  the key text never reaches a `Config`, a log line or an error message.
* Plano's `ratelimits[]` (`model`, `selector: {key, value}`, `limit:
  {tokens, unit}`), plus where buckets live (`plano_trio.ratelimit_store`:
  `memory`, per process, or a `redis://` URL shared by every instance), how
  long a Redis call may take before the request goes on unlimited
  (`ratelimit_timeout_s`) and how many buckets one process keeps
  (`ratelimit_max_buckets`).

Where this differs from Plano, on purpose: a selector's header name matches
case-insensitively (header names are); `value: "*"` means one bucket per
distinct header value (Plano matches `*` literally); a `unit` other than
Plano's four, or `tokens: 0`, is refused here instead of failing at run time;
a repeated `(model, selector)` is warned about and skipped, as Plano does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from .errors import KeyPath, Report

Unit = Literal["second", "minute", "hour", "day"]
UNITS: Final = ("second", "minute", "hour", "day")

ANY_VALUE: Final = "*"
"""A selector `value` that gives every distinct header value a bucket of its own."""

DEFAULT_STORE_TIMEOUT_S: Final = 0.1
DEFAULT_MAX_BUCKETS: Final = 10_000
MIN_KEY_CHARS: Final = 16
"""Shorter inbound keys are accepted with a warning: they are guessable."""

ACCESS_KNOBS: Final = frozenset(
    {"inbound_auth", "ratelimit_store", "ratelimit_timeout_s", "ratelimit_max_buckets"}
)
"""`plano_trio:` keys read here rather than by `ServerSettings`."""

_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


class TokenLimit(msgspec.Struct, frozen=True, kw_only=True):
    """`tokens` input tokens per `unit` (Plano's `limit`)."""

    tokens: int
    unit: Unit


class InboundKey(msgspec.Struct, frozen=True, kw_only=True):
    """One client key, known only by its SHA-256."""

    name: str
    """Who holds it: shown in logs, errors and the access log instead of the key."""
    digest: bytes = msgspec.field(default=b"")
    """SHA-256 of the key's bytes (32 bytes)."""
    models: tuple[str, ...] = ()
    """Model names, aliases or `prefix/*` this key may use; empty: every model."""
    rate_limit: TokenLimit | None = None
    """Input tokens this key may send, whatever the model (None: no limit of its own)."""

    @property
    def fingerprint(self) -> str:
        """The first 8 hex digits of the digest: names a key in logs without revealing it."""
        return self.digest[:4].hex()


class InboundAuthSettings(msgspec.Struct, frozen=True, kw_only=True):
    keys: tuple[InboundKey, ...]


class RateLimitRule(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of Plano's `ratelimits`."""

    model: str
    """Matched against the resolved route's full name (`openai/gpt-4o`), its bare model id (`gpt-4o`,
    Plano's only match) and its provider's configured name (`openai/*` for a wildcard provider)."""
    header: str
    """The selector header, lowercased."""
    value: str
    """The header value this bucket is for, or `*`: a bucket per distinct value."""
    limit: TokenLimit


class RateLimitSettings(msgspec.Struct, frozen=True, kw_only=True):
    rules: tuple[RateLimitRule, ...] = ()
    store_url: str | None = None
    """`redis://` or `rediss://`: buckets shared by every instance; None: in this process."""
    timeout_s: float = DEFAULT_STORE_TIMEOUT_S
    """Longest one Redis check may take; then the request goes on unlimited (counted)."""
    max_buckets: int = DEFAULT_MAX_BUCKETS
    """Buckets one process keeps in memory (least recently used dropped first)."""


NO_RATE_LIMITS: Final = RateLimitSettings()


def digest_of(key: str) -> bytes:
    """The SHA-256 an inbound key is known by (of its UTF-8 bytes, as a header carries them)."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def build_rate_limits(raw_rules: list[Any], ours: Mapping[str, Any], report: Report) -> RateLimitSettings:
    """Plano's `ratelimits` (types checked by `keyspec`) and our store knobs."""
    rules: list[RateLimitRule] = []
    seen: set[tuple[str, str, str]] = set()
    for index, raw in enumerate(raw_rules):
        if not isinstance(raw, dict):
            continue  # already reported by the shape check
        path: KeyPath = ("ratelimits", index)
        selector, limit = raw.get("selector"), raw.get("limit")
        if not isinstance(selector, dict) or not isinstance(limit, dict) or "model" not in raw:
            continue
        if limit.get("tokens", 0) < 1:
            report.problem((*path, "limit", "tokens"), "must be at least 1")
            continue
        rule = RateLimitRule(
            model=raw["model"],
            header=selector["key"].strip().lower(),
            value=selector["value"],
            limit=TokenLimit(tokens=limit["tokens"], unit=limit["unit"]),
        )
        identity = (rule.model, rule.header, rule.value)
        if identity in seen:
            report.warn(path, f"repeated selector for model '{rule.model}'; this entry is skipped")
            continue
        seen.add(identity)
        rules.append(rule)
    store = ours.get("ratelimit_store")
    url: str | None = None
    if store is not None and store != "memory":
        if store.startswith(("redis://", "rediss://")):
            url = store
        else:
            report.problem(
                ("plano_trio", "ratelimit_store"), "must be memory, or a redis:// or rediss:// URL"
            )
    return RateLimitSettings(
        rules=tuple(rules),
        store_url=url,
        timeout_s=float(ours.get("ratelimit_timeout_s", DEFAULT_STORE_TIMEOUT_S)),
        max_buckets=ours.get("ratelimit_max_buckets", DEFAULT_MAX_BUCKETS),
    )


def build_inbound_auth(
    raw: Mapping[str, Any] | None,
    report: Report,
    *,
    base_dir: Path | None,
    read_keys_file: Callable[[Path, KeyPath], list[tuple[KeyPath, dict[str, Any]]]],
) -> InboundAuthSettings | None:
    """`plano_trio.inbound_auth`, or None when the section is absent.

    `read_keys_file(path, report_path)` returns the checked entries of a keys
    file (reporting its own problems); passed in so this module stays free of
    file and YAML handling.
    """
    if raw is None:
        return None
    where: KeyPath = ("plano_trio", "inbound_auth")
    entries: list[tuple[KeyPath, Mapping[str, Any]]] = [
        ((*where, "keys", i), entry) for i, entry in enumerate(raw.get("keys", [])) if isinstance(entry, dict)
    ]
    keys_file = raw.get("keys_file")
    if keys_file:
        path = Path(keys_file)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        entries += read_keys_file(path, (*where, "keys_file"))
    keys: list[InboundKey] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    for path_, entry in entries:
        key = _inbound_key(entry, path_, report)
        if key is None:
            continue
        if key.name in names:
            report.problem((*path_, "name"), f"another key is already named '{key.name}'")
            continue
        if key.digest in digests:
            report.problem(path_, f"key '{key.name}' is the same key as another entry")
            continue
        names.add(key.name)
        digests.add(key.digest)
        keys.append(key)
    if not keys and not report.has_problems_under(where):
        report.problem(where, "no keys: every request would be refused (remove the section to turn it off)")
    return InboundAuthSettings(keys=tuple(keys))


def _inbound_key(entry: Mapping[str, Any], path: KeyPath, report: Report) -> InboundKey | None:
    """One key entry, or None (reported) when it cannot be used.  Messages never quote the key."""
    name = str(entry.get("name", "")).strip()
    if not name:
        report.problem((*path, "name"), "must not be empty")
        return None
    text, hexed = entry.get("key"), entry.get("key_sha256")
    if (text is None) == (hexed is None):
        report.problem(path, f"key '{name}': give exactly one of key or key_sha256")
        return None
    if text is not None:
        if not text:
            report.problem((*path, "key"), f"key '{name}' is empty")
            return None
        if "$" in text:
            return None  # an unset variable: the loader reports it
        if len(text) < MIN_KEY_CHARS:
            report.warn((*path, "key"), f"key '{name}' is shorter than {MIN_KEY_CHARS} characters")
        digest = digest_of(text)
    else:
        hexed = str(hexed)
        if not _HEX_DIGEST.fullmatch(hexed):
            report.problem((*path, "key_sha256"), f"key '{name}': must be 64 hex digits (a SHA-256)")
            return None
        digest = bytes.fromhex(hexed)
    limit = entry.get("rate_limit")
    rate_limit = None
    if isinstance(limit, dict):
        if limit["tokens"] < 1:
            report.problem((*path, "rate_limit", "tokens"), "must be at least 1")
            return None
        rate_limit = TokenLimit(tokens=limit["tokens"], unit=limit["unit"])
    models = tuple(dict.fromkeys(str(model) for model in entry.get("models", ())))
    return InboundKey(name=name, digest=digest, models=models, rate_limit=rate_limit)


def check_key_models(auth: InboundAuthSettings, known: set[str], prefixes: set[str], report: Report) -> None:
    """Warn about a key's `models` entry that names nothing configured (a typo locks the key out)."""
    for key in auth.keys:
        for model in key.models:
            prefix, slash, rest = model.partition("/")
            if model in known or (slash and (rest == "*" or prefix in prefixes)):
                continue
            report.warn(
                ("plano_trio", "inbound_auth"),
                f"key '{key.name}': model '{model}' matches no configured model, alias or wildcard provider",
            )
