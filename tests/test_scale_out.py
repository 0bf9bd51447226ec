"""Scale-out: two `plano-trio up` processes on one PostgreSQL and one Redis behind a real HAProxy.

Everything is real and on real sockets: the OpenAI SDK talks to HAProxy running `deploy/haproxy.cfg`
(round-robin, health checks on `/healthz`), which balances over two gateway processes sharing a fresh
Postgres schema (`state_storage`) and Redis (`routing.session_cache`), both calling the
Anthropic-format mock.  Anthropic has no native Responses API, so `previous_response_id` is resolved
from plano-trio's own store: the conversation lives in Postgres, not in either process.

What HAProxy does while an instance drains (asserted by `test_sigterm_under_load_loses_no_acknowledged_turn`):
on SIGTERM the instance closes its listening socket at once.  A request HAProxy then sends it is refused
at connect, so no byte of it reached the gateway: `retry-on conn-failure` with `option redispatch 1`
re-sends it to the other instance, and `observe layer4 ... on-error mark-down` takes the instance out
of rotation on that first refusal (the health check confirms it).  A request already queued in the
closing socket's backlog is reset instead; HAProxy holds it whole (`option http-buffer-request`) and
re-sends it too (`empty-response`: `test_a_request_reset_in_a_closing_backlog_is_resent`).  Streams
already running on the instance are left alone by HAProxy: they finish within its `graceful_shutdown_s`,
and one still running then ends with the Responses `error` event, relayed as is.  So the client sees no
failure except that one, and every turn it saw completed was flushed to Postgres before the process
exited.

`Cluster.start(..., knobs=..., tail=...)` takes extra config for both instances, so a check that needs a
shared setting (rate limits through Redis: `knobs={"ratelimit_store": REDIS_URL}`, `tail="ratelimits: ..."`)
starts its own cluster the same way and drives it through `Cluster.client()`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import trio

from tests.mock_provider import MockProvider
from tests.state_support import admin, dsn
from tests.support import provider_config
from tests.test_cli import Server

ROOT = Path(__file__).resolve().parent.parent
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"
SERVERS = {"plano1": "PLANO_1", "plano2": "PLANO_2"}
"""deploy/haproxy.cfg's `server` names (what `x-served-by` says) and the variables giving their addresses."""

MODEL = "claude-sonnet-4-6"
REDIS_URL = "redis://127.0.0.1:6379/0"
CHECK_INTER = "200ms"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def instance_config(
    mock_url: str, schema: str, *, knobs: Mapping[str, str | float] | None = None, tail: str = ""
) -> str:
    """One instance's config: the Anthropic mock, shared Postgres state and Redis sessions.

    `knobs` go under `plano_trio:` (one mapping: a second `plano_trio:` key would replace it), `tail`
    is more top-level config (`ratelimits:`, for one).
    """
    anthropic = f"  - model: anthropic/{MODEL}\n    access_key: k\n    base_url: {mock_url}\n"
    ours = "".join(f"  {key}: {value}\n" for key, value in (knobs or {}).items())
    shared = f"""state_storage:
  type: postgres
  connection_string: "{dsn(schema)}"
  consistency_window_s: 1.0
  startup_timeout_s: 10
routing:
  session_cache: {{type: redis, url: "{REDIS_URL}"}}
plano_trio:
{ours or "  {}"}
{tail}"""
    return provider_config(mock_url, extra_providers=anthropic, tail=shared)


