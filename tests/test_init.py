"""`plano-trio init`: Plano's templates (plus ours), each accepted by `plano-trio validate`."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from planoai.init_cmd import BUILTIN_TEMPLATES

from plano_trio.cli import main
from plano_trio.config.templates import BY_ID, QUICKSTART, TEMPLATES
from plano_trio.init_cli import MAX_TEMPLATE_BYTES, run_init

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in KEYS:
        monkeypatch.setenv(name, "sk-test")
    yield


def _body(text: str) -> str:
    """A template without the attribution header it ships with."""
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("# "):
        lines.pop(0)
    return "".join(lines)


def test_the_templates_are_planoai_s_by_id_title_and_description() -> None:
    ours = [(t.id, t.title, t.description) for t in TEMPLATES if t.id != QUICKSTART]
    assert ours == [(t.id, t.title, t.description) for t in BUILTIN_TEMPLATES]


@pytest.mark.parametrize("template", BUILTIN_TEMPLATES, ids=lambda t: t.id)
def test_each_template_is_planoai_s_text_under_an_attribution(template: object) -> None:
    text = BY_ID[template.id].text()  # type: ignore[attr-defined]
    assert "Apache License 2.0" in text and "katanemo/plano" in text
    expected = template.yaml_text  # type: ignore[attr-defined]
    if template.id == "filter_chain_guardrails":  # type: ignore[attr-defined]
        # Plano's schema (and the demo the template is synced from) say input_filters
        expected = expected.replace("        filter_chain:\n", "        input_filters:\n")
    assert _body(text) == expected


def test_quickstart_is_the_example_config() -> None:
    assert BY_ID[QUICKSTART].text() == (ROOT / "config.example.yaml").read_text()


@pytest.mark.usefixtures("keys")
@pytest.mark.parametrize("template", [t.id for t in TEMPLATES])
def test_every_template_passes_validate(
    template: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "config.yaml"
    assert main(["init", "--template", template, "-o", str(out)]) == 0
    assert f"Wrote {out} ({template})" in capsys.readouterr().out
    assert main(["validate", str(out)]) == 0
    assert f"{out}: OK" in capsys.readouterr().out


def test_init_then_validate_as_processes_from_an_empty_directory(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "sk-test"}
    listed = subprocess.run(
        [sys.executable, "-m", "plano_trio", "init", "--list-templates"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [t.id for t in TEMPLATES]
    init = subprocess.run(
        [sys.executable, "-m", "plano_trio", "init", "--template", "preference_aware_routing"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert init.returncode == 0, init.stderr
    assert "set: ANTHROPIC_API_KEY" in init.stdout  # written, and the missing key is named
    assert (tmp_path / "config.yaml").is_file()
    validate = subprocess.run(
        [sys.executable, "-m", "plano_trio", "validate", "config.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env={**env, "ANTHROPIC_API_KEY": "k"},
    )
    assert validate.returncode == 0, validate.stderr


def _args(**given: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "template": None,
        "list_templates": False,
        "output": "config.yaml",
        "force": False,
    }
    values.update(given)
    return argparse.Namespace(**values)


@pytest.mark.usefixtures("keys")
def test_an_existing_file_is_kept_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "deep" / "dir" / "config.yaml"
    assert run_init(_args(template="coding_agent_routing", output=str(out))) == 0
    first = out.read_text()
    assert run_init(_args(template="preference_aware_routing", output=str(out))) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert out.read_text() == first
    assert run_init(_args(template="preference_aware_routing", output=str(out), force=True)) == 0
    assert out.read_text() != first


@pytest.mark.usefixtures("keys")
def test_a_template_file_of_your_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text((ROOT / "config.example.yaml").read_text())
    out = tmp_path / "out.yaml"
    assert run_init(_args(template=str(mine), output=str(out))) == 0
    assert out.read_text() == mine.read_text()

    broken = tmp_path / "broken.yaml"
    broken.write_text("version: v0.4.0\nlisteners: []\nmodel_providers:\n  - model: gpt-4o\n")
    target = tmp_path / "never.yaml"
    assert run_init(_args(template=str(broken), output=str(target))) == 1
    err = capsys.readouterr().err
    assert "is not a valid config" in err and f"{broken}:4: model_providers[0].model" in err
    assert not target.exists()  # nothing written

    assert run_init(_args(template="no-such-template", output=str(target))) == 1
    assert "neither a template id" in capsys.readouterr().err
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"#" * (MAX_TEMPLATE_BYTES + 1))
    assert run_init(_args(template=str(huge), output=str(target))) == 1
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    assert run_init(_args(template=str(binary), output=str(target))) == 1
    assert "not UTF-8" in capsys.readouterr().err
    assert not target.exists()


def test_without_a_template_and_no_terminal_it_says_how(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    assert run_init(_args(output=str(tmp_path / "c.yaml"))) == 1
    assert "--template ID" in capsys.readouterr().err


@pytest.mark.usefixtures("keys")
def test_at_a_terminal_it_asks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    existing = tmp_path / "config.yaml"
    existing.write_text("keep me")
    answers = iter(["9", "coding_agent_routing", str(existing), "n"])
    assert run_init(_args(output=str(existing)), ask=lambda _prompt: next(answers)) == 1  # declined
    assert existing.read_text() == "keep me"
    answers = iter(["3", "", "y"])
    assert run_init(_args(output=str(existing)), ask=lambda _prompt: next(answers)) == 0
    assert "coding_agent_routing" in existing.read_text()

    def interrupted(_prompt: str) -> str:
        raise KeyboardInterrupt

    assert run_init(_args(output=str(tmp_path / "other.yaml")), ask=interrupted) == 1
    assert not (tmp_path / "other.yaml").exists()
