"""bench.profile's pure core: parsing py-spy's collapsed stacks and charging samples to layers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.profile import (
    RUN_LOOP,
    UNATTRIBUTED,
    Frame,
    attribute,
    layer_of,
    layer_table,
    owner,
    parse_collapsed,
    parse_frame,
    requester,
    top_functions,
    trio_table,
)

SP = "/x/site-packages"
RUN = f"unrolled_run ({SP}/trio/_core/_run.py:2600)"
MAIN = "cmd_up (/work/main/plano_trio/cli.py:163)"


@pytest.mark.parametrize(
    ("text", "frame"),
    [
        ("handle (/a/b.py:12)", Frame("handle", "/a/b.py", 12)),
        ("<listcomp> (/a/b.py:3)", Frame("<listcomp>", "/a/b.py", 3)),
        ("f (g) (/a/b.py:3)", Frame("f (g)", "/a/b.py", 3)),
        ("__init__ (<attrs generated methods x>:1)", Frame("__init__", "<attrs generated methods x>", 1)),
        ('process 123:"python -m x"', Frame('process 123:"python -m x"', "", 0)),
        ("native_fn (libc.so)", Frame("native_fn", "libc.so", 0)),
    ],
)
def test_parse_frame(text: str, frame: Frame) -> None:
    assert parse_frame(text) == frame


def test_parse_collapsed_skips_malformed_lines() -> None:
    lines = ["a (/x.py:1);b (/y.py:2) 7\n", "no count here\n", "a (/x.py:1) 3", "", "half;written"]
    parsed = list(parse_collapsed(lines))
    assert [count for _, count in parsed] == [7, 3]
    assert parsed[0][0] == [Frame("a", "/x.py", 1), Frame("b", "/y.py", 2)]


@given(st.lists(st.text(max_size=40), max_size=20))
def test_parse_collapsed_never_raises(lines: list[str]) -> None:
    for frames, count in parse_collapsed(lines):
        assert frames and count >= 0


@pytest.mark.parametrize(
    ("path", "layer"),
    [
        ("/work/main/plano_trio/gateway/pipeline.py", "ours"),
        ("/work/main/plano_trio/server/send_guard.py", "ours: server edge"),
        (f"{SP}/hypercorn/protocol/h11.py", "hypercorn"),
        (f"{SP}/h11/_connection.py", "h11"),
        (f"{SP}/trio/_core/_run.py", "trio scheduler"),
        (f"{SP}/trio/_socket.py", "trio sockets & streams"),
        ("/usr/lib/python3.11/socket.py", None),
    ],
)
def test_layer_of(path: str, layer: str | None) -> None:
    assert layer_of(path) == layer


def _stack(*files: str) -> list[Frame]:
    return [Frame(f"f{i}", path, i) for i, path in enumerate(files)]


def test_owner_is_the_innermost_layered_frame() -> None:
    stdlib_under_h11 = _stack(f"{SP}/hypercorn/a.py", f"{SP}/h11/b.py", "/usr/lib/python3.11/enum.py")
    assert owner(stdlib_under_h11)[0] == "h11"
    assert owner(_stack("/usr/lib/python3.11/threading.py"))[0] == UNATTRIBUTED


@pytest.mark.parametrize(
    ("frames", "asker"),
    [
        # the run loop's own work: only the program that called trio.run lies outside it
        ([parse_frame(MAIN), parse_frame(RUN)], RUN_LOOP),
        # waiting for I/O happens in trio.run itself, outside unrolled_run
        (
            [
                parse_frame(MAIN),
                parse_frame(f"run ({SP}/trio/_core/_run.py:2400)"),
                parse_frame(f"get_events ({SP}/trio/_core/_io_epoll.py:1)"),
            ],
            RUN_LOOP,
        ),
        # a socket send our upstream client asked for
        (
            [
                parse_frame(MAIN),
                parse_frame(RUN),
                parse_frame("send (/work/main/plano_trio/upstream/connection.py:56)"),
                parse_frame(f"send_all ({SP}/trio/_highlevel_socket.py:1)"),
            ],
            "ours",
        ),
        # hypercorn's receive, through trio
        (
            [
                parse_frame(RUN),
                parse_frame(f"run ({SP}/hypercorn/trio/tcp_server.py:9)"),
                parse_frame(f"receive_some ({SP}/trio/_highlevel_socket.py:2)"),
            ],
            "hypercorn",
        ),
    ],
)
def test_requester(frames: list[Frame], asker: str) -> None:
    assert requester(frames) == asker


def test_tables_turn_shares_into_microseconds() -> None:
    ours = "/work/main/plano_trio/gateway/pipeline.py"
    lines = [
        f"{MAIN};{RUN} 2",
        f"{MAIN};{RUN};handle ({ours}:1) 1",
        f"{MAIN};{RUN};handle ({ours}:1);send_all ({SP}/trio/_highlevel_socket.py:1) 1",
    ]
    attribution = attribute(parse_collapsed(lines))
    assert attribution.total == 4
    assert attribution.share("trio scheduler") == 0.5
    columns = {"gw": (attribution, 400.0)}
    layers = layer_table(columns)
    assert "| ours | 100 (25%) |" in layers
    assert "| trio scheduler | 200 (50%) |" in layers
    assert layers[-1] == "| **total (measured)** | **400** |"
    trio = trio_table(columns)
    assert f"| {RUN_LOOP} | 200 |" in trio
    assert "| ours | 100 |" in trio
    top = top_functions(attribution, 400.0, 5, layer="ours")
    assert top[2] == "| ours | `plano_trio/gateway/pipeline.py:handle` | 100 | 25.0% |"
