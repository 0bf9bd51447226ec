"""The http2 bench scenario's arithmetic and the h2 load generator's request framing (no network)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench.h2load import request_headers
from bench.http2_scenario import H1, H2_MANY, H2_ONE, SDK_H1, SDK_H2, SETTINGS, cheapest, within_round_ratios
from bench.loadgen import Request


def _rec(
    client: str, cpu_us: float, *, target: str = "plano-trio", rnd: int = 0, **extra: Any
) -> dict[str, Any]:
    return {
        "target": target,
        "load": "json",
        "c": 32,
        "round": rnd,
        "client": client,
        "cpu_us": cpu_us,
        **extra,
    }


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        # each h2 row over its own library's h1 row
        (
            [_rec(H1, 1000), _rec(H2_ONE, 1200), _rec(H2_MANY, 900), _rec(SDK_H1, 2000), _rec(SDK_H2, 1000)],
            [math.nan, 1.2, 0.9, math.nan, 0.5],
        ),
        # within the same round and target only
        (
            [
                _rec(H1, 1000, rnd=0),
                _rec(H1, 2000, rnd=1),
                _rec(H2_ONE, 3000, rnd=1),
                _rec(H2_ONE, 500, rnd=0),
            ],
            [math.nan, math.nan, 1.5, 0.5],
        ),
        ([_rec(H1, 1000, target="floor"), _rec(H2_ONE, 1200)], [math.nan, math.nan]),  # no base: no ratio
        ([_rec(H1, math.nan), _rec(H2_ONE, 1200)], [math.nan, math.nan]),  # a failed base run
    ],
)
def test_within_round_ratios(records: list[dict[str, Any]], expected: list[float]) -> None:
    within_round_ratios(records)
    got = [r["x_cpu_h1"] for r in records]
    assert [math.isnan(g) for g in got] == [math.isnan(e) for e in expected]
    assert [g for g in got if not math.isnan(g)] == pytest.approx([e for e in expected if not math.isnan(e)])


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([_rec(H1, 1000), _rec(H2_ONE, 900), _rec(H2_MANY, 950)], H2_ONE),
        ([_rec(H1, 1000), _rec(H2_ONE, 900, errors=3)], H1),  # a setting that failed is not recommended
        ([_rec(H1, 1000), _rec(H2_ONE, math.nan)], H1),
        ([_rec(H1, 1000, target="floor"), _rec(H2_ONE, 1200)], H2_ONE),  # per target
        ([_rec(H1, 1000, c=1), _rec(H2_ONE, 1200)], H2_ONE),  # per concurrency
    ],
)
def test_cheapest(rows: list[dict[str, Any]], expected: str) -> None:
    assert cheapest(rows, "plano-trio", "json", 32)["client"] == expected


def test_cheapest_among_given_clients() -> None:
    rows = [_rec(H1, 1000), _rec(SDK_H1, 800)]
    assert cheapest(rows, "plano-trio", "json", 32)["client"] == SDK_H1
    assert cheapest(rows, "plano-trio", "json", 32, [H1, H2_ONE])["client"] == H1


def test_cheapest_of_nothing() -> None:
    assert cheapest([_rec(H1, 1000, errors=1)], "plano-trio", "json", 32) == {}


@pytest.mark.parametrize(
    ("key", "concurrency", "connections", "applies"),
    [
        (H1, 1, 1, True),
        (H1, 32, 32, True),
        (H2_ONE, 32, 1, True),
        (H2_MANY, 32, 32, True),
        (H2_MANY, 1, 1, False),  # the same as H2_ONE at c=1: run once
        (SDK_H1, 32, 32, True),
        (SDK_H2, 32, 1, True),
        (SDK_H2, 1, 1, True),
    ],
)
def test_settings(key: str, concurrency: int, connections: int, applies: bool) -> None:
    setting = next(s for s in SETTINGS if s.key == key)
    assert setting.connections(concurrency) == connections
    assert setting.applies(concurrency) is applies
    base = next(s for s in SETTINGS if s.key == setting.base)
    assert (base.http2, base.library) == (False, setting.library)  # h2 rows divide by the same library's h1


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (
            Request(
                "127.0.0.1",
                8080,
                "/v1/chat/completions",
                b"{}",
                False,
                headers=(("Authorization", "Bearer k"),),
            ),
            [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":authority", b"127.0.0.1:8080"),
                (b":path", b"/v1/chat/completions"),
                (b"content-type", b"application/json"),
                (b"content-length", b"2"),
                (b"authorization", b"Bearer k"),  # HTTP/2 header names are lower-case
            ],
        ),
        (
            Request("127.0.0.1", 1, "/healthz", b"", False, method="GET"),
            [
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"127.0.0.1:1"),
                (b":path", b"/healthz"),
            ],
        ),
    ],
)
def test_request_headers(request_: Request, expected: list[tuple[bytes, bytes]]) -> None:
    assert request_headers(request_) == expected
