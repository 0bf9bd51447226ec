"""Which buckets a request charges: Plano's `ratelimits` rules and a client key's own limit (pure).

Plano's selection, kept: the client names a header in
`x-arch-ratelimit-selector` and sends that header; a rule applies when its
`model` matches the request's model and its `selector` matches that header,
an exact `value` first.  Without the selector header no rule applies (a
limit the client must opt into; inbound keys' own limits are the ones a
client cannot avoid).

Fixed here: `model` matches the resolved route's full `provider/model` name
as Plano documents it, as well as the bare id (the only thing Plano
compares) and the provider's configured name (`openai/*` for a wildcard
provider); `value: "*"` gives each distinct header value a bucket of its
own (Plano matches `*` literally, so it never applies); the selector's
header name matches case-insensitively.

Nothing here costs anything for a request whose model has no rule: one
dictionary lookup per name, and the headers are read only after that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

from plano_trio.apis.http import Header
from plano_trio.config.access_settings import ANY_VALUE, InboundKey, RateLimitRule, TokenLimit

from .gcra import Quota

SELECTOR_HEADER: Final = b"x-arch-ratelimit-selector"


class Charge(NamedTuple):
    """One bucket a request must fit in."""

    bucket: str
    """The bucket's identity: the same on every instance with the same config (it keys Redis)."""
    quota: Quota
    rule: RateLimitRule | None = None
    """The `ratelimits` entry (None: a client key's own limit)."""
    value: str = ""
    """The selector header's value this request carried."""
    key_name: str = ""
    """The client key's name, for a key's own limit."""

    def exceeded(self, cost: int) -> str:
        """The 429 message: Plano's words for a rule, the same form naming the key for a key's limit."""
        if self.rule is None:
            return f"exceeded limit key={self.key_name}, tokens_used={cost}"
        selector = f"Header {{ key: {_debug(self.rule.header)}, value: {_debug(self.value)} }}"
        return f"exceeded limit provider={self.rule.model}, selector={selector}, tokens_used={cost}"


def _debug(text: str) -> str:
    """`text` as Rust's `{:?}` prints a string (Plano's message is made that way)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


def _digest(*parts: str) -> str:
    """A short, stable hex name for a bucket (header values are client text of any length)."""
    return hashlib.blake2b("\x00".join(parts).encode("utf-8", "surrogateescape"), digest_size=12).hexdigest()


def _limit_id(limit: TokenLimit) -> str:
    return f"{limit.tokens}/{limit.unit}"


class RateLimitRules:
    """The configured rules, indexed by every model name they match."""

    def __init__(self, rules: Sequence[RateLimitRule]) -> None:
        self._by_model: dict[str, list[tuple[RateLimitRule, Quota, str]]] = {}
        for rule in rules:
            quota = Quota.per(rule.limit.tokens, rule.limit.unit)
            rule_id = _digest(rule.model, rule.header, rule.value, _limit_id(rule.limit))
            self._by_model.setdefault(rule.model, []).append((rule, quota, rule_id))

    def __bool__(self) -> bool:
        return bool(self._by_model)

    def charges(self, names: Iterable[str], headers: Sequence[Header]) -> list[Charge]:
        """The rule buckets a request for a model known by `names` charges (usually none or one)."""
        candidates: list[tuple[RateLimitRule, Quota, str]] = []
        for name in dict.fromkeys(names):
            candidates += self._by_model.get(name, ())
        if not candidates:
            return []
        selected = _selected_header(headers)
        if selected is None:
            return []
        header, value = selected
        matching = [c for c in candidates if c[0].header == header]
        chosen = [c for c in matching if c[0].value == value] or [
            c for c in matching if c[0].value == ANY_VALUE
        ]
        return [
            Charge(f"r:{rule_id}:{_digest(value) if rule.value == ANY_VALUE else ''}", quota, rule, value)
            for rule, quota, rule_id in chosen
        ]


def key_charge(key: InboundKey) -> Charge | None:
    """A client key's own bucket, when it has a `rate_limit`."""
    limit = key.rate_limit
    if limit is None:
        return None
    bucket = f"k:{key.digest[:12].hex()}:{_limit_id(limit)}"
    return Charge(bucket, Quota.per(limit.tokens, limit.unit), key_name=key.name)


def _selected_header(headers: Sequence[Header]) -> tuple[str, str] | None:
    """(header name, value) the client chose with `x-arch-ratelimit-selector`, if it sent both."""
    name = next((value for key, value in headers if key == SELECTOR_HEADER), None)
    if name is None:
        return None
    wanted = name.strip().lower()
    value = next((v for key, v in headers if key == wanted), None)
    if value is None:
        return None
    return wanted.decode("latin-1"), value.decode("utf-8", "replace")
