"""The shipped artifact: build the shiv zipapp and run one request through it from an empty directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.mock_provider import MockProvider
from tests.support import provider_config
from tests.test_cli import LISTEN_RE

ROOT = Path(__file__).resolve().parent.parent


def test_zipapp_builds_and_serves(tmp_path: Path, mock: MockProvider) -> None:
    artifact = tmp_path / "plano-trio.pyz"
    build = subprocess.run(
        [sys.executable, "-m", "tools.zipapp", str(artifact)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    workdir = tmp_path / "empty"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(provider_config(mock.url))
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "SHIV_ROOT": str(tmp_path / "shiv")}
    proc = subprocess.Popen(
        [sys.executable, str(artifact), "up", "--listener-port", "0"],
        cwd=workdir,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        port = None
        for line in proc.stderr:
            found = LISTEN_RE.search(line)
            if found:
                port = int(found.group(1))
                break
        assert port is not None, "zipapp did not start"
        body = json.dumps(
            {"model": "fast", "messages": [{"role": "user", "content": "reply with exactly: zip"}]}
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            data=body.encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as response:
            models = [entry["id"] for entry in json.loads(response.read())["data"]]
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
    assert answer["choices"][0]["message"]["content"] == "zip"
    assert "openai/gpt-4o" in models  # `openai/*` expanded: the model catalogue is in the zip
    check_init_templates(artifact, workdir, env)
    check_trace_viewer(artifact, workdir, env)


def check_init_templates(artifact: Path, workdir: Path, env: dict[str, str]) -> None:
    """The zipapp carries `init`'s templates (package data) and the example config."""
    for template in ("quickstart", "coding_agent_routing"):
        out = workdir / f"{template}.yaml"
        init = subprocess.run(
            [sys.executable, str(artifact), "init", "--template", template, "-o", str(out)],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert init.returncode == 0, init.stderr
        validate = subprocess.run(
            [sys.executable, str(artifact), "validate", str(out)],
            cwd=workdir,
            env={**env, "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert validate.returncode == 0, validate.stderr


def check_trace_viewer(artifact: Path, workdir: Path, env: dict[str, str]) -> None:
    """The zipapp carries its trace viewer: `trace listen` (grpcio from the zip) and `trace --json`."""
    listener = subprocess.Popen(
        [sys.executable, str(artifact), "trace", "listen", "--port", "0"],
        cwd=workdir,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stderr is not None
        port = None
        for line in listener.stderr:
            found = re.search(r"viewer queries on [\d.]+:(\d+)", line)
            if found:
                port = found.group(1)
                break
        assert port is not None, "trace listener did not start from the zipapp"
        view = subprocess.run(
            [sys.executable, str(artifact), "trace", "--json"],
            cwd=workdir,
            env={**env, "PLANO_TRACE_PORT": port},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        listener.terminate()
        assert listener.wait(timeout=20) == 0
    assert view.returncode == 0, view.stderr
    assert json.loads(view.stdout) == {"traces": []}
