"""Imports point one way: cli → server → gateway → translate/providers/upstream/state → apis/config.

Read from the source with `ast`, so an upward import fails here even when it
hides under `if TYPE_CHECKING:` or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "plano_trio"

LAYER = {
    "cli": 5,
    "__main__": 5,
    "server": 4,
    "tracing_cli": 4,
    "init_cli": 4,
    "gateway": 3,
    "translate": 2,
    "providers": 2,
    "upstream": 2,
    "state": 2,
    "retry": 2,
    "router": 2,
    "session": 2,
    "filters": 2,
    "metrics": 2,
    "telemetry": 2,
    "signals": 2,
    "ratelimit": 2,
    "auth": 2,
    "apis": 1,
    "config": 1,
    "sockio": 1,
    "logs": 0,
    "__init__": 0,
}
"""Higher layers may import lower ones, never the reverse."""

FORBIDDEN_SIDEWAYS = {
    ("translate", "providers"),
    ("translate", "upstream"),
    ("translate", "state"),
    ("retry", "upstream"),
    ("retry", "state"),
    ("retry", "translate"),
    ("router", "providers"),
    ("router", "upstream"),
    ("router", "state"),
    ("router", "translate"),
    ("router", "session"),
    ("router", "retry"),
    ("filters", "state"),
    ("filters", "router"),
    ("filters", "session"),
    ("filters", "retry"),
    ("filters", "providers"),
    ("metrics", "translate"),
    ("metrics", "providers"),
    ("metrics", "router"),
    ("metrics", "session"),
    ("metrics", "retry"),
    ("metrics", "filters"),
    ("telemetry", "translate"),
    ("telemetry", "providers"),
    ("telemetry", "upstream"),
    ("telemetry", "state"),
    ("telemetry", "router"),
    ("telemetry", "session"),
    ("telemetry", "retry"),
    ("telemetry", "filters"),
    ("telemetry", "metrics"),
}
"""Translation is pure: it knows wire formats, not where they are sent or stored."""


def _part(module: str) -> str | None:
    """`plano_trio.gateway.app` → `gateway`; None outside the package."""
    pieces = module.split(".")
    if pieces[0] != "plano_trio":
        return None
    return pieces[1] if len(pieces) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append((node.lineno, "."))  # relative: stays inside its own package
    return found


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    own = _part("plano_trio." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    assert own in LAYER, f"{path}: put this module in a layer in tests/test_layers.py"
    wrong = []
    for line, module in _imports(path):
        target = _part(module) if module != "." else own
        if target is None or target == own:
            continue
        if LAYER[target] > LAYER[own] or (own, target) in FORBIDDEN_SIDEWAYS:
            wrong.append(f"line {line}: {own} imports {module}")
    assert not wrong, f"{path.relative_to(PACKAGE)} imports upward or sideways:\n" + "\n".join(wrong)


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from plano_trio.gateway import app\n"
    )
    assert _imports(source) == [(1, "typing"), (3, "plano_trio.gateway")]