class HAProxy:
    """`haproxy -db -f deploy/haproxy.cfg` in the foreground; its log (stdout) goes to a file."""

    def __init__(self, backends: dict[str, int], log_path: Path, *, check_inter: str = CHECK_INTER) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.port = free_port()
        self.admin_socket = log_path.with_name("haproxy.sock")
        env = {
            **os.environ,
            "PLANO_LB_BIND": f"127.0.0.1:{self.port}",
            "PLANO_CHECK_INTER": check_inter,
            "PLANO_LB_ADMIN_SOCKET": str(self.admin_socket),
            **{SERVERS[name]: f"127.0.0.1:{port}" for name, port in backends.items()},
        }
        self.log_path = log_path
        with log_path.open("w") as log_file:
            self.proc = subprocess.Popen(
                [binary, "-db", "-f", str(HAPROXY_CFG)], stdout=log_file, stderr=subprocess.STDOUT, env=env
            )

    def wait_ready(self) -> None:
        """Until the runtime API answers: HAProxy binds every listener before it serves any of them.

        Sends no request, so round-robin starts untouched; the servers start in rotation.
        """
        deadline = time.monotonic() + 10
        while True:
            assert self.proc.poll() is None, self.log()
            try:
                if "Name: HAProxy" in self.admin("show info"):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "HAProxy did not start:\n" + self.log()
            time.sleep(0.05)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text()

    def admin(self, command: str) -> str:
        """One command on HAProxy's runtime API (the `stats socket`); its answer."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.admin_socket))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)


@dataclass
class Cluster:
    """Two gateways named as HAProxy's servers, and HAProxy in front of them."""

    instances: dict[str, Server]
    lb: HAProxy

    @classmethod
    @contextmanager
    def start(
        cls,
        tmp_path: Path,
        mock: MockProvider,
        schema: str,
        *,
        graceful_s: float = 5.0,
        workers: int = 1,
        knobs: Mapping[str, str | float] | None = None,
        tail: str = "",
    ) -> Iterator[Cluster]:
        """Both instances on one config file (`knobs`, `tail`: see `instance_config`)."""
        config = tmp_path / "config.yaml"
        ours = {"graceful_shutdown_s": graceful_s, **(knobs or {})}
        config.write_text(instance_config(mock.url, schema, knobs=ours, tail=tail))
        with ExitStack() as stack:
            instances: dict[str, Server] = {}
            for name in SERVERS:
                args = [
                    str(config),
                    "--listener-port",
                    "0",
                    "--workers",
                    str(workers),
                    "--log-format",
                    "json",
                ]
                server = Server(args, tmp_path)
                stack.callback(server.stop)
                instances[name] = server
            ports = {name: server.port for name, server in instances.items() if server.port is not None}
            assert len(ports) == len(SERVERS), "".join(line for s in instances.values() for line in s.lines)
            lb = HAProxy(ports, tmp_path / "haproxy.log")
            stack.callback(lb.stop)
            lb.wait_ready()
            yield cls(instances, lb)

    def client(self) -> openai.OpenAI:
        """The OpenAI SDK against HAProxy; no SDK retries, so every failure is visible to the test."""
        return openai.OpenAI(base_url=f"{self.lb.base}/v1", api_key="k", max_retries=0, timeout=20)


