"""Start, probe and stop every process of a bench run: mock providers, the floor, plano-trio, peers.

Layout on the 2-vCPU machine (``docs/measurements.md``, "Benchmark method"): each *server under test* is
pinned to CPU0 with ``taskset``; the mock providers (and the load generators, see ``runner``) share
CPU1.  Only one server is loaded at any moment (targets are interleaved, never run together), so the
idle ones cost nothing.

One mock process per *profile* (JSON, 20-chunk stream, paced 50-chunk stream), each with its behaviour
set by CLI defaults instead of ``x-mock-*`` headers: a peer such as LiteLLM does not forward arbitrary
client headers, and per-profile model names (``gpt-4o-mini``, ``gpt-4o-mini-stream20``, …) routed to
different mock ports work identically through every proxy.

Every server is a child of the bench, addressed by pid for ``/proc`` accounting, logged to a file under
the results directory, and stopped with SIGTERM (then SIGKILL) by its own pid only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from bench import loadgen

__all__ = [
    "EVERY_CPU",
    "PROFILES",
    "Proc",
    "Profile",
    "Target",
    "chat_body",
    "free_port",
    "gateway_config",
    "http_status",
    "spawn",
    "wait_http",
]

HOST = "127.0.0.1"
CHAT_PATH = "/v1/chat/completions"
LONG_DELAY_MS = 20.0  # 50 deltas per second: a fast chat model's token rate
_LISTENING = re.compile(r"listening on ((?:http|tcp)://\S+)")  # tcp: latency_relay


@dataclasses.dataclass(frozen=True, slots=True)
class Profile:
    """A kind of upstream behaviour, served by its own mock process and model name."""

    key: str
    model: str
    stream: bool
    chunks: int = 5
    delay_ms: float = 0.0
    chunk_bytes: int = 0
    # Also served as this Anthropic model by the same mock (the translated path: a proxy sends Messages).
    anthropic_model: str | None = None
    # Streamed once through every target by the start-up correctness gate.  False for profiles whose one
    # stream lasts seconds (the long-stream scenario warms those up itself, and only when it runs).
    probe: bool = True

    def mock_args(self) -> list[str]:
        return [
            "--chunks",
            str(self.chunks),
            "--delay-ms",
            f"{self.delay_ms:g}",
            "--chunk-bytes",
            str(self.chunk_bytes),
        ]


def default_profiles(
    paced_chunks: int = 50, paced_delay_ms: float = 20.0, long_chunks: int = 500
) -> dict[str, Profile]:
    """JSON answers (the mock's ~500-byte completion), 20 x ~180-byte deltas, paced token streams, and
    long token streams (``long_chunks`` ~30-byte deltas at 50 per second: what a chat model streams)."""
    return {
        "json": Profile("json", "gpt-4o-mini", stream=False),
        "stream20": Profile(
            "stream20",
            "gpt-4o-mini-stream20",
            stream=True,
            chunks=20,
            chunk_bytes=180,
            anthropic_model="claude-sonnet-4-6",
        ),
        "paced": Profile(
            "paced",
            "gpt-4o-mini-paced",
            stream=True,
            chunks=paced_chunks,
            delay_ms=paced_delay_ms,
            chunk_bytes=180,
        ),
        "long": Profile(
            "long",
            "gpt-4o-mini-long",
            stream=True,
            chunks=long_chunks,
            delay_ms=LONG_DELAY_MS,
            chunk_bytes=30,
            anthropic_model="claude-sonnet-4-6-long",
            probe=False,
        ),
    }


PROFILES = default_profiles()


def chat_body(model: str, stream: bool) -> bytes:
    """The one request every target gets: a short user turn (what an SDK sends, minus the noise)."""
    stream_part = ',"stream":true' if stream else ""
    return (
        f'{{"model":"{model}","messages":[{{"role":"user","content":"Say hello."}}]{stream_part}}}'.encode()
    )


def free_port() -> int:
    """A currently free loopback port, for servers that need one in their config file."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


EVERY_CPU = -1
"""``spawn(cpu=EVERY_CPU)``: unpinned for real.  ``cpu=None`` inherits the bench process's affinity, and
the runner pins itself to the client CPU, so a child started with None shares only that one."""


def taskset_prefix(cpu: int | None) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return []
    if cpu == EVERY_CPU:
        return ["taskset", "-c", f"0-{(os.cpu_count() or 1) - 1}"]
    return ["taskset", "-c", str(cpu)]


@dataclasses.dataclass(eq=False)
class Proc:
    """A spawned server process: pid for /proc, log file, time from spawn to ready."""

    name: str
    popen: subprocess.Popen[bytes]
    url: str
    log_path: Path
    ready_s: float = float("nan")
    cpu: int | None = None
    log_file: IO[bytes] | None = None
    spawned_at: float = 0.0  # perf_counter() just before Popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 8.0) -> None:
        """SIGTERM this process group (the bench started it as a group leader), then SIGKILL."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


def _drain(stream: IO[bytes], sink: IO[bytes]) -> None:
    with contextlib.suppress(ValueError, OSError):
        for line in iter(stream.readline, b""):
            sink.write(line)
            sink.flush()


def spawn(
    name: str,
    cmd: Sequence[str],
    log_dir: Path,
    *,
    cpu: int | None = None,
    env: dict[str, str] | None = None,
    url: str | None = None,
    ready_path: str | None = "/healthz",
    timeout: float = 30.0,
    cwd: Path | None = None,
) -> Proc:
    """Start ``cmd`` in its own process group, pinned to ``cpu``; wait until it serves.

    Without ``url`` the process must print ``listening on http://…`` (mock, floor) or ``tcp://…`` (the
    latency relay, with ``ready_path=None``) on stdout, which also tells us the port it bound (port 0).
    With ``ready_path`` we then poll it until HTTP 200.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the drain thread / the child for its lifetime
    t0 = time.perf_counter()
    popen = subprocess.Popen(
        [*taskset_prefix(cpu), *cmd],
        stdout=subprocess.PIPE if url is None else log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )
    proc = Proc(name, popen, url or "", log_path, cpu=cpu, log_file=log, spawned_at=t0)
    try:
        if url is None:
            assert popen.stdout is not None
            proc.url = _read_listening(popen, popen.stdout, log, timeout)
            threading.Thread(target=_drain, args=(popen.stdout, log), daemon=True).start()
        if ready_path is not None:
            wait_http(proc, ready_path, timeout - (time.perf_counter() - t0))
    except BaseException:
        proc.stop(2)
        raise
    proc.ready_s = time.perf_counter() - t0
    return proc


