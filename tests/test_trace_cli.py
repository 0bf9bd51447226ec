"""`plano-trio trace listen` and `plano-trio trace` as a user runs them, against Plano's own CLI.

Spans go out through the OpenTelemetry SDK's OTLP exporters (gRPC, and HTTP) to our listener (a child
process) and to `planoai`'s listener (in this process, from the `planoai` package).  Then both viewers,
`plano-trio trace --json` and `planoai trace --json`, run as child processes against both listeners
(`PLANO_TRACE_PORT`), and all four answers must be the same bytes.  The rest checks the bounds and that
malformed requests leave the listener serving.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from plano_trio.tracing_cli.otlp import DROPPED_ATTRIBUTES_KEY

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PLANOAI = str(Path(sys.executable).parent / "planoai")
READY_RE = re.compile(r"viewer queries on [\d.]+:(\d+)(?:, OTLP/HTTP on (\S+?);)?")
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class OurListener:
    """`plano-trio trace listen` in a child process; stderr collected by a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [PY, "-m", "plano_trio", "trace", "listen", "--port", "0", *args],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self.port = 0
        self.http_url: str | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._ready.wait(20) and self.port, "listener did not start:\n" + "".join(self.lines)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            found = READY_RE.search(line)
            if found:
                self.port = int(found.group(1))
                self.http_url = found.group(2)
                self._ready.set()
        self._ready.set()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=20) == 0, "".join(self.lines)


@pytest.fixture(scope="module")
def ours() -> Iterator[OurListener]:
    listener = OurListener("--http-port", "0")
    yield listener
    listener.stop()
    assert "trace listener stopped: held" in "".join(listener.lines)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def theirs() -> Iterator[str]:
    """Plano's listener, from the `planoai` package, in this process."""
    from planoai.trace_cmd import start_trace_listener_background

    port = free_port()
    server = start_trace_listener_background("127.0.0.1", port)
    yield f"127.0.0.1:{port}"
    server.stop(grace=1)


def send(exporters: list[SpanExporter], build: Callable[[Callable[[str], otel_trace.Tracer]], None]) -> None:
    """Run `build` with a tracer per service name; every span goes to every exporter, in the same order."""
    providers: dict[str, TracerProvider] = {}

    def tracer(service: str) -> otel_trace.Tracer:
        if service not in providers:
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            for exporter in exporters:
                provider.add_span_processor(SimpleSpanProcessor(exporter))
            providers[service] = provider
        return providers[service].get_tracer("tests")

    build(tracer)
    for provider in providers.values():
        provider.shutdown()


def grpc_exporter(endpoint: str) -> SpanExporter:
    return GrpcExporter(endpoint=endpoint, insecure=True, timeout=5)


def plano_like_request(tracer: Callable[[str], otel_trace.Tracer], marker: str) -> str:
    """Spans shaped like Plano's for one chat request (routing, a failed attempt, a retry); its trace id."""
    llm = tracer("plano(llm)")
    with llm.start_as_current_span(
        "POST /v1/chat/completions",
        attributes={
            "http.method": "POST",
            "http.target": "/v1/chat/completions",
            "request_id": marker,
            "model.requested": "router:auto",
            "llm.is_streaming": True,
            "http.status_code": 200,
        },
    ) as root:
        with tracer("plano(routing)").start_as_current_span(
            "routing",
            attributes={"route.selected_model": "openai/gpt-4o-mini", "routing.determination_ms": 21},
        ):
            pass
        with llm.start_as_current_span("upstream", attributes={"http.status_code": 503, "llm.attempt": 1}):
            pass
        with llm.start_as_current_span(
            "upstream",
            attributes={
                "http.status_code": 200,
                "llm.attempt": 2,
                "llm.model": "gpt-4o-mini",
                "llm.usage.total_tokens": 42,
                "llm.time_to_first_token": 0.125,
                "tags": ["a", "b"],  # an array: both listeners drop it
            },
        ):
            pass
        return f"{root.get_span_context().trace_id:032x}"


