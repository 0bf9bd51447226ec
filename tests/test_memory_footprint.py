"""What the gateway's process and its signals worker import: the idle memory target (bench `memory`).

Every imported module stays in its process's memory for good (code, classes, tables), so a feature the
configuration does not use must not be imported by start-up or by serving.  Checked in child
interpreters, after real requests, since this test process imports everything.

Measured with the bench's gateway config (`bench.targets.gateway_config`, warmed up as `bench.runner`
does), RSS from /proc: gateway 45.6 MiB + signals worker 20.0 MiB before these guards' changes, 42.0
+ 17.0 after.  The worker's largest share was OpenSSL (`hashlib` for one BLAKE2 digest: ~3.5 MiB),
the gateway's the analysis modules it never runs (~1.4 MiB) and toktok's compiled tokenizer (~1.6 MiB).
"""

from __future__ import annotations

import json
import subprocess
import sys

from plano_trio.apis.kind import Api
from plano_trio.gateway.signals_worker import worker_command
from plano_trio.signals.frames import encode_job, take_results

_GATEWAY = r'''
import json, sys
from functools import partial

import trio

from plano_trio.config import load_config_text
from plano_trio.server.serve import serve

CONFIG = """
version: v0.4.0
listeners:
  - {name: llm, type: model, address: 127.0.0.1, port: 0, timeout: 30s}
model_providers:
  - {model: plano_trio/echo, default: true}
state_storage: {type: memory}
"""

USER = [{"role": "user", "content": "Hello!"}]
REQUESTS = [
    ("/v1/chat/completions", {"model": "echo", "messages": USER}),
    ("/v1/chat/completions", {"model": "echo", "stream": True, "messages": USER}),
    ("/v1/messages", {"model": "echo", "max_tokens": 50, "messages": USER}),
    ("/v1/responses", {"model": "echo", "input": "Hello again"}),
]


async def exchange(host: str, port: int, path: str, payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    stream = await trio.open_tcp_stream(host, port)
    await stream.send_all(head.encode() + body)
    received = b""
    with trio.fail_after(20):
        while chunk := await stream.receive_some(65536):
            received += chunk
    await stream.aclose()
    return received


async def main() -> None:
    config = load_config_text(CONFIG, env={})
    shutdown = trio.Event()
    statuses = []
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, config, shutdown=shutdown))
        host, port = binds[0].removeprefix("http://").rsplit(":", 1)
        for path, payload in REQUESTS:
            statuses.append((await exchange(host, int(port), path, payload)).split(b" ", 2)[1].decode())
        shutdown.set()
    print(json.dumps({"statuses": statuses, "modules": sorted(sys.modules)}))


trio.run(main)
'''

UNUSED_BY_THIS_CONFIG = {
    "psycopg": "state is in memory",
    "plano_trio.state.postgres": "state is in memory",
    "plano_trio.telemetry.export": "tracing is off",
    "plano_trio.telemetry.otlp_encode": "tracing is off",
    "grpc": "tracing is off",
    "toktok": "no rate limit is configured",
    "plano_trio.ratelimit.redis_store": "no shared rate-limit store",
    "plano_trio.session.redis_native": "no Redis",
    "redis": "no Redis",
    "plano_trio.filters.client": "no filters or agents",
    "plano_trio.filters.mcp_protocol": "no filters or agents",
    "plano_trio.gateway.agents": "no agent listener",
    "plano_trio.gateway.agent_relay": "no agent listener",
    "plano_trio.gateway.loop_lag": "no max_loop_lag_ms",
    "plano_trio.server.lag_monitor": "no max_loop_lag_ms",
    "plano_trio.tracing_cli.query": "the trace viewer is a command of its own",
    "plano_trio.signals.analyzer": "the analysis runs in the signals worker",
    "plano_trio.signals.normalize": "the analysis runs in the signals worker",
    "plano_trio.signals.text": "the analysis runs in the signals worker",
    "plano_trio.signals.job": "the analysis runs in the signals worker",
}


def test_a_gateway_imports_nothing_its_config_does_not_use() -> None:
    run = subprocess.run([sys.executable, "-c", _GATEWAY], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["statuses"] == ["200"] * 4
    loaded = set(result["modules"])
    assert "plano_trio.signals.frames" in loaded  # the worker's codec: signals were on
    wrong = {name: why for name, why in UNUSED_BY_THIS_CONFIG.items() if name in loaded}
    assert not wrong, f"imported although {wrong}"


_REPORT = 'sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")'
_BARE = "import json, runpy, sys\n" + _REPORT
_WORKER = f"""
import json, runpy, sys
try:
    runpy.run_module("plano_trio.signals.worker", run_name="__main__", alter_sys=True)
finally:
    {_REPORT}
"""

WORKER_MAY_IMPORT = ("plano_trio.signals", "msgspec", "typing_extensions")
"""Besides the standard library: the analysis, and msgspec (with its one dependency) for the frames."""
WORKER_PLANO_TRIO = {"plano_trio", "plano_trio.apis", "plano_trio.apis.kind"}


def _modules(argv: list[str], env: dict[str, str], stdin: bytes = b"") -> tuple[set[str], bytes]:
    run = subprocess.run(argv, input=stdin, capture_output=True, env=env, timeout=60)
    err = run.stderr.decode(errors="replace")
    assert run.returncode == 0, err[-3000:]
    line = next(line for line in err.splitlines() if line.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES "))), run.stdout


def test_the_signals_worker_imports_only_the_analysis() -> None:
    """The worker started as the gateway starts it (interpreter, module, environment), after a job."""
    argv, env = worker_command()
    assert argv[1:] == ["-m", "plano_trio.signals.worker"]
    bare, _ = _modules([argv[0], "-c", _BARE], env)
    conversation = [{"role": "user", "content": "No, that is wrong."}]
    body = json.dumps({"model": "m", "messages": conversation}).encode()
    loaded, out = _modules([argv[0], "-c", _WORKER], env, encode_job(7, Api.CHAT, len(body)) + body)
    [(job_id, analysis)] = take_results(bytearray(out))
    assert job_id == 7 and analysis.error is None and analysis.turns == 1
    stdlib = sys.stdlib_module_names
    extra = {
        name
        for name in loaded - bare
        if name.split(".")[0] not in stdlib
        and not name.startswith(WORKER_MAY_IMPORT)
        and name not in WORKER_PLANO_TRIO
    }
    assert not extra, f"the signals worker imported {sorted(extra)}"
    assert not {"_hashlib", "_ssl"} & loaded  # OpenSSL: megabytes of a library the analysis never calls
