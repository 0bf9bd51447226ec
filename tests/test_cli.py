"""The command line as a user runs it: real processes, real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from plano_trio import __version__
from tests.mock_provider import MockProvider
from tests.support import provider_config

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
LISTEN_RE = re.compile(r"listener 'llm' \(model\) on http://[\d.]+:(\d+)")


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "plano_trio", *args], cwd=cwd, capture_output=True, text=True, timeout=30
    )


class Server:
    """`plano-trio up` in a child process; stderr is collected by a thread."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [PY, "-m", "plano_trio", "up", *args],
            cwd=cwd,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self.port: int | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._ready.wait(20), "gateway did not start:\n" + "".join(self.lines)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            found = LISTEN_RE.search(line)
            if found:
                self.port = int(found.group(1))
                self._ready.set()
        self._ready.set()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)


@pytest.fixture
def config_file(tmp_path: Path, mock: MockProvider) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(provider_config(mock.url))
    return path


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"plano-trio {__version__}"


def test_validate_ok_and_bad(tmp_path: Path) -> None:
    assert run_cli("validate", "config.example.yaml").returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: v0.4.0\nlisteners:\n  - name: x\n    type: model\nmodel_providers:\n  - model: gpt-4o\n"
    )
    result = run_cli("validate", str(bad))
    assert result.returncode == 1
    assert f"{bad}:6: model_providers[0].model: Invalid model name gpt-4o" in result.stderr


def test_missing_env_var_names_variable_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "version: v0.4.0\nlisteners:\n  - name: x\n    type: model\n    port: 12000\n"
        "model_providers:\n  - model: openai/gpt-4o\n    access_key: $SURELY_UNSET_KEY_42\n"
    )
    result = run_cli("up", str(cfg))
    assert result.returncode == 1
    assert "SURELY_UNSET_KEY_42" in result.stderr
    assert "model_providers[0].access_key" in result.stderr


def test_up_serves_and_sigterm_drains_in_flight_stream(config_file: Path, tmp_path: Path) -> None:
    server = Server([str(config_file), "--log-format", "json"], tmp_path)
    body = json.dumps(
        {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    )
    request = urllib.request.Request(
        f"{server.base}/v1/chat/completions",
        data=body.encode(),
        headers={"content-type": "application/json", "x-mock-chunks": "10", "x-mock-delay-ms": "100"},
    )
    result: dict[str, bytes] = {}

    def stream() -> None:
        with urllib.request.urlopen(request, timeout=10) as response:
            result["body"] = response.read()

    client = threading.Thread(target=stream)
    client.start()
    time.sleep(0.4)  # the stream is in flight
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    with pytest.raises(OSError):  # no new connections once shutdown began
        urllib.request.urlopen(f"{server.base}/healthz", timeout=2)
    client.join(10)
    assert server.stop() == 0
    assert result["body"].rstrip().endswith(b"data: [DONE]")
    logs = [json.loads(line) for line in server.lines if line.startswith("{")]
    access = [entry for entry in logs if entry["logger"] == "plano_trio.access"]
    assert access and access[0]["status"] == 200 and access[0]["outcome"] == "ok"


def test_workers_share_the_listener_and_stop_together(config_file: Path, tmp_path: Path) -> None:
    server = Server([str(config_file), "--workers", "2", "--log-format", "json"], tmp_path)
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "reply with exactly: w"}]}
    )
    answers = []
    for _ in range(12):
        request = urllib.request.Request(
            f"{server.base}/v1/chat/completions",
            data=body.encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answers.append(json.loads(response.read())["choices"][0]["message"]["content"])
    assert server.stop() == 0
    assert answers == ["w"] * 12
    logs = [json.loads(line) for line in server.lines if line.startswith("{")]
    assert len({entry["pid"] for entry in logs if entry["msg"].startswith("worker ")}) == 2
    assert any(entry["msg"] == "all workers stopped" for entry in logs)


def test_workers_refuse_memory_state(tmp_path: Path) -> None:
    result = run_cli("up", "config.example.yaml", "--workers", "2")
    assert result.returncode == 1
    assert "postgres" in result.stderr
