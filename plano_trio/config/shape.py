"""A tiny declarative checker for the *shape* of the config tree.

Plano validates its file against a JSON schema (`config/plano_config_schema.yaml`,
`additionalProperties: false` almost everywhere).  We describe the same key set
with the combinators below, which check types, enums, ranges, required and
unknown keys, and report every finding with its key path.  They also return a
*cleaned* copy of the value: entries with the wrong type are dropped (a problem
has already been reported), so the normalization that follows can trust the
types it reads instead of re-checking everything.

Lists keep their length — a broken item becomes `INVALID` — so that item
indexes in later messages still match the file.

Keys marked `unsupported` are valid Plano that plano-trio accepts but does not
act on yet; their paths are recorded in the report (the CLI logs them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .errors import KeyPath, Report


class _Invalid:
    """Marker for a value that failed its check (kept so list indexes stay stable)."""

    _instance: _Invalid | None = None

    def __new__(cls) -> _Invalid:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()


def valid_items(items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
    """(index, item) for every list item that passed its check."""
    for index, item in enumerate(items):
        if item is not INVALID:
            yield index, item


class Spec:
    """Base class: `check` reports problems and returns the cleaned value or INVALID."""

    expected: str = "a value"

    def check(self, value: Any, path: KeyPath, report: Report) -> Any:
        raise NotImplementedError

    def _type_error(self, value: Any, path: KeyPath, report: Report) -> _Invalid:
        report.problem(path, f"expected {self.expected}, got {report.shown(path, value)}")
        return INVALID


class Str(Spec):
    expected = "a string"

    def check(self, value: Any, path: KeyPath, report: Report) -> Any:
        return value if isinstance(value, str) else self._type_error(value, path, report)


class Bool(Spec):
    expected = "true or false"

    def check(self, value: Any, path: KeyPath, report: Report) -> Any:
        return value if isinstance(value, bool) else self._type_error(value, path, report)


@dataclass
class Int(Spec):
    minimum: int | None = None
    maximum: int | None = None
    expected = "an integer"

    def check(self, value: Any, path: KeyPath, report: Report) -> Any:
        # bool is an int subclass in Python; `port: true` is still a mistake.
        if not isinstance(value, int) or isinstance(value, bool):
            return self._type_error(value, path, report)
        return _in_range(value, self.minimum, self.maximum, path, report)


@dataclass
class Num(Spec):
    minimum: float | None = None
    maximum: float | None = None
    expected = "a number"

    def check(self, value: Any, path: KeyPath, report: Report) -> Any:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return self._type_error(value, path, report)
        return _in_range(value, self.minimum, self.maximum, path, report)


def _in_range(
    value: float, minimum: float | None, maximum: float | None, path: KeyPath, report: Report
) -> Any:
    if minimum is not None and value < minimum:
        report.problem(path, f"must be at least {minimum}, got {value}")
        return INVALID
    if maximum is not None and value > maximum:
        report.problem(path, f"must be at most {maximum}, got {value}")
        return INVALID
    return value


class Enum(Spec):
    def __init__(self, *choices: str) -> None:
        self.choices = choices
        self.expected = "one of " + ", ".join(choices)

    def check(self, value: Any, path: KeyPath, report: Report) -> Any:
        if isinstance(value, str) and value in self.choices:
            return value
        report.problem(path, f"expected {self.expected}; got {report.shown(path, value)}")
        return INVALID


class Scalar(Spec):
    """A string, integer or boolean (Plano's `anyOf` for parameter defaults)."""

    expected = "a string, integer or boolean"

    def check(self, value: Any, path: KeyPath, report: Report) -> Any:
        if isinstance(value, str | int):  # bool is an int, and allowed here
            return value
        return self._type_error(value, path, report)


@dataclass
class ListOf(Spec):
    item: Spec
    min_items: int = 0
    expected = "a list"

    def check(self, value: Any, path: KeyPath, report: Report) -> Any:
        if not isinstance(value, list):
            return self._type_error(value, path, report)
        if len(value) < self.min_items:
            report.problem(path, f"must have at least {self.min_items} item(s)")
            return INVALID
        return [self.item.check(item, (*path, index), report) for index, item in enumerate(value)]


@dataclass
class MapOf(Spec):
    """A mapping with free-form keys (model aliases, headers, endpoints)."""

    value: Spec
    key_pattern: re.Pattern[str] | None = None
    key_hint: str = ""
    expected = "a mapping"

    def check(self, value: Any, path: KeyPath, report: Report) -> Any:
        if not isinstance(value, dict):
            return self._type_error(value, path, report)
        out: dict[str, Any] = {}
        for key, item in value.items():
            if self.key_pattern is not None and not self.key_pattern.match(key):
                report.problem((*path, key), f"invalid key {key!r}{self.key_hint}")
                continue
            checked = self.value.check(item, (*path, key), report)
            if checked is not INVALID:
                out[key] = checked
        return out


@dataclass
class Field:
    spec: Spec
    required: bool = False
    unsupported: bool = False
    """Valid Plano, but plano-trio does not act on it yet (reported, not rejected)."""


@dataclass
class Obj(Spec):
    """A mapping with a fixed key set; any other key is an error (Plano's
    `additionalProperties: false`)."""

    fields: dict[str, Field] = field(default_factory=dict)
    keep_partial: bool = False
    """Return what is valid even when required keys are missing (the top level:
    one missing `version` should not hide every other problem in the file)."""
    expected = "a mapping"

    def check(self, value: Any, path: KeyPath, report: Report) -> Any:
        if not isinstance(value, dict):
            return self._type_error(value, path, report)
        out: dict[str, Any] = {}
        broken = False
        for key, item in value.items():
            spec = self.fields.get(key)
            if spec is None:
                report.problem((*path, key), f"Unknown key {key!r}")
                continue
            if spec.unsupported:
                report.mark_unsupported((*path, key))
            checked = spec.spec.check(item, (*path, key), report)
            if checked is INVALID:
                broken = broken or spec.required
            else:
                out[key] = checked
        for key, spec in self.fields.items():
            if spec.required and key not in value:
                report.problem((*path, key), f"missing required key {key!r}")
                broken = True
        # Without its required keys the object means nothing; drop it whole.
        return INVALID if broken and not self.keep_partial else out


@dataclass
class Tagged(Spec):
    """One of several object shapes, chosen by the value of a tag key."""

    tag: str
    variants: dict[str, Obj]
    expected = "a mapping"

    def check(self, value: Any, path: KeyPath, report: Report) -> Any:
        if not isinstance(value, dict):
            return self._type_error(value, path, report)
        kind = value.get(self.tag)
        variant = self.variants.get(kind) if isinstance(kind, str) else None
        if variant is None:
            if self.tag not in value:
                report.problem((*path, self.tag), f"missing required key {self.tag!r}")
            else:
                choices = ", ".join(self.variants)
                report.problem(
                    (*path, self.tag),
                    f"expected one of {choices}; got {report.shown((*path, self.tag), kind)}",
                )
            return INVALID
        return variant.check(value, path, report)


@dataclass
class ListOrMap(Spec):
    """Either a list form or a (legacy) mapping form, chosen by the value's type."""

    as_list: Spec
    as_map: Spec
    expected = "a list or a mapping"

    def check(self, value: Any, path: KeyPath, report: Report) -> Any:
        if isinstance(value, list):
            return self.as_list.check(value, path, report)
        if isinstance(value, dict):
            return self.as_map.check(value, path, report)
        return self._type_error(value, path, report)


@dataclass
class ByType(Spec):
    """One of several specs, chosen by the value's Python type (JSON schema `anyOf` over types).

    The type must match exactly, so a YAML `true` is not taken for the integer 1.
    """

    choices: dict[type, Spec]
    expected: str = "a value"

    def check(self, value: Any, path: KeyPath, report: Report) -> Any:
        spec = self.choices.get(type(value))
        return self._type_error(value, path, report) if spec is None else spec.check(value, path, report)
