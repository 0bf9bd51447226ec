"""A session's binding to a model, and its JSON encoding in the session store.

The binding is what the routing decision remembers between turns: the model
the session is warm on (`anchor_model`), the model it would have stayed on had
it never switched (`default_model`, priced into the budget's baseline), the
client's own model lane, when it was last used, how big its context is, the
budget's running totals, and a short per-model history.

The JSON is Plano's field for field -- the same names, `route_name`,
`prefix_hash` and `history` left out when empty, times as whole epoch seconds
-- so a Redis shared with a Plano deployment holds one kind of value.
Decoding is Plano's as well: every field but `anchor_model` may be missing
(older bindings), unknown fields are ignored, a wrong type anywhere rejects
the whole value.  Whatever comes out of the store is untrusted: a value that
does not decode, or is larger than a binding could honestly be, is simply no
binding (the session routes as new).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec

U64_MAX = 2**64 - 1
U64 = Annotated[int, msgspec.Meta(ge=0)]
"""Non-negative; msgspec cannot bound above int64 in a type, so `decode_binding` checks `U64_MAX`."""
U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]

MAX_ROUTE_HISTORY = 8
"""Distinct models kept in `history`: real sessions touch a handful, and the value must stay small."""

MAX_BINDING_BYTES = 64 * 1024
"""A binding is a few hundred bytes; a stored value near this is not ours and is not parsed."""


class RouteVisit(msgspec.Struct, frozen=True):
    """One model this session was dispatched to: when, and how large the context it saw was.

    Lets a switch back to a model whose cache is still warm be priced at the
    cached rate for the context it already holds (the A -> B -> A case).
    """

    model: str
    last_used: U64
    """Epoch seconds."""
    cached_tokens: U64 = 0


class SessionBinding(msgspec.Struct, frozen=True, kw_only=True):
    anchor_model: str
    """Provider-qualified model that handled the latest turn: what the session is warm on."""
    last_used: U64
    """Epoch seconds of the latest turn; warmth is judged from it against the provider's cache window."""
    default_model: str = ""
    """The model this warm episode started on; the never-switch baseline is priced on it ("" = anchor)."""
    requested_model: str = ""
    """The client's own (alias-resolved) model when this was written: the lane a replay must match."""
    route_name: str | None = None
    prefix_hash: U64 | None = None
    """Hash of system + tools when stored; a different one later means the provider cache is gone."""
    cached_tokens: U64 = 0
    """Context size in tokens (provider-reported after a response, else estimated)."""
    baseline_usd: float = 0.0
    """What this warm episode would have cost by never switching: the budget's denominator."""
    switch_spend_usd: float = 0.0
    """Spent on paid switches this warm episode; never decreases within one."""
    switches: U32 = 0
    history: tuple[RouteVisit, ...] = ()
    session_cost_usd: float = 0.0
    """Actual cost of the whole conversation so far; survives cold re-binds."""


class _StoredBinding(msgspec.Struct, kw_only=True):
    """The decoding shape: as `SessionBinding`, but `last_used` may be missing (Plano reads "now")."""

    anchor_model: str
    last_used: U64 | msgspec.UnsetType = msgspec.UNSET
    default_model: str = ""
    requested_model: str = ""
    route_name: str | None = None
    prefix_hash: U64 | None = None
    cached_tokens: U64 = 0
    baseline_usd: float = 0.0
    switch_spend_usd: float = 0.0
    switches: U32 = 0
    history: tuple[RouteVisit, ...] = ()
    session_cost_usd: float = 0.0


_decoder = msgspec.json.Decoder(_StoredBinding)


