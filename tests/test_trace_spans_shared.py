"""The request, routing and upstream spans with their shared attributes: every attribute Plano's tools
read is there once, with the value the last writer gave it (as when each span was one mapping)."""

from __future__ import annotations

from typing import Any

import pytest

from plano_trio.apis.kind import Api
from plano_trio.apis.openai_chat import Usage
from plano_trio.gateway import trace_spans
from plano_trio.gateway.context import RequestContext
from plano_trio.gateway.observe import Outcome
from plano_trio.metrics import labels
from plano_trio.telemetry import names, spans
from plano_trio.telemetry.record import RequestTrace, RootSpan, SpanRecord

BODY = b'{"model":"m","temperature":0.7,"messages":[{"role":"user","content":"hello there"}]}'


def merged(span: RootSpan | SpanRecord) -> dict[str, Any]:
    """A span's attributes as the exporter writes them: shared ones, then its own, no key twice."""
    assert not span.shared or span.shared.keys().isdisjoint(span.attributes)
    return {**(span.shared or {}), **span.attributes}


def traced_request(
    custom: dict[str, str], stage: dict[str, Any], outcome: Outcome
) -> tuple[RootSpan, list[SpanRecord]]:
    got: list[tuple[RequestTrace, RootSpan]] = []
    trace = RequestTrace(lambda t, r: got.append((t, r)), 5, None, None)
    trace.custom = custom
    trace.attributes.update(stage)
    trace.request = (Api.CHAT, BODY)
    trace_spans.routing(trace, trace.begin(), "/v1/chat/completions", "m", "m", None)
    spans.upstream_attempt(
        trace,
        9,
        1.0,
        scheme="https",
        authority="api.example",
        target=b"/v1/chat/completions?key=secret",
        provider="openai",
        status=outcome.upstream_status,
        request_size=3,
        response_size=4,
        request_id="rid",
        error=None,
    )
    ctx = RequestContext("POST", "/v1/chat/completions", [], b"rid", None, None, 1.0, trace=trace)  # type: ignore[arg-type]
    trace_spans.finish(trace, ctx, outcome, labels.LLM_CHAT, 2.0)
    assert len(got) == 1
    return got[0][1], got[0][0].spans


OK = Outcome(200, "ok", "m", "openai/m", True, 1.5, Usage(1, 2, 3), upstream_status=200, upstream_started=1.2)

COMMON = {
    names.COMPONENT: "llm",
    names.REQUEST_ID: "rid",
    names.HTTP_METHOD: "POST",
    names.HTTP_PATH: "/v1/chat/completions",
    names.SERVICE_OVERRIDE: names.LLM,
    names.MODEL_REQUESTED: "m",
    names.LLM_IS_STREAMING: True,
    names.LLM_MODEL: "openai/m",
    names.LLM_PROVIDER: "openai",
    names.HTTP_STATUS_CODE: 200,
    names.LLM_TEMPERATURE: "0.7",
    names.LLM_USER_MESSAGE_PREVIEW: "hello there",
}


STAGE = {names.LLM_MODEL: "answered", names.SESSION_ID: "s"}
"""What stages note on the request span: the model the provider says it ran, the session."""


@pytest.mark.parametrize(
    ("custom", "stage", "expected"),
    [
        ({}, {}, {}),
        ({}, STAGE, STAGE),
        ({}, {names.COMPONENT: "stage"}, {names.COMPONENT: "stage"}),  # a stage wrote a shared key later
        ({"team": "x"}, {}, {"team": "x"}),
        (  # custom attributes override the common ones before them, not the ones after
            {names.COMPONENT: "mine", names.SERVICE_OVERRIDE: "o", names.LLM_PROVIDER: "p"},
            {},
            {names.COMPONENT: "mine"},
        ),
    ],
)
def test_the_request_span_has_each_attribute_once_with_its_last_value(
    custom: dict[str, str], stage: dict[str, Any], expected: dict[str, Any]
) -> None:
    for _ in range(2):  # the second time with the shared attributes remembered
        root, _children = traced_request(custom, stage, OK)
        attributes = merged(root)
        overridden = {key: value for key, value in expected.items() if key in COMMON}
        assert {key: attributes[key] for key in COMMON} == {**COMMON, **overridden}
        assert {key: attributes[key] for key in expected} == expected
        assert root.name == "POST /v1/chat/completions m -> openai/m" and root.service == names.LLM


def test_the_span_name_follows_the_models() -> None:
    same = OK._replace(model="openai/m")
    assert traced_request({}, {}, same)[0].name == "POST /v1/chat/completions openai/m"
    assert traced_request({}, {}, OK._replace(upstream=None))[0].name == names.LLM_SPAN
    root = traced_request({}, {}, OK._replace(model=None, upstream="nomodel"))[0]
    assert names.LLM_PROVIDER not in merged(root) and names.MODEL_REQUESTED not in merged(root)


def test_routing_and_upstream_spans_share_all_but_what_changes() -> None:
    _, (routing, upstream) = traced_request({}, {}, OK)
    assert routing.shared is not None and set(routing.attributes) == {names.ROUTING_DETERMINATION_MS}
    assert merged(routing) == {
        names.COMPONENT: "routing",
        names.HTTP_METHOD: "POST",
        names.HTTP_TARGET: "/v1/chat/completions",
        names.MODEL_REQUESTED: "m",
        names.MODEL_ALIAS_RESOLVED: "m",
        names.ROUTE_SELECTED_MODEL: "none",
        names.ROUTING_DETERMINATION_MS: routing.attributes[names.ROUTING_DETERMINATION_MS],
        names.SERVICE_OVERRIDE: names.ROUTING,
    }
    assert upstream.name == "POST api.example/v1/chat/completions" and upstream.kind == "client"
    assert merged(upstream) == {
        names.HTTP_METHOD: "POST",
        names.HTTP_URL: "https://api.example/v1/chat/completions",  # no query: it may hold a key
        names.HTTP_TARGET: "/v1/chat/completions",
        "upstream_cluster": "openai",
        names.COMPONENT: "proxy",
        "request_size": 3,
        "response_size": 4,
        "guid:x-request-id": "rid",
        names.HTTP_STATUS_CODE: 200,
    }
    _, (_, again) = traced_request({}, {}, OK)
    assert again.shared is upstream.shared  # made once, the same mapping each time