@pytest.fixture
def schema() -> Iterator[str]:
    """A fresh Postgres schema both instances share (their migrations race on it under an advisory lock)."""
    name = f"so_{uuid.uuid4().hex[:12]}"
    trio.run(admin, f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        trio.run(admin, f"DROP SCHEMA {name} CASCADE")


def history_sent(mock: MockProvider, marker: str) -> list[tuple[str, str]]:
    """(role, text) of the messages the mock received in the one request whose last message has `marker`."""
    found = [r.json for r in mock.requests if r.json and marker in json.dumps(r.json["messages"][-1])]
    assert len(found) == 1, f"{len(found)} upstream requests carry {marker!r}"
    out = []
    for message in found[0]["messages"]:
        content = message["content"]
        blocks = [{"text": content}] if isinstance(content, str) else content
        out.extend((message["role"], block.get("text", block.get("type", ""))) for block in blocks)
    return out


# --- multi-turn conversations across instances ------------------------------------------------------------


def test_conversations_continue_on_whichever_instance_answers(
    tmp_path: Path, mock: MockProvider, schema: str
) -> None:
    with Cluster.start(tmp_path, mock, schema) as cluster:
        client = cluster.client()
        convs = ("a", "b", "c")  # an odd number: each conversation's next turn goes to the other instance
        served: dict[str, list[str]] = {conv: [] for conv in convs}
        last: dict[str, str | None] = dict.fromkeys(convs)
        ids: list[str] = []
        for turn in range(4):
            for conv in convs:
                text = f"conversation {conv} turn {turn}"
                if turn % 2:  # streamed and non-streamed turns alternate
                    raw = client.responses.with_raw_response.create(
                        model=MODEL, input=text, previous_response_id=last[conv], stream=True
                    )
                    events = list(raw.parse())
                    assert events[-1].type == "response.completed"
                    response_id = events[-1].response.id
                else:
                    raw = client.responses.with_raw_response.create(
                        model=MODEL, input=text, previous_response_id=last[conv]
                    )
                    response_id = raw.parse().id
                served[conv].append(raw.headers["x-served-by"])
                expected = [("user", f"conversation {conv} turn {k}") for k in range(turn + 1)]
                sent = history_sent(mock, text)
                assert sent[0::2] == expected and sent[1::2] == [("assistant", "Hello from mock")] * turn
                last[conv] = response_id
                ids.append(response_id)
        # Round-robin: every turn of every conversation was answered by the other instance than the last.
        for conv_served in served.values():
            assert all(a != b for a, b in itertools.pairwise(conv_served)), served
        # Both instances carry their routing sessions in the shared Redis.
        routing = [httpx.get(f"{cluster.lb.base}/debug/routing", timeout=5) for _ in SERVERS]
        assert {answer.headers["x-served-by"] for answer in routing} == set(SERVERS)
        assert all(answer.json()["session_cache"]["backend"] == "redis" for answer in routing)
        for response_id in ids:  # every stored turn is readable through either instance
            for _ in SERVERS:
                assert client.responses.retrieve(response_id).id == response_id


# --- SIGTERM of one instance under streaming load ---------------------------------------------------------


@dataclass(frozen=True)
class Acked:
    """A turn whose `response.completed` the client received."""

    conv: str
    depth: int
    response_id: str
    instance: str
    started: float


@dataclass
class Load:
    """Streaming conversations from several threads; what each client saw is recorded, nothing retried."""

    client: openai.OpenAI
    stop: threading.Event = field(default_factory=threading.Event)
    acked: list[Acked] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, conv: str) -> None:
        previous: str | None = None
        depth = 0
        while not self.stop.is_set():
            marker = f"{conv} turn {depth}"
            started = time.monotonic()
            try:
                raw = self.client.responses.with_raw_response.create(
                    model=MODEL,
                    input=marker,
                    previous_response_id=previous,
                    stream=True,
                    extra_headers={"x-mock-chunks": "8", "x-mock-delay-ms": "20"},
                )
                events = list(raw.parse())
            except openai.OpenAIError as error:
                with self.lock:
                    self.failures.append(f"{marker}: {error!r}")
                return
            if events[-1].type != "response.completed":
                with self.lock:
                    self.failures.append(f"{marker}: ended with {events[-1].type}")
                return
            previous = events[-1].response.id
            depth += 1
            with self.lock:
                self.acked.append(Acked(conv, depth, previous, raw.headers["x-served-by"], started))

    def heads(self) -> dict[str, Acked]:
        """Each conversation's last acknowledged turn."""
        return {turn.conv: turn for turn in self.acked}


def open_long_stream(lb: HAProxy, seconds: float = 4.0) -> tuple[str, Iterator[str], ExitStack]:
    """A Responses stream through HAProxy: (instance, its SSE lines, the stack that closes it)."""
    stack = ExitStack()
    client = stack.enter_context(httpx.Client(timeout=20))
    response = stack.enter_context(
        client.stream(
            "POST",
            f"{lb.base}/v1/responses",
            json={"model": MODEL, "input": "a long answer", "stream": True},
            headers={"x-mock-chunks": str(round(seconds * 10)), "x-mock-delay-ms": "100"},
        )
    )
    assert response.status_code == 200
    return response.headers["x-served-by"], response.iter_lines(), stack


def sse_events(lines: Iterator[str]) -> list[dict[str, Any]]:
    """Every `data:` payload until the stream ends; a transport error propagates (a cut without an event)."""
    return [json.loads(line[5:]) for line in lines if line.startswith("data:")]


HAPROXY_REQUEST = re.compile(
    r" llm plano_trio/(?P<server>\S+) \S+ (?P<status>\d{3}) .*"
    r" \S+/\S+/\S+/\S+/(?P<retries>\+?\d+) \S+ \"(?P<request>[^\"]*)\""
)
"""An `option httplog` line: server, status, and the retries field (`+N`: the request was redispatched)."""


def haproxy_requests(log: str) -> list[dict[str, str]]:
    return [match.groupdict() for match in HAPROXY_REQUEST.finditer(log)]


