"""Reading the router's answer, picking the route and ranking its models (Plano's cases as tables)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.config.schema import RoutingPreference
from plano_trio.router.choice import (
    RouterReplyError,
    lookup_with_bare_fallback,
    parse_route_content,
    parse_router_reply,
    pick_route,
    rank_models,
    router_error_message,
    upstream_error_message,
)
from plano_trio.router.rates import ModelRates


def completion(content: Any, **message: Any) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "Plano-Orchestrator",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, **message}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()


# -- the content: Plano's parse_response cases ---------------------------------------------------

CONTENT_CASES = [
    ('{"route": ["Image generation"]}', ["Image generation"]),
    ('{"route": ["Image generation", "Code generation"]}', ["Image generation", "Code generation"]),
    ('{"route": []}', []),
    ('{"route": null}', []),
    ("{}", []),
    ("", []),
    ("{'route': ['Image generation']}\\n", ["Image generation"]),
    ('{"route": ["", "a", ""]}', ["a"]),
    ('{"route": ["Unknown route"]}', ["Unknown route"]),  # unknown names are pick_route's business
    ('  {"route": ["a"], "reason": "x", "reason": "y"}\n', ["a"]),
    ('{"route": ["a\\\\nb"]}', ["a\x08"]),  # the backslash-n pair goes first: "a\\b" reads as a backspace
]


@pytest.mark.parametrize(("content", "expected"), CONTENT_CASES)
def test_parse_route_content(content: str, expected: list[str]) -> None:
    assert parse_route_content(content) == expected
    assert parse_router_reply(completion(content)) == expected


BAD_CONTENT = [
    '{"route": ["route1"',
    '{"route": "a"}',
    '{"route": [1]}',
    '{"route": {"a": 1}}',
    '["a"]',
    '"route"',
    "{'route': [\"user's question\"]}",  # the quote fix breaks an apostrophe, as in Plano
    '{"route": ["a"]} trailing',
    '{"route": ["a"], "route": ["b"]}',
    '{"route": [NaN]}',
    "[" * 100_000,
]


@pytest.mark.parametrize("content", BAD_CONTENT, ids=range(len(BAD_CONTENT)))
def test_bad_content_is_a_typed_error(content: str) -> None:
    with pytest.raises(RouterReplyError):
        parse_router_reply(completion(content))


# -- the completion around it ----------------------------------------------------------------------

REPLY_CASES: list[tuple[str, bytes, list[str]]] = [
    ("no choices", json.dumps({"choices": []}).encode(), []),
    ("null content", completion(None), []),
    ("content missing", json.dumps({"choices": [{"message": {"role": "assistant"}}]}).encode(), []),
    (
        "only what is read is required",
        json.dumps({"choices": [{"message": {"content": '{"route":["x"]}'}}]}).encode(),
        ["x"],
    ),
    ("a BOM is skipped", b"\xef\xbb\xbf" + completion('{"route": ["x"]}'), ["x"]),
    (
        "invalid UTF-8 is replaced, not fatal",
        completion('{"route": ["x"]}').replace(b"chatcmpl", b"\xffchat"),
        ["x"],
    ),
    (
        "later choices are ignored",
        json.dumps({"choices": [{"message": {"content": ""}}, {"message": {"content": 5}}]}).encode(),
        [],
    ),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in REPLY_CASES], ids=[c[0] for c in REPLY_CASES])
def test_parse_router_reply(body: bytes, expected: list[str]) -> None:
    assert parse_router_reply(body) == expected


BAD_REPLIES = [
    b"",
    b"not json",
    b"[]",
    b'{"choices": null}',
    b'{"choices": {}}',
    b'{"choices": [1]}',
    b'{"choices": [{"message": "x"}]}',
    b'{"choices": [{"message": {"content": ["x"]}}]}',
    b'{"choices": [], "choices": []}',
    b'{"choices": [{"message": {"content": "{}"}}], "x": Infinity}',
    b'{"choices": [' * 50_000,
]


@pytest.mark.parametrize("body", BAD_REPLIES, ids=range(len(BAD_REPLIES)))
def test_bad_reply_is_a_typed_error(body: bytes) -> None:
    with pytest.raises(RouterReplyError) as caught:
        parse_router_reply(body)
    assert caught.value.message


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_the_typed_error(body: bytes) -> None:
    try:
        names = parse_router_reply(body)
    except RouterReplyError:
        return
    assert all(isinstance(name, str) and name for name in names)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=15),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)


@given(_json)
def test_any_content_parses_or_raises_the_typed_error(value: Any) -> None:
    for content in (json.dumps(value), json.dumps({"route": value}), str(value)):
        try:
            names = parse_router_reply(completion(content))
        except RouterReplyError:
            continue
        assert all(isinstance(name, str) and name for name in names)


def test_reply_parsing_is_linear() -> None:
    names = [f"route-{i}" for i in range(100_000)]
    body = completion(json.dumps({"route": names}))
    started = time.perf_counter()
    assert parse_router_reply(body) == names
    assert time.perf_counter() - started < 2.0


# -- non-2xx answers -------------------------------------------------------------------------------

ERROR_CASES = [
    (
        b'{"error":{"code":400,"message":"This model\'s maximum context length is 32768 tokens.",'
        b'"param":"input_tokens","type":"BadRequestError"}}',
        "This model's maximum context length is 32768 tokens. (param=input_tokens) [type=BadRequestError]",
    ),
    (b'{"error":{"message":"something broke"}}', "something broke"),
    (b'{"error":{"message":"m","param":null,"type":"t"}}', "m [type=t]"),
    (b"<html><body>502 Bad Gateway</body></html>", "<html><body>502 Bad Gateway</body></html>"),
    (b'{"error":{"message":"m","param":3}}', '{"error":{"message":"m","param":3}}'),
    (b'{"error":"flat"}', '{"error":"flat"}'),
    (b"", ""),
    (b"x" * 1536, "x" * 512),
    ("é".encode() * 512, "é" * 256),
    (b"a" + "é".encode() * 512, "a" + "é" * 255),
]


@pytest.mark.parametrize(("body", "expected"), ERROR_CASES, ids=range(len(ERROR_CASES)))
def test_upstream_error_message(body: bytes, expected: str) -> None:
    assert upstream_error_message(body) == expected


def test_router_error_message() -> None:
    assert (
        router_error_message(503, b'{"error":{"message":"overloaded"}}')
        == "Upstream returned 503: overloaded"
    )


@given(st.binary(max_size=2000))
def test_error_message_never_fails_and_is_bounded(body: bytes) -> None:
    message = upstream_error_message(body)
    if not body.lstrip().startswith(b"{"):
        assert len(message.encode("utf-8", "surrogatepass")) <= 512


# -- pick_route ------------------------------------------------------------------------------------


def pref(name: str, *models: str, prefer: str | None = None, description: str = "d") -> RoutingPreference:
    return RoutingPreference(name=name, description=description, models=models, prefer=prefer)


CODE = pref("code", "a/m1", "b/m2")
CHAT = pref("chat", "c/m3")

PICK_CASES: list[tuple[str, list[str], list[RoutingPreference], RoutingPreference | None]] = [
    ("first match wins", ["chat", "code"], [CODE, CHAT], CHAT),
    ("unknown names are skipped", ["nope", "code"], [CODE, CHAT], CODE),
    ("empty names are skipped", ["", "code"], [CODE, CHAT], CODE),
    ("nothing matches", ["nope"], [CODE, CHAT], None),
    ("no names", [], [CODE, CHAT], None),
    ("no preferences", ["code"], [], None),
    ("case matters", ["Code"], [CODE], None),
    (
        "a repeated name: the last definition",
        ["code"],
        [CODE, pref("code", "z/late")],
        pref("code", "z/late"),
    ),
]


@pytest.mark.parametrize(
    ("names", "preferences", "expected"), [c[1:] for c in PICK_CASES], ids=[c[0] for c in PICK_CASES]
)
def test_pick_route(
    names: list[str], preferences: list[RoutingPreference], expected: RoutingPreference | None
) -> None:
    assert pick_route(names, preferences) == expected


# -- rank_models -----------------------------------------------------------------------------------

RATES = {
    "gpt-4o": ModelRates(2.5, 10.0),
    "gpt-4o-mini": ModelRates(0.15, 0.6),
    "openai/gpt-4o": ModelRates(2.5, 10.0),
    "nan-model": ModelRates(math.nan, 1.0),
}
LATENCY = {"gpt-4o": 200.0, "claude-sonnet": 120.0, "slow": math.inf, "broken": math.nan}

RANK_CASES: list[tuple[str, RoutingPreference, list[str]]] = [
    ("cheapest", pref("r", "gpt-4o", "gpt-4o-mini", prefer="cheapest"), ["gpt-4o-mini", "gpt-4o"]),
    ("fastest", pref("r", "gpt-4o", "claude-sonnet", prefer="fastest"), ["claude-sonnet", "gpt-4o"]),
    ("no data keeps order", pref("r", "model-a", "model-b", prefer="cheapest"), ["model-a", "model-b"]),
    (
        "partial data: missing last",
        pref("r", "x", "gpt-4o-mini", "gpt-4o", "y", prefer="cheapest"),
        ["gpt-4o-mini", "gpt-4o", "x", "y"],
    ),
    ("none keeps order", pref("r", "gpt-4o", "gpt-4o-mini", prefer="none"), ["gpt-4o", "gpt-4o-mini"]),
    ("absent keeps order", pref("r", "gpt-4o", "gpt-4o-mini"), ["gpt-4o", "gpt-4o-mini"]),
    (
        "unknown policy keeps order",
        pref("r", "gpt-4o", "gpt-4o-mini", prefer="random"),
        ["gpt-4o", "gpt-4o-mini"],
    ),
    ("NaN price is no data", pref("r", "nan-model", "gpt-4o", prefer="cheapest"), ["gpt-4o", "nan-model"]),
    (
        "NaN and inf latency",
        pref("r", "broken", "slow", "gpt-4o", prefer="fastest"),
        ["gpt-4o", "slow", "broken"],
    ),
    ("ties keep order", pref("r", "openai/gpt-4o", "gpt-4o", prefer="cheapest"), ["openai/gpt-4o", "gpt-4o"]),
    (
        "full names only",
        pref("r", "other/gpt-4o-mini", "gpt-4o", prefer="cheapest"),
        ["gpt-4o", "other/gpt-4o-mini"],
    ),
    ("no models", pref("r", prefer="cheapest"), []),
]


@pytest.mark.parametrize(
    ("preference", "expected"), [c[1:] for c in RANK_CASES], ids=[c[0] for c in RANK_CASES]
)
def test_rank_models(preference: RoutingPreference, expected: list[str]) -> None:
    assert rank_models(preference, RATES.get, LATENCY.get) == expected


@given(
    st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=8),
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.floats(allow_infinity=True, allow_nan=True)),
    st.sampled_from(["cheapest", "fastest", "none", None]),
)
def test_ranking_is_a_permutation(models: list[str], metric: dict[str, float], prefer: str | None) -> None:
    preference = pref("r", *models, prefer=prefer)
    ranked = rank_models(
        preference, lambda m: None if m not in metric else ModelRates(metric[m], 0.0), metric.get
    )
    assert sorted(ranked) == sorted(models)


LOOKUP_CASES = [
    ("openai/gpt-4o", 1),
    ("custom/gpt-4o-mini", 2),
    ("gpt-4o-mini", 2),
    ("a/b/gpt-4o", 3),
    ("a/gpt-4o/x", None),
    ("nothing", None),
]


@pytest.mark.parametrize(("model", "expected"), LOOKUP_CASES)
def test_lookup_with_bare_fallback(model: str, expected: int | None) -> None:
    table = {"openai/gpt-4o": 1, "gpt-4o-mini": 2, "b/gpt-4o": 3}  # "a/b/gpt-4o" falls back to "b/gpt-4o"
    assert lookup_with_bare_fallback(table, model) == expected