def _read_listening(popen: subprocess.Popen[bytes], stdout: IO[bytes], log: IO[bytes], timeout: float) -> str:
    found: list[str] = []

    def reader() -> None:
        for raw in iter(stdout.readline, b""):
            log.write(raw)
            log.flush()
            match = _LISTENING.search(raw.decode(errors="replace"))
            if match:
                found.append(match.group(1))
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout)
    if not found:
        raise RuntimeError(f"{popen.args!r} did not report its address within {timeout:g}s")
    return found[0]


def http_status(port: int, path: str, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    """One blocking request (readiness probes, warm-up checks); raises OSError if nothing listens."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = {"content-type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_http(proc: Proc, path: str, timeout: float, interval: float = 0.005) -> float:
    """Poll ``GET path`` until 200; returns seconds waited.  Fails fast if the process died."""
    t0 = time.perf_counter()
    deadline = t0 + max(0.1, timeout)
    while True:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited (code {proc.popen.returncode}):\n{proc.log_tail()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if http_status(proc.port, path)[0] == 200:
                return time.perf_counter() - t0
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{proc.name} not ready on {path} after {timeout:g}s:\n{proc.log_tail()}")
        time.sleep(interval)


@dataclasses.dataclass(eq=False)
class Target:
    """Something a client talks to.  ``direct`` has one endpoint per profile (each mock); a proxy has one.

    ``server(profile)`` is the process whose CPU and memory count as *this target's* cost.
    """

    name: str
    procs: dict[str, Proc]  # profile key -> serving process ("*" for all profiles)
    models: dict[str, str] = dataclasses.field(default_factory=dict)  # profile key -> model to send
    api_key: str = "bench-key"  # sent as ``Authorization: Bearer`` (LiteLLM insists on a master key)
    proxies: bool = True  # False for the floor: no upstream, so no mock CPU belongs to its requests
    serves: frozenset[str] | None = None  # profile keys it can answer (None: all)
    mock_headers: bool = False  # send the profile as x-mock-* headers (the floor has no per-model mocks)
    # profile key -> headers that route the request to that profile's mock (Portkey takes its upstream
    # from headers, not from a config file); sent by the timing client and by wrk alike
    profile_headers: dict[str, tuple[tuple[str, str], ...]] = dataclasses.field(default_factory=dict)

    def supports(self, profile: str) -> bool:
        return self.serves is None or profile in self.serves

    def _mock_headers(self, profile: Profile) -> tuple[tuple[str, str], ...]:
        if not self.mock_headers or not profile.stream:
            return ()
        return (
            ("x-mock-chunks", str(profile.chunks)),
            ("x-mock-delay-ms", f"{profile.delay_ms:g}"),
            ("x-mock-chunk-bytes", str(profile.chunk_bytes)),
        )

    def server(self, profile: str) -> Proc:
        return self.procs.get(profile) or self.procs["*"]

    @property
    def main(self) -> Proc:
        """The process reported for memory/startup (the proxy; for direct, the JSON mock)."""
        return self.procs.get("*") or next(iter(self.procs.values()))

    def request(
        self,
        profile: Profile,
        *,
        path: str = CHAT_PATH,
        body: bytes | None = None,
        headers: Sequence[tuple[str, str]] | None = None,
    ) -> loadgen.Request:
        """``profile``'s request to this target; ``headers`` replace the per-profile routing headers
        (e.g. Portkey told to speak Anthropic to the mock instead of OpenAI)."""
        model = self.models.get(profile.key, profile.model)
        routing = tuple(headers) if headers is not None else self.profile_headers.get(profile.key, ())
        return loadgen.Request(
            HOST,
            self.server(profile.key).port,
            path,
            body if body is not None else chat_body(model, profile.stream),
            profile.stream,
            profile.chunks if profile.stream else None,
            headers=(("Authorization", f"Bearer {self.api_key}"), *routing, *self._mock_headers(profile)),
        )


def gateway_config(port: int, mocks: dict[str, Proc], profiles: dict[str, Profile], extra: str = "") -> str:
    """Plano YAML routing every profile's model to its mock, plus its Anthropic models (translation)."""
    lines = [
        "version: v0.4.0",
        "listeners:",
        f"  - {{name: llm, type: model, address: {HOST}, port: {port}, timeout: 60s}}",
        "model_providers:",
    ]
    providers = [(f"openai/{p.model}", mocks[k].url, k == "json") for k, p in profiles.items()]
    providers += [
        (f"anthropic/{p.anthropic_model}", mocks[k].url, False)
        for k, p in profiles.items()
        if p.anthropic_model
    ]
    for model, url, default in providers:
        flag = ", default: true" if default else ""
        lines.append(f'  - {{model: {model}, access_key: bench-key, base_url: "{url}"{flag}}}')
    return "\n".join(lines) + "\n" + extra


def python() -> str:
    return sys.executable