def view(tool: str, port: int | str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [PY, "-m", "plano_trio", "trace"] if tool == "ours" else [PLANOAI, "trace"]
    return subprocess.run(
        [*command, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PLANO_TRACE_PORT": str(port), "NO_COLOR": "1", "COLUMNS": "200"},
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def test_both_viewers_print_the_same_json_from_both_listeners(ours: OurListener, theirs: str) -> None:
    marker = "req-compat"
    trace_id = ""

    def build(tracer: Callable[[str], otel_trace.Tracer]) -> None:
        nonlocal trace_id
        trace_id = plano_like_request(tracer, marker)

    send([grpc_exporter(ours.endpoint), grpc_exporter(theirs)], build)
    outputs = {
        (viewer, listener): view(viewer, port, "--json", trace_id)
        for viewer in ("ours", "planoai")
        for listener, port in (("ours", ours.port), ("theirs", port_of(theirs)))
    }
    reference = outputs["planoai", "theirs"]
    for key, result in outputs.items():
        assert result.returncode == 0, (key, result.stderr)
        assert result.stdout == reference.stdout, key
    (trace,) = json.loads(reference.stdout)["traces"]
    assert trace["trace_id"] == trace_id
    spans = {(span["service"], span["name"], span["spanId"]): span for span in trace["spans"]}
    assert sorted((service, name) for service, name, _ in spans) == [
        ("plano(llm)", "POST /v1/chat/completions"),
        ("plano(llm)", "upstream"),
        ("plano(llm)", "upstream"),
        ("plano(routing)", "routing"),
    ]
    root = next(s for s in trace["spans"] if not s["parentSpanId"])
    assert all(s["parentSpanId"] == root["spanId"] for s in trace["spans"] if s is not root)
    attributes = {a["key"]: a["value"] for s in trace["spans"] for a in s["attributes"]}
    assert attributes["llm.is_streaming"] == {"boolValue": True}
    assert attributes["routing.determination_ms"] == {"intValue": "21"}
    assert attributes["llm.time_to_first_token"] == {"doubleValue": 0.125}
    assert "tags" not in attributes


@pytest.fixture(scope="module")
def selectable(ours: OurListener, theirs: str) -> str:
    """One Plano-like request (`request_id=req-select`) sent to both listeners; its trace id."""
    trace_id = ""

    def build(tracer: Callable[[str], otel_trace.Tracer]) -> None:
        nonlocal trace_id
        trace_id = plano_like_request(tracer, "req-select")

    send([grpc_exporter(ours.endpoint), grpc_exporter(theirs)], build)
    return trace_id


@pytest.mark.parametrize(
    "args",
    [
        ["ID"],
        ["SHORT"],
        ["ID", "--filter", "llm.*,route.*"],
        ["ID", "--filter", "http.status_code", "--filter", "*.model"],
        ["--where", "request_id=req-select"],
        ["--where", "route.selected_model=openai/gpt-4o-mini", "--where", "request_id=req-select"],
        ["--where", "request_id=nobody"],
        ["any", "--list", "--where", "request_id=req-select"],
    ],
)
def test_selection_matches_planoai(ours: OurListener, theirs: str, selectable: str, args: list[str]) -> None:
    args = [{"ID": selectable, "SHORT": selectable[:8]}.get(arg, arg) for arg in args]
    mine = view("ours", ours.port, "--json", *args)
    plano = view("planoai", port_of(theirs), "--json", *args)
    assert mine.returncode == 0, mine.stderr
    assert mine.stdout == plano.stdout
    assert "req-select" in mine.stdout or "nobody" in args[-1] or "--filter" in args or "--list" in args


def test_where_matches_before_filter_trims(ours: OurListener, theirs: str, selectable: str) -> None:
    """Where ours differs on purpose: planoai matches `--where` on spans `--filter` already trimmed."""
    args = ["--json", "--where", "request_id=req-select", "--filter", "llm.*"]
    (trace,) = as_json(view("ours", ours.port, *args))["traces"]
    assert trace["trace_id"] == selectable
    assert {a["key"] for s in trace["spans"] for a in s["attributes"]} == {
        "llm.is_streaming",
        "llm.attempt",
        "llm.model",
        "llm.usage.total_tokens",
        "llm.time_to_first_token",
    }
    assert as_json(view("planoai", port_of(theirs), *args)) == {"traces": []}


def test_tree_text_nests_spans_and_sorts_attributes(ours: OurListener) -> None:
    trace_id = ""

    def build(tracer: Callable[[str], otel_trace.Tracer]) -> None:
        nonlocal trace_id
        trace_id = plano_like_request(tracer, "req-text")

    send([grpc_exporter(ours.endpoint)], build)
    result = view("ours", ours.port, trace_id[:8])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Trace {trace_id}  (")
    assert re.fullmatch(r"└── \+0ms plano\(llm\) POST /v1/chat/completions  \d+ms", lines[1])
    assert lines[2] == "    │ http.status_code: 200"  # status first, then the request keys
    assert lines[3] == "    │ http.method: POST"
    children = [line for line in lines if re.match(r"    [├└]── ", line)]
    assert [c.split()[2] for c in children] == ["plano(routing)", "plano(llm)", "plano(llm)"]
    assert any("✗ 503 Service Unavailable" in c for c in children)
    assert "\x1b" not in result.stdout


def test_last_any_list_and_limit(ours: OurListener) -> None:
    first = send_one(ours.endpoint, "first")
    second = send_one(ours.endpoint, "second")
    assert [t["trace_id"] for t in as_json(view("ours", ours.port, "--json"))["traces"]] == [second]
    assert as_json(view("ours", ours.port, "--json", "--list", "--limit", "2")) == {
        "trace_ids": [second, first]
    }
    listed = view("ours", ours.port, "--list")
    assert listed.stdout.splitlines()[:2] == ["Trace IDs:", listed.stdout.splitlines()[1]]
    assert second[:8] in listed.stdout.splitlines()[1]
    assert view("ours", ours.port, "--json", "ab" * 16).stdout.strip() == '{\n  "traces": []\n}'
    assert view("ours", ours.port, "ab" * 16).stdout == "No traces found.\n"


def send_one(endpoint: str, name: str, exporter: SpanExporter | None = None) -> str:
    trace_id = ""

    def build(tracer: Callable[[str], otel_trace.Tracer]) -> None:
        nonlocal trace_id
        with tracer("plano(llm)").start_as_current_span(name, attributes={"n": name}) as span:
            trace_id = f"{span.get_span_context().trace_id:032x}"

    send([exporter or grpc_exporter(endpoint)], build)
    return trace_id


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_otlp_http_export(ours: OurListener, compression: Compression) -> None:
    assert ours.http_url is not None
    exporter = HttpExporter(endpoint=ours.http_url, timeout=5, compression=compression)
    trace_id = send_one(ours.endpoint, f"over-http-{compression.value}", exporter)
    (trace,) = as_json(view("ours", ours.port, "--json", trace_id))["traces"]
    assert trace["spans"][0]["name"] == f"over-http-{compression.value}"


def http_post(url: str, body: bytes, headers: dict[str, str], method: str = "POST") -> int:
    request = urllib.request.Request(
        url, data=body if method == "POST" else None, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_malformed_requests_do_not_hurt_the_listener(ours: OurListener) -> None:
    with grpc.insecure_channel(ours.endpoint, options=[("grpc.max_send_message_length", 8 << 20)]) as channel:
        export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as garbage:
            export(b"\xff\xff\xff\xff", timeout=5)
        assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as huge:
            export(b"\x0a" + b"\xff" * (5 << 20), timeout=10)
        assert huge.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        unknown = channel.unary_unary("/no.Such/Method", request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as missing:
            unknown(b"", timeout=5)
        assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with socket.create_connection(("127.0.0.1", ours.port), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(2000))
    url = ours.http_url
    assert url is not None
    protobuf = {"content-type": "application/x-protobuf"}
    assert http_post(url, b"\xff\xff\xff", protobuf) == 400
    assert http_post(url, b"{}", {"content-type": "application/json"}) == 415
    assert http_post(url, b"", protobuf, method="GET") == 405
    assert http_post(url.replace("/v1/traces", "/v1/logs"), b"", protobuf) == 404
    bomb = gzip.compress(b"\0" * (50 << 20))
    assert http_post(url, bomb, {**protobuf, "content-encoding": "gzip"}) == 400
    with socket.create_connection(("127.0.0.1", int(url.split(":")[2].split("/")[0])), timeout=10) as raw:
        # Refused on the declared length, before any of the body is read.
        raw.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\ncontent-type: application/x-protobuf\r\n"
            b"content-length: 5242880\r\n\r\n"
        )
        assert raw.recv(100).startswith(b"HTTP/1.1 413 ")
    assert http_post(url, b"", {**protobuf, "content-encoding": "br"}) == 415
    # Still serving: a real export lands and both viewers read it.
    trace_id = send_one(ours.endpoint, "after-garbage")
    assert as_json(view("ours", ours.port, "--json", trace_id))["traces"][0]["trace_id"] == trace_id
    assert as_json(view("planoai", ours.port, "--json", trace_id))["traces"][0]["trace_id"] == trace_id


def test_bounds_hold() -> None:
    listener = OurListener("--max-traces", "3")
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": "plano(llm)"}))
        provider.add_span_processor(
            BatchSpanProcessor(
                grpc_exporter(listener.endpoint), max_queue_size=1000, max_export_batch_size=256
            )
        )
        tracer = provider.get_tracer("tests")
        with tracer.start_as_current_span("big", attributes={"huge": "h" * 1_000_000, "small": "s"}) as root:
            big_id = f"{root.get_span_context().trace_id:032x}"
            for n in range(599):
                with tracer.start_as_current_span(f"child-{n}"):
                    pass
        provider.force_flush()
        (big,) = as_json(view("ours", listener.port, "--json", big_id))["traces"]
        assert len(big["spans"]) == 500
        planoai_view = as_json(view("planoai", listener.port, "--json", big_id))
        assert len(planoai_view["traces"][0]["spans"]) == 500
        for n in range(4):
            with tracer.start_as_current_span(f"later-{n}"):
                pass
        provider.force_flush()
        provider.shutdown()
        kept = as_json(view("ours", listener.port, "--json", "any"))["traces"]
        assert [t["spans"][0]["name"] for t in kept] == ["later-3", "later-2", "later-1"]
    finally:
        listener.stop()
    stderr = "".join(listener.lines)
    assert "held 3 traces (3 spans)" in stderr and "traces evicted" in stderr
    assert re.search(r"; (\d+) spans over the per-trace limit dropped", stderr)


def test_a_huge_attribute_is_clipped_and_said_so(ours: OurListener) -> None:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "plano(llm)"}),
        span_limits=SpanLimits(max_span_attributes=1000),  # the SDK's own limit is 128
    )
    provider.add_span_processor(SimpleSpanProcessor(grpc_exporter(ours.endpoint)))
    attributes = {"huge": "h" * 1_000_000} | {f"a{n}": str(n) for n in range(200)}
    with provider.get_tracer("tests").start_as_current_span("huge", attributes=attributes) as span:
        trace_id = f"{span.get_span_context().trace_id:032x}"
    provider.shutdown()
    (trace,) = as_json(view("ours", ours.port, "--json", trace_id))["traces"]
    attributes = {a["key"]: a["value"] for a in trace["spans"][0]["attributes"]}
    clipped = "h" * 4096 + f"…[{1_000_000 - 4096} more chars]"
    assert attributes["huge"]["stringValue"] == clipped
    assert len(attributes) == 129  # 128 kept, then how many were dropped
    assert attributes[DROPPED_ATTRIBUTES_KEY] == {"intValue": "73"}
    text = view("ours", ours.port, trace_id)
    assert f"({len(clipped)} chars; -v shows all)" in text.stdout
    assert clipped in view("ours", ours.port, trace_id, "-v").stdout


def test_command_line_errors() -> None:
    port = free_port()
    down = view("ours", port)
    assert down.returncode == 1
    assert f"no trace listener on 127.0.0.1:{port}" in down.stderr
    bad_env = view("ours", "nope")
    assert bad_env.returncode == 2 and "PLANO_TRACE_PORT='nope' is not a port number" in bad_env.stderr
    bad_where = view("ours", port, "--where", "oops")
    assert bad_where.returncode == 1 and "Invalid --where filter(s): oops. Use key=value." in bad_where.stderr
    mixed = view("ours", port, "listen", "--json")
    assert mixed.returncode == 2 and "--json are for viewing" in mixed.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = view("ours", taken.getsockname()[1], "listen")
    assert busy.returncode == 1 and "cannot listen for OTLP/gRPC" in busy.stderr
