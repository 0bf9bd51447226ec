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
from collections.abc import Iterable, Mapping

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

    def __init__(self, lines: Mapping[KeyPath, int] | None = None) -> None:
        self._lines: Mapping[KeyPath, int] = lines or {}
        self._problems: list[tuple[KeyPath, Problem]] = []
        self.warnings: list[str] = []
        self.unsupported: list[str] = []

    def line_of(self, path: KeyPath) -> int | None:
        for end in range(len(path), -1, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None

    def problem(self, path: KeyPath, message: str) -> None:
        problem = Problem(path=format_path(path), line=self.line_of(path), message=message)
        self._problems.append((path, problem))

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
