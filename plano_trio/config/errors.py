"""Problems found in a config file, and the collector that gathers them.

A config is checked in one pass that keeps going after the first mistake: a
user who fixes one typo and restarts only to hit the next one is wasting time.
So every check reports into a `Report` instead of raising, and the loader
raises one `ConfigError` listing everything at the end.

Every problem names a key path (`model_providers[2].access_key`) and, where
the YAML parser told us, the 1-based line of that key in the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

KeyPath = tuple[str | int, ...]
"""A location in the YAML tree: mapping keys (str) and list indexes (int)."""

_BARE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(path: KeyPath) -> str:
    """Render a key path the way a user would write it: `a.b[0].c`.

    Keys that are not plain identifiers (model alias names such as
    `arch.summarize.v1`) are quoted in brackets so the path stays unambiguous.
    """
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _BARE_KEY.match(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{part!r}]")
    return "".join(out)


def describe(value: Any) -> str:
    """How a value reads in an error message: `string 'abc'`, `integer 5`, `a list`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean " + ("true" if value else "false")
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


@dataclass(frozen=True, slots=True)
class Substitution:
    """One `$VAR` replaced in a scalar: its value may be a secret, so messages name `$VAR` instead."""

    name: str
    value: str
    whole: bool
    """The scalar was exactly this reference (`port: $PORT`), not text around it."""


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """One reason the config cannot be used."""

    path: str
    """Key path such as `model_providers[0].model`; empty for file-level problems."""
    line: int | None
    """1-based line in the file, when known."""
    message: str

    def format(self, source: str) -> str:
        location = source if self.line is None else f"{source}:{self.line}"
        if self.path:
            return f"{location}: {self.path}: {self.message}"
        return f"{location}: {self.message}"


class ConfigError(Exception):
    """The config file cannot be used; `problems` lists every reason found."""

    def __init__(self, problems: Iterable[Problem], source: str = "<string>") -> None:
        self.problems: list[Problem] = list(problems)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(p.format(self.source) for p in self.problems)


class Report:
    """Collects problems, warnings and unsupported key paths while checking.

    It owns the path -> line map from the YAML source so that checks only
    need to name a key path; the line is looked up here.  A path that has no
    line of its own (a required key that is missing) falls back to the
    nearest enclosing key that has one.
    """

    def __init__(
        self,
        lines: Mapping[KeyPath, int] | None = None,
        substituted: Mapping[KeyPath, Sequence[Substitution]] | None = None,
    ) -> None:
        self._lines: Mapping[KeyPath, int] = lines or {}
        self._substituted: Mapping[KeyPath, Sequence[Substitution]] = substituted or {}
        self._problems: list[tuple[KeyPath, Problem]] = []
        self.warnings: list[str] = []
        self.unsupported: list[str] = []

    def line_of(self, path: KeyPath) -> int | None:
        for end in range(len(path), -1, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None

    def shown(self, path: KeyPath, value: object) -> str:
        """How the value at `path` reads in a message: `describe(value)`, unless it came from `$VAR`s.

        A substituted value is often a secret (`port: $DB_PASSWORD` by
        mistake), so it is named by its variables, never printed.
        """
        used = self._substituted.get(path)
        if not used:
            return describe(value)
        if len(used) == 1 and used[0].whole:
            return f"the value of ${used[0].name}"
        names = ", ".join(dict.fromkeys(f"${sub.name}" for sub in used))
        return f"a string made with {names}"

    def problem(self, path: KeyPath, message: str) -> None:
        message = self._hide_substituted(path, message)
        problem = Problem(path=format_path(path), line=self.line_of(path), message=message)
        self._problems.append((path, problem))

    def _hide_substituted(self, path: KeyPath, message: str) -> str:
        """Replace any `$VAR` value at, above or below `path` that a check echoed into `message`.

        Checks that use `shown()` already name the variable; this catches the
        ones that quote a value themselves (`invalid duration '...'`).
        """
        for where, used in self._substituted.items():
            if where[: len(path)] != path and path[: len(where)] != where:
                continue
            for sub in sorted(used, key=lambda sub: len(sub.value), reverse=True):
                if sub.value and f"${sub.name}" not in message:
                    message = message.replace(sub.value, f"${sub.name}")
        return message

    def add(self, problem: Problem) -> None:
        """Take a problem found before the key paths existed (YAML syntax and structure)."""
        self._problems.append(((), problem))

    def warn(self, path: KeyPath, message: str) -> None:
        where = format_path(path)
        line = self.line_of(path)
        prefix = f"line {line}: " if line is not None else ""
        self.warnings.append(f"{prefix}{where}: {message}" if where else f"{prefix}{message}")

    def mark_unsupported(self, path: KeyPath) -> None:
        self.unsupported.append(format_path(path))

    def is_unsupported(self, path: KeyPath) -> bool:
        """True when `path` is at or below a key that plano-trio ignores."""
        rendered = format_path(path)
        return any(
            rendered == u or rendered.startswith(u + ".") or rendered.startswith(u + "[")
            for u in self.unsupported
        )

    def has_problems_under(self, prefix: KeyPath) -> bool:
        """Whether a section already failed, so cross-checks on it would only add noise."""
        return any(path[: len(prefix)] == prefix for path, _ in self._problems)

    @property
    def problems(self) -> list[Problem]:
        """Problems in file order (by line; file-level ones without a line first)."""
        return sorted((p for _, p in self._problems), key=lambda p: p.line if p.line is not None else 0)