def test_sigterm_under_load_loses_no_acknowledged_turn(
    tmp_path: Path, mock: MockProvider, schema: str
) -> None:
    graceful_s = 1.5
    workers = 2  # as deploy/plano-trio.service runs it: SIGTERM goes to the supervisor, which forwards it
    with Cluster.start(tmp_path, mock, schema, graceful_s=graceful_s, workers=workers) as cluster:
        # Two long streams in a row land on the two instances (round-robin, nothing else running);
        # plano1 is the one that gets SIGTERM.
        first, second = open_long_stream(cluster.lb), open_long_stream(cluster.lb)
        assert {first[0], second[0]} == set(SERVERS)
        (victim, victim_stream, victim_stack), (survivor, survivor_stream, survivor_stack) = sorted(
            (first, second), key=lambda stream: stream[0]
        )
        dying = cluster.instances[victim].proc

        load = Load(cluster.client())
        clients = [threading.Thread(target=load.run, args=(f"c{i}",)) for i in range(6)]
        for thread in clients:
            thread.start()
        time.sleep(1.0)
        with load.lock:
            before = {turn.instance for turn in load.acked}
        dying.send_signal(signal.SIGTERM)
        exit_code = dying.wait(timeout=graceful_s + 10)
        exited = time.monotonic()
        time.sleep(1.0)  # the survivor alone carries the load
        load.stop.set()
        for thread in clients:
            thread.join(timeout=10)
        with victim_stack:
            victim_events = sse_events(victim_stream)
        with survivor_stack:
            survivor_events = sse_events(survivor_stream)

        lb_log = cluster.lb.log()
        context = f"failures: {load.failures}\nHAProxy log:\n{lb_log}"
        assert exit_code == 0
        assert before == set(SERVERS), context  # the load was spread before the kill
        # No client saw a failure: every turn of every conversation completed, before, during and after.
        assert not load.failures, context
        assert {turn.instance for turn in load.acked if turn.started > exited} == {survivor}, context

        # HAProxy answered every request with the instance's own 200; a request refused by the dying
        # instance was redispatched (`+N` in the log) to the survivor, and the victim was taken out.
        requests = haproxy_requests(lb_log)
        assert requests and all(entry["status"] == "200" for entry in requests), context
        assert all(entry["server"] == survivor for entry in requests if entry["retries"].startswith("+"))
        assert f"Server plano_trio/{victim} is DOWN" in lb_log

        # The stream the victim was still serving when graceful_shutdown_s ran out: HAProxy relayed the
        # gateway's error event, and the turn, never acknowledged, was not stored.
        assert victim_events[-1]["type"] == "error", victim_events[-3:]
        assert victim_events[-1]["code"] == "stream_interrupted"
        assert survivor_events[-1]["type"] == "response.completed"

        drained = [
            entry
            for line in cluster.instances[victim].lines
            if line.startswith("{") and (entry := json.loads(line)).get("msg") == "state store drained"
        ]
        assert len(drained) == workers, cluster.instances[victim].lines[-10:]
        assert all(entry["lost"] == 0 for entry in drained)

        # Every acknowledged turn is in Postgres: readable, and each conversation continues with its
        # whole history, through the survivor alone.
        client = cluster.client()
        for turn in load.acked:
            assert client.responses.retrieve(turn.response_id).status == "completed"
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(victim_events[0]["response"]["id"])
        for conv, head in load.heads().items():
            marker = f"{conv} after the kill"
            answer = client.responses.with_raw_response.create(
                model=MODEL, input=marker, previous_response_id=head.response_id
            )
            assert answer.headers["x-served-by"] == survivor
            assert answer.parse().status == "completed"
            sent = history_sent(mock, marker)
            assert [text for role, text in sent if role == "user"] == [
                *(f"{conv} turn {k}" for k in range(head.depth)),
                marker,
            ]


# --- the drain procedure of deploy/README.md: out of rotation first, then SIGTERM -------------------------


def test_drain_through_the_runtime_api_then_sigterm_refuses_nothing(
    tmp_path: Path, mock: MockProvider, schema: str
) -> None:
    with Cluster.start(tmp_path, mock, schema) as cluster:
        first, second = open_long_stream(cluster.lb, 1.5), open_long_stream(cluster.lb, 1.5)
        (victim, victim_stream, victim_stack), (survivor, _, survivor_stack) = sorted(
            (first, second), key=lambda stream: stream[0]
        )
        survivor_stack.close()
        assert cluster.lb.admin(f"set server plano_trio/{victim} state drain").strip() == ""
        client = cluster.client()
        served = [
            client.responses.with_raw_response.create(model=MODEL, input=f"while draining {i}")
            for i in range(4)
        ]
        assert {answer.headers["x-served-by"] for answer in served} == {survivor}
        with victim_stack:  # a draining instance keeps the streams it has
            assert sse_events(victim_stream)[-1]["type"] == "response.completed"
        dying = cluster.instances[victim].proc
        dying.send_signal(signal.SIGTERM)
        assert dying.wait(timeout=10) == 0
        answer = client.responses.with_raw_response.create(model=MODEL, input="after the stop")
        assert answer.headers["x-served-by"] == survivor
        lb_log = cluster.lb.log()
        requests = haproxy_requests(lb_log)
        assert all(entry["status"] == "200" for entry in requests), lb_log
        assert not [entry for entry in requests if entry["retries"].startswith("+")], lb_log


