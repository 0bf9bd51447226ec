"""Routing preferences in a request body, read as Plano's extract_routing_policy reads them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.config.schema import RoutingPreference
from plano_trio.router.inline import (
    InlinePreferencesError,
    extract_inline_preferences,
    parse_inline_preferences,
)


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], **extra}


def entry(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "coding",
        "description": "code generation, writing functions, debugging",
        "models": ["openai/gpt-4o", "openai/gpt-4o-mini"],
    }
    return {**base, **fields}


CODING = RoutingPreference(
    name="coding",
    description="code generation, writing functions, debugging",
    models=("openai/gpt-4o", "openai/gpt-4o-mini"),
)

EXTRACT_CASES: list[tuple[str, dict[str, Any], tuple[RoutingPreference, ...] | None]] = [
    ("no policy", body(), None),
    (
        "preferences with a policy",
        body(
            routing_preferences=[
                {
                    "name": "code generation",
                    "description": "generate new code",
                    "models": ["openai/gpt-4o", "openai/gpt-4o-mini"],
                    "selection_policy": {"prefer": "fastest"},
                }
            ]
        ),
        (
            RoutingPreference(
                name="code generation",
                description="generate new code",
                models=("openai/gpt-4o", "openai/gpt-4o-mini"),
                prefer="fastest",
            ),
        ),
    ),
    ("prefer none", body(routing_preferences=[entry(selection_policy={"prefer": "none"})]), (CODING,)),
    (
        "prefer null defaults to none",
        body(routing_preferences=[entry(selection_policy={"prefer": None})]),
        (CODING,),
    ),
    ("selection_policy missing defaults to none", body(routing_preferences=[entry()]), (CODING,)),
    (
        "prefer empty defaults to none",
        body(routing_preferences=[entry(selection_policy={"prefer": ""})]),
        (CODING,),
    ),
    ("prefer missing in the policy", body(routing_preferences=[entry(selection_policy={})]), (CODING,)),
    (
        "cheapest",
        body(routing_preferences=[entry(selection_policy={"prefer": "cheapest"})]),
        (
            RoutingPreference(
                name=CODING.name, description=CODING.description, models=CODING.models, prefer="cheapest"
            ),
        ),
    ),
    (
        "unknown keys are ignored",
        body(routing_preferences=[entry(extra=1, selection_policy={"x": 2})]),
        (CODING,),
    ),
    ("an empty list overrides with no routes", body(routing_preferences=[]), ()),
    (
        "empty models are allowed",
        body(routing_preferences=[entry(models=[])]),
        (RoutingPreference(name=CODING.name, description=CODING.description, models=()),),
    ),
    ("the request is not an object", ["routing_preferences"], None),  # type: ignore[list-item]
]


@pytest.mark.parametrize(
    ("request_json", "expected"), [c[1:] for c in EXTRACT_CASES], ids=[c[0] for c in EXTRACT_CASES]
)
def test_extract_inline_preferences(
    request_json: dict[str, Any], expected: tuple[RoutingPreference, ...] | None
) -> None:
    assert extract_inline_preferences(request_json) == expected
    assert extract_inline_preferences(request_json, strict=True) == expected


BAD_CASES: list[tuple[str, Any, str]] = [
    ("null", None, "routing_preferences must be a list"),
    ("an object", {"name": "x"}, "routing_preferences must be a list"),
    ("a string", "coding", "routing_preferences must be a list"),
    ("an entry that is not an object", [entry(), 3], "routing_preferences[1] must be an object"),
    ("name missing", [{"description": "d", "models": []}], "routing_preferences[0].name must be a string"),
    ("name not a string", [entry(name=5)], "routing_preferences[0].name must be a string"),
    (
        "description missing",
        [{"name": "n", "models": []}],
        "routing_preferences[0].description must be a string",
    ),
    (
        "models missing",
        [{"name": "n", "description": "d"}],
        "routing_preferences[0].models must be a list of strings",
    ),
    ("models a string", [entry(models="gpt-4o")], "routing_preferences[0].models must be a list of strings"),
    (
        "a model not a string",
        [entry(models=["a", None])],
        "routing_preferences[0].models must be a list of strings",
    ),
    (
        "selection_policy null",
        [entry(selection_policy=None)],
        "routing_preferences[0].selection_policy must be an object",
    ),
    ("selection_policy a string", [entry(selection_policy="fastest")], "selection_policy must be an object"),
    (
        "unknown prefer",
        [entry(selection_policy={"prefer": "best"})],
        "prefer must be cheapest, fastest or none",
    ),
    (
        "prefer not a string",
        [entry(selection_policy={"prefer": 1})],
        "prefer must be cheapest, fastest or none",
    ),
    ("prefer case matters", [entry(selection_policy={"prefer": "Cheapest"})], "prefer must be"),
]


@pytest.mark.parametrize(("value", "message"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_unreadable_preferences(value: Any, message: str) -> None:
    request = body(routing_preferences=value)
    # Plano logs and routes with the configuration: no inline preferences.
    assert extract_inline_preferences(request) is None
    with pytest.raises(InlinePreferencesError) as caught:
        extract_inline_preferences(request, strict=True)
    assert message in caught.value.message
    with pytest.raises(InlinePreferencesError):
        parse_inline_preferences(value)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)
_names = st.sampled_from(["name", "description", "models", "selection_policy", "prefer", "x"])
_near = st.recursive(
    st.none() | st.sampled_from(["cheapest", "fastest", "none", "", "a"]) | st.integers(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_names, children, max_size=5),
    max_leaves=25,
)


@given(st.one_of(_json, _near))
def test_any_value_parses_or_raises_the_typed_error(value: Any) -> None:
    try:
        preferences = parse_inline_preferences(value)
    except InlinePreferencesError:
        assert extract_inline_preferences({"routing_preferences": value}) is None
        return
    assert all(isinstance(p, RoutingPreference) for p in preferences)
    assert all(p.prefer in (None, "cheapest", "fastest") for p in preferences)
    assert extract_inline_preferences({"routing_preferences": value}) == preferences


def test_long_lists_are_linear() -> None:
    many = [entry(name=f"r{i}") for i in range(50_000)]
    assert len(parse_inline_preferences(many)) == 50_000
