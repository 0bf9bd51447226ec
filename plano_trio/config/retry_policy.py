"""`model_providers[].retry_policy` (already shape-checked) -> `RetryPolicy`, with the checks that
span several keys.

The shape pass (`keyspec.RETRY_POLICY`) has already enforced types, enums,
minimums, required and unknown keys.  What is left needs more than one value
or a parse: `"502-504"` ranges, `max_ms > base_ms` against the defaults,
`trigger_window_seconds` when `min_triggers > 1`, fallback names, and the
combinations that are legal but probably not what the author meant.  The
split between errors and warnings is the one Plano's proposed retry design
makes, so a file that starts there starts here, and a file it refuses is
refused here; every finding names the key and line of the value at fault.

Pure: a checked mapping in, a frozen policy and report entries out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import KeyPath, Report
from .retry import Backoff, HighLatencyRule, RetryAfterHandling, RetryPolicy, StatusRule, TimeoutRule
from .shape import valid_items

STATUS_MIN, STATUS_MAX = 100, 599
AGGRESSIVE_THRESHOLD_MS = 1000
"""Below this, ordinary slow answers (long prompts, big models) would trip `on_high_latency`."""

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


class StatusRangeError(ValueError):
    """A `codes` string that is not a usable `"start-end"` range; the message says why."""


def parse_status_range(text: str) -> range:
    """`"502-504"` -> `range(502, 505)`; raises `StatusRangeError` for anything else.

    A lone code written as a string (`"429"`) is refused as Plano's design
    refuses it: codes are integers, strings are ranges.
    """
    match = _RANGE.match(text)
    if match is None:
        raise StatusRangeError(f"invalid status code range {text!r}: expected 'start-end', e.g. '502-504'")
    start, end = int(match.group(1)), int(match.group(2))
    if start > end:
        raise StatusRangeError(f"status code range {text!r} is inverted: start must not exceed end")
    if start < STATUS_MIN or end > STATUS_MAX:
        raise StatusRangeError(f"status code range {text!r} goes outside {STATUS_MIN}-{STATUS_MAX}")
    return range(start, end + 1)


def build_retry_policy(raw: Mapping[str, Any], path: KeyPath, report: Report) -> RetryPolicy:
    """The typed policy for one provider; problems and warnings go to `report` under `path`.

    Parts that failed a check are left at their defaults: the load fails
    anyway, and the rest of the file still gets checked.
    """
    default_strategy = raw.get("default_strategy", "different_provider")
    timeout = raw.get("on_timeout")
    latency = raw.get("on_high_latency")
    backoff = raw.get("backoff")
    retry_after = raw.get("retry_after_handling", {})
    duration = raw.get("max_retry_duration_ms")
    if duration == 0:
        report.problem((*path, "max_retry_duration_ms"), "must be greater than 0 (leave it out for no bound)")
    if retry_after.get("scope") == "provider" and default_strategy == "same_model":
        report.warn(
            (*path, "retry_after_handling", "scope"),
            "a Retry-After blocks the whole provider, but default_strategy same_model retries that "
            "blocked model, so those retries wait or fail; same_provider or different_provider avoids it",
        )
    if latency is not None:
        latency = _high_latency(latency, (*path, "on_high_latency"), report)
    if backoff is not None:
        backoff = _backoff(backoff, default_strategy, (*path, "backoff"), report)
    return RetryPolicy(
        fallback_models=_fallback_models(raw.get("fallback_models", []), (*path, "fallback_models"), report),
        default_strategy=default_strategy,
        default_max_attempts=raw.get("default_max_attempts", 2),
        on_status_codes=_status_rules(raw.get("on_status_codes", []), (*path, "on_status_codes"), report),
        on_timeout=None if timeout is None else TimeoutRule(**timeout),
        on_high_latency=latency,
        backoff=backoff,
        retry_after_handling=RetryAfterHandling(**retry_after),
        max_retry_duration_ms=duration or None,
    )


def _fallback_models(raw: Sequence[Any], path: KeyPath, report: Report) -> tuple[str, ...]:
    out: list[str] = []
    for index, model in valid_items(raw):
        if "/" not in model:
            report.problem(
                (*path, index),
                f"fallback model {model!r} must be a full model name, <provider>/<model> "
                "(e.g. 'anthropic/claude-3-5-sonnet')",
            )
        else:
            out.append(model)
    return tuple(out)


def _status_rules(raw: Sequence[Any], path: KeyPath, report: Report) -> tuple[StatusRule, ...]:
    """Expand each entry's codes; a code already claimed by an earlier entry is only a warning,
    because the first entry that lists a status is the one applied."""
    rules: list[StatusRule] = []
    claimed: set[int] = set()
    for index, entry in valid_items(raw):
        here = (*path, index)
        codes = _codes(entry["codes"], (*here, "codes"), report)
        if not entry["codes"]:
            report.warn((*here, "codes"), "lists no status codes, so this entry never applies")
        shadowed = sorted(codes & claimed)
        if shadowed:
            report.warn(
                (*here, "codes"),
                f"status {', '.join(map(str, shadowed))} already listed by an earlier on_status_codes "
                "entry, which is the one applied",
            )
        claimed |= codes
        rules.append(StatusRule(codes=codes, strategy=entry["strategy"], max_attempts=entry["max_attempts"]))
    return tuple(rules)


def _codes(raw: Sequence[Any], path: KeyPath, report: Report) -> frozenset[int]:
    codes: set[int] = set()
    for index, entry in valid_items(raw):
        if isinstance(entry, int):  # the shape check has bounded it to 100-599
            codes.add(entry)
            continue
        try:
            codes.update(parse_status_range(entry))
        except StatusRangeError as error:
            report.problem((*path, index), str(error))
    return frozenset(codes)


def _high_latency(raw: Mapping[str, Any], path: KeyPath, report: Report) -> HighLatencyRule:
    rule = HighLatencyRule(**raw)
    if rule.min_triggers > 1 and rule.trigger_window_seconds is None:
        report.problem(
            (*path, "min_triggers"),
            f"min_triggers {rule.min_triggers} needs trigger_window_seconds (the window the triggers are "
            "counted in)",
        )
    if rule.scope == "provider" and rule.strategy == "same_model":
        report.warn(
            (*path, "scope"),
            "high latency blocks the whole provider, but strategy same_model retries that blocked model; "
            "same_provider or different_provider avoids it",
        )
    if rule.threshold_ms < AGGRESSIVE_THRESHOLD_MS:
        report.warn(
            (*path, "threshold_ms"),
            f"threshold_ms {rule.threshold_ms} is under {AGGRESSIVE_THRESHOLD_MS} ms; ordinary slow answers "
            "may trigger failover and blocks",
        )
    return rule


def _backoff(raw: Mapping[str, Any], default_strategy: str, path: KeyPath, report: Report) -> Backoff:
    backoff = Backoff(**raw)
    if backoff.max_ms <= backoff.base_ms:
        where = "max_ms" if "max_ms" in raw else "base_ms"
        report.problem(
            (*path, where),
            f"max_ms ({backoff.max_ms}) must be greater than base_ms ({backoff.base_ms})"
            + ("" if "max_ms" in raw else "; max_ms defaults to 5000"),
        )
    never = {("same_model", "different_provider"), ("same_provider", "same_model")}
    if (backoff.apply_to, default_strategy) in never:
        report.warn(
            (*path, "apply_to"),
            f"apply_to {backoff.apply_to} never delays a retry made by default_strategy {default_strategy}; "
            "only rules whose strategy matches get a backoff",
        )
    return backoff


def check_fallback_references(
    policies: Sequence[tuple[KeyPath, RetryPolicy]],
    declares: Callable[[str], bool],
    declared_count: int,
    report: Report,
) -> None:
    """Checks that need every provider: fallback names, and failover with nothing to fail over to.

    An unknown fallback is a warning, not an error, as in Plano's proposed
    design: the planner skips a name no provider serves and goes on with the
    next candidate.  `declares(name)` says whether a request for `name` would
    find a provider.
    """
    for path, policy in policies:
        # After a problem in the list, indexes into the kept names no longer match the file.
        shifted = report.has_problems_under((*path, "fallback_models"))
        for index, model in enumerate(policy.fallback_models):
            if not shifted and not declares(model):
                report.warn(
                    (*path, "fallback_models", index),
                    f"fallback model {model!r} is not served by any model_provider; it will be skipped",
                )
        if declared_count == 1 and policy.default_strategy != "same_model":
            report.warn(
                (*path, "default_strategy"),
                f"{policy.default_strategy} fails over to other models, but this is the only model_provider",
            )