def encode_binding(binding: SessionBinding) -> bytes:
    """Plano's JSON, fields in its order; floats always written as floats (`0.0`, not `0`)."""
    out: dict[str, Any] = {
        "anchor_model": binding.anchor_model,
        "default_model": binding.default_model,
        "requested_model": binding.requested_model,
    }
    if binding.route_name is not None:
        out["route_name"] = binding.route_name
    if binding.prefix_hash is not None:
        out["prefix_hash"] = binding.prefix_hash
    out["last_used"] = binding.last_used
    out["cached_tokens"] = binding.cached_tokens
    out["baseline_usd"] = float(binding.baseline_usd)
    out["switch_spend_usd"] = float(binding.switch_spend_usd)
    out["switches"] = binding.switches
    if binding.history:
        out["history"] = [
            {"model": v.model, "last_used": v.last_used, "cached_tokens": v.cached_tokens}
            for v in binding.history
        ]
    out["session_cost_usd"] = float(binding.session_cost_usd)
    return msgspec.json.encode(out)


def decode_binding(raw: bytes, now: float) -> SessionBinding | None:
    """The binding stored as `raw`, or None for anything that is not one.

    `now` stands in for a missing `last_used`, as Plano's decoder does.
    Money fields must be finite (JSON cannot say NaN; a number too large for
    a float is rejected by the parser).  Duplicate keys keep the last value
    (Plano's parser rejects them; the difference never matters for values we
    or Plano wrote).  `history` is cut to its last `MAX_ROUTE_HISTORY`
    entries, so a poisoned value costs one bounded parse and nothing after.
    """
    if len(raw) > MAX_BINDING_BYTES:
        return None
    try:
        stored = _decoder.decode(raw)
    except msgspec.MsgspecError:
        return None
    if not all(
        math.isfinite(x) for x in (stored.baseline_usd, stored.switch_spend_usd, stored.session_cost_usd)
    ):
        return None
    counts = [stored.cached_tokens, stored.prefix_hash or 0]
    if not isinstance(stored.last_used, msgspec.UnsetType):
        counts.append(stored.last_used)
    counts.extend(n for v in stored.history for n in (v.last_used, v.cached_tokens))
    if any(n > U64_MAX for n in counts):
        return None
    last_used = epoch_seconds(now) if isinstance(stored.last_used, msgspec.UnsetType) else stored.last_used
    # A binding we or Plano wrote holds at most MAX_ROUTE_HISTORY visits; a longer list (another writer
    # of a shared Redis) is cut to its last ones here, so nothing downstream works on it.
    history = stored.history[-MAX_ROUTE_HISTORY:]
    return SessionBinding(
        anchor_model=stored.anchor_model,
        last_used=last_used,
        default_model=stored.default_model,
        requested_model=stored.requested_model,
        route_name=stored.route_name,
        prefix_hash=stored.prefix_hash,
        cached_tokens=stored.cached_tokens,
        baseline_usd=stored.baseline_usd,
        switch_spend_usd=stored.switch_spend_usd,
        switches=stored.switches,
        history=history,
        session_cost_usd=stored.session_cost_usd,
    )


def epoch_seconds(now: float) -> int:
    """Whole seconds since the epoch, as the binding stores times (before the epoch: 0)."""
    return max(0, int(now)) if math.isfinite(now) else 0


def record_route_visit(
    history: tuple[RouteVisit, ...], model: str, last_used: int, cached_tokens: int
) -> tuple[RouteVisit, ...]:
    """`history` with `model`'s visit recorded (refreshed in place, else appended), then the
    least recently used entries (the first of equals) evicted down to `MAX_ROUTE_HISTORY`."""
    visit = RouteVisit(model, last_used, cached_tokens)
    entries = list(history)
    for i, entry in enumerate(entries):
        if entry.model == model:
            entries[i] = visit
            break
    else:
        entries.append(visit)
    excess = len(entries) - MAX_ROUTE_HISTORY
    if excess > 0:  # one sort, not one scan per evicted entry: the input may be a poisoned binding's
        evicted = set(sorted(range(len(entries)), key=lambda i: (entries[i].last_used, i))[:excess])
        entries = [entry for i, entry in enumerate(entries) if i not in evicted]
    return tuple(entries)