# --- what `option http-buffer-request` is for ---------------------------------------------------------


def test_a_request_reset_in_a_closing_backlog_is_resent(tmp_path: Path, mock: MockProvider) -> None:
    """A stopping instance closes its listening socket; the kernel resets the connections still queued
    in its backlog, on which HAProxy has already sent a request.  HAProxy resends it to another
    instance only if it holds the whole request, so the config buffers the body first; the OpenAI SDK
    writes headers and body apart, as this client does.  (The mock stands in for the other instance.)
    """
    with socket.socket() as backlog:
        backlog.bind(("127.0.0.1", 0))
        backlog.listen(16)  # never accepts: every connection waits in the kernel's queue
        backends = {"plano1": backlog.getsockname()[1], "plano2": mock.port}
        # Checks far apart: the one to plano1 would time out and take it down before the request is sent.
        lb = HAProxy(backends, tmp_path / "haproxy.log", check_inter="10s")
        try:
            lb.wait_ready()
            assert lb.admin("set server plano_trio/plano2 state maint").strip() == ""
            body = json.dumps({"model": MODEL, "input": "hi"}).encode()
            with socket.create_connection(("127.0.0.1", lb.port), timeout=10) as client:
                client.sendall(
                    b"POST /v1/responses HTTP/1.1\r\nhost: lb\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n" % len(body)
                )
                time.sleep(0.05)
                client.sendall(body)
                time.sleep(0.2)  # HAProxy has connected to plano1 and sent the request
                assert lb.admin("set server plano_trio/plano2 state ready").strip() == ""
                backlog.close()  # the queued connection is reset
                head = client.recv(65536).split(b"\r\n")
            assert head[0] == b"HTTP/1.1 200 OK", lb.log()
            assert b"x-served-by: plano2" in head
        finally:
            lb.stop()


# --- rate limits shared through Redis -------------------------------------------------------------------


def test_a_rate_limit_holds_across_instances(tmp_path: Path, mock: MockProvider, schema: str) -> None:
    """One bucket per org in Redis: what one instance spent, the other refuses."""
    org = f"org-{uuid.uuid4().hex[:8]}"
    rules = (
        "ratelimits:\n"
        f"  - model: anthropic/{MODEL}\n"
        "    selector: {key: x-org, value: '*'}\n"
        "    limit: {tokens: 60, unit: hour}\n"
    )
    prompt = " ".join(["word"] * 40)  # about 40 input tokens: one request fits the hour, a second does not

    def ask(org_value: str) -> httpx.Response:
        """One request on a new connection, so HAProxy's round robin picks the instance afresh."""
        return httpx.post(
            f"{cluster.lb.base}/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": prompt}]},
            headers={"authorization": "Bearer k", "x-arch-ratelimit-selector": "x-org", "x-org": org_value},
            timeout=20,
        )

    with Cluster.start(tmp_path, mock, schema, knobs={"ratelimit_store": REDIS_URL}, tail=rules) as cluster:
        first = ask(org)
        assert first.status_code == 200, first.text
        spender = first.headers["x-served-by"]
        answers: list[httpx.Response] = []
        while len(answers) < 30 and all(a.headers["x-served-by"] == spender for a in answers):
            answers.append(ask(org))  # round robin alternates, unless a check took the other one out a while
        from_other = [a for a in answers if a.headers["x-served-by"] != spender]
        assert from_other, "HAProxy never picked the other instance:\n" + cluster.lb.admin("show stat")
        assert all(a.status_code == 429 for a in answers)  # the other instance too: one bucket in Redis
        assert "retry-after" in from_other[0].headers
        assert ask(org + "-b").status_code == 200  # another org's bucket is its own
