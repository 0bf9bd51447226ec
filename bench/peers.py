"""Peer gateways measured in the same run: LiteLLM's proxy, installed into its own virtualenv.

Why a separate venv (``bench/.peers/litellm``, git-ignored): LiteLLM pulls in a large dependency tree
(FastAPI, uvicorn, openai, pydantic, …) that must not leak into, or pin, plano-trio's environment.  The
install runs once (``pip install 'litellm[proxy]'``) and is reused afterwards.

The peer runs with one worker (``--num_workers 1``), is pointed at the same mock processes as every
other target via ``api_base``, and gets ``LITELLM_LOCAL_MODEL_COST_MAP=True`` so it never tries to
fetch its price list from the internet at start (without it, start-up waits on DNS retries).
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

from bench.targets import HOST, Proc, Profile, free_port, spawn

__all__ = ["LITELLM_DIR", "ensure_litellm", "litellm_config", "litellm_version", "start_litellm"]

BENCH_DIR = Path(__file__).resolve().parent
LITELLM_DIR = BENCH_DIR / ".peers" / "litellm"
LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOG": "ERROR",
    "LITELLM_TELEMETRY": "False",
    "DISABLE_SCHEMA_UPDATE": "True",
    "NO_DOCS": "True",
}


def _bin(name: str) -> Path:
    return LITELLM_DIR / "bin" / name


def ensure_litellm(log: Path | None = None) -> Path:
    """The ``litellm`` executable, installing ``litellm[proxy]`` into its own venv on first use."""
    exe = _bin("litellm")
    if exe.exists():
        return exe
    print(f"[bench] installing litellm[proxy] into {LITELLM_DIR} (first use; may take minutes)", flush=True)
    LITELLM_DIR.parent.mkdir(parents=True, exist_ok=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(LITELLM_DIR)
    cmd = [str(_bin("python")), "-m", "pip", "install", "-q", "litellm[proxy]"]
    with open(log or LITELLM_DIR.parent / "litellm-install.log", "ab") as sink:
        proc = subprocess.run(cmd, stdout=sink, stderr=sink, timeout=1800, check=False)
    if proc.returncode != 0 or not exe.exists():
        raise RuntimeError(f"installing litellm failed (exit {proc.returncode}); see the install log")
    return exe


def litellm_version() -> str:
    proc = subprocess.run(
        [str(_bin("python")), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.stdout.strip() or "?"


def litellm_config(mocks: dict[str, Proc], profiles: dict[str, Profile], master_key: str) -> str:
    """``model_list`` mapping each profile's model name to ``openai/<model>`` on its mock, and its
    Anthropic model (if any) to ``anthropic/<model>`` on the same mock.

    LiteLLM refuses to start without a master key (and then checks it on every request, a cost real
    deployments pay too), so each run generates one and the bench client sends it.
    """
    lines = ["model_list:"]
    for key, profile in profiles.items():
        lines += [
            f"  - model_name: {profile.model}",
            "    litellm_params:",
            f"      model: openai/{profile.model}",
            f"      api_base: {mocks[key].url}/v1",
            "      api_key: bench-key",
        ]
        if profile.anthropic_model:  # the translated path: LiteLLM posts Messages to <api_base>/v1/messages
            lines += [
                f"  - model_name: {profile.anthropic_model}",
                "    litellm_params:",
                f"      model: anthropic/{profile.anthropic_model}",
                f"      api_base: {mocks[key].url}",
                "      api_key: bench-key",
            ]
    lines += [
        "litellm_settings:",
        "  drop_params: true",
        "  telemetry: false",
        "  set_verbose: false",
        "general_settings:",
        f"  master_key: {master_key}",
        "  disable_spend_logs: true",
    ]
    return "\n".join(lines) + "\n"


def start_litellm(
    mocks: dict[str, Proc], profiles: dict[str, Profile], work_dir: Path, cpu: int | None, master_key: str
) -> Proc:
    exe = ensure_litellm(work_dir / "litellm-install.log")
    config = work_dir / "litellm.yaml"
    config.write_text(litellm_config(mocks, profiles, master_key))
    port = free_port()
    cmd = [str(exe), "--config", str(config), "--host", HOST, "--port", str(port), "--num_workers", "1"]
    return spawn(
        "litellm",
        cmd,
        work_dir,
        cpu=cpu,
        env=LITELLM_ENV,
        url=f"http://{HOST}:{port}",
        ready_path="/health/liveliness",
        timeout=180,
    )


if __name__ == "__main__":  # pragma: no cover - manual: python -m bench.peers
    print(ensure_litellm(), litellm_version(), file=sys.stdout)
