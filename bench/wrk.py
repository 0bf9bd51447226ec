"""Throughput with ``wrk`` (Debian package): a generated Lua POST script and machine-readable output.

wrk is a C event loop that costs a few µs per request, so at c=32/c=128 the server, not the client, is
what saturates.  Its text summary is awkward to parse, so the generated script's ``done()`` hook prints
one ``BENCHJSON {...}`` line with counts, error classes and latency percentiles (µs).  Note that wrk's
latency is time to the *complete* response, which for SSE is the whole stream.

Every run is bounded by ``-d`` and a subprocess timeout, and only loopback URLs are accepted.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["WrkResult", "available", "lua_script", "run", "version"]

_MARKER = "BENCHJSON "


def available() -> bool:
    return shutil.which("wrk") is not None


def version() -> str | None:
    """``wrk -v`` prints its version on the first line (and exits 1); None when wrk is missing."""
    exe = shutil.which("wrk")
    if exe is None:
        return None
    proc = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=5, check=False)
    first = (proc.stdout or proc.stderr).splitlines()
    return first[0].strip() if first else "wrk"


def _lua_string(text: str) -> str:
    """A Lua long-bracket literal that cannot be terminated by ``text`` itself."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def lua_script(path: str, body: bytes, headers: Sequence[tuple[str, str]] = ()) -> str:
    """The POST script: fixed method/path/body/headers, plus a ``done`` hook emitting JSON."""
    lines = [
        'wrk.method = "POST"',
        f"wrk.path = {_lua_string(path)}",
        f"wrk.body = {_lua_string(body.decode())}",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    lines += [f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers]
    lines.append(
        f"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{_MARKER}{{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"mean":%.1f,"max":%d}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""
    )
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run.  ``errors`` counts socket errors and non-2xx/3xx responses together."""

    requests: int
    duration_s: float
    connect_errors: int
    read_errors: int
    write_errors: int
    status_errors: int
    timeouts: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    client_cpu: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def errors(self) -> int:
        return self.connect_errors + self.read_errors + self.write_errors + self.status_errors + self.timeouts

    @property
    def ok_requests(self) -> int:
        return max(0, self.requests - self.status_errors)


def run(
    url: str,
    *,
    connections: int,
    duration_s: float,
    path: str,
    body: bytes,
    headers: Sequence[tuple[str, str]] = (),
    cpu: int | None = None,
    timeout_s: float = 10.0,
) -> WrkResult:
    """``wrk -t1 -c N -d S`` against ``url`` (loopback only), pinned to ``cpu`` with taskset if given."""
    if not url.startswith(("http://127.0.0.1:", "http://localhost:", "http://[::1]:")):
        raise ValueError("the bench only targets the loopback interface")
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(lua_script(path, body, headers))
        seconds = max(1, round(duration_s))
        cmd = [
            exe,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            f"--timeout={timeout_s:g}s",
            "-s",
            str(script),
            url,
        ]
        if cpu is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(cpu), *cmd]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + timeout_s + 15, check=False
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(_MARKER)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout[-500:]}"
        )
    data = json.loads(line[len(_MARKER) :])
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return WrkResult(
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        connect_errors=data["connect"],
        read_errors=data["read"],
        write_errors=data["write"],
        status_errors=data["status"],
        timeouts=data["timeout"],
        p50_ms=data["p50"] / 1000,
        p90_ms=data["p90"] / 1000,
        p99_ms=data["p99"] / 1000,
        client_cpu=cpu_s,
    )
