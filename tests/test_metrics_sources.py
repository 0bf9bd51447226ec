"""model_metrics_sources, pure: config checks, the three feed formats, and the lookups ranking uses.

The catalog documents and expected prices are the fixtures of Plano's own
tests (`router/model_metrics.rs`), kept as data.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio.config.errors import Report
from plano_trio.config.metrics_sources import (
    DIGITALOCEAN_CATALOG_URL,
    MODELS_DEV_URL,
    CostSource,
    LatencySource,
    MetricsSources,
    build_metrics_sources,
    check_selection_policies,
)
from plano_trio.config.shape import INVALID
from plano_trio.router.metrics import (
    EMPTY_SNAPSHOT,
    FeedError,
    MetricsSnapshot,
    models_without_data,
    parse_cost,
    parse_digitalocean,
    parse_models_dev,
    parse_prometheus,
)
from plano_trio.router.rates import ModelRates

# --- config ---------------------------------------------------------------------------------------------


def _messages(report: Report) -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in report.problems]


def test_cost_source_defaults_and_aliases() -> None:
    report = Report()
    sources = build_metrics_sources(
        [
            {
                "type": "cost",
                "provider": "models.dev",
                "url": "https://models.dev/api.json",
                "refresh_interval": 3600,
                "model_aliases": {"openai/gpt-oss-120b": "openai/gpt-4o"},
            }
        ],
        report,
    )
    assert _messages(report) == []
    assert sources == MetricsSources(
        cost=CostSource(
            provider="models.dev",
            url="https://models.dev/api.json",
            refresh_interval_s=3600,
            model_aliases=(("openai/gpt-oss-120b", "openai/gpt-4o"),),
        )
    )


@pytest.mark.parametrize(
    ("provider", "url"), [("digitalocean", DIGITALOCEAN_CATALOG_URL), ("models.dev", MODELS_DEV_URL)]
)
def test_cost_source_without_url_reads_the_public_catalog(provider: str, url: str) -> None:
    report = Report()
    sources = build_metrics_sources([{"type": "cost", "provider": provider}], report)
    assert sources.cost == CostSource(provider=provider, url=url)  # type: ignore[arg-type]
    assert sources.latency is None
    assert _messages(report) == []


def test_latency_source() -> None:
    report = Report()
    raw = {
        "type": "latency",
        "provider": "prometheus",
        "url": "http://prom:9090",
        "query": "q",
        "refresh_interval": 60,
    }
    sources = build_metrics_sources([raw], report)
    assert sources == MetricsSources(
        latency=LatencySource(url="http://prom:9090", query="q", refresh_interval_s=60)
    )
    assert not sources.empty


def test_one_source_per_type_first_kept() -> None:
    report = Report()
    cost = {"type": "cost", "provider": "digitalocean"}
    latency = {"type": "latency", "provider": "prometheus", "url": "http://p", "query": "q"}
    sources = build_metrics_sources(
        [cost, latency, {"type": "cost", "provider": "models.dev"}, INVALID, latency], report
    )
    assert _messages(report) == [
        ("model_metrics_sources[2]", "only one cost metrics source is allowed"),
        ("model_metrics_sources[4]", "only one latency metrics source is allowed"),
    ]
    assert sources.cost is not None and sources.cost.provider == "digitalocean"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"type": "cost", "provider": "models.dev", "url": "ftp://x/y"},
            "must be an http:// or https:// or file://",
        ),
        ({"type": "cost", "provider": "models.dev", "url": "https:///api.json"}, "must name a host"),
        (
            {"type": "cost", "provider": "models.dev", "url": "file://host/p"},
            "a file:// URL names an absolute path",
        ),
        ({"type": "cost", "provider": "models.dev", "url": "http://h:99999/"}, "must be an http"),
        (
            {"type": "latency", "provider": "prometheus", "url": "file:///p", "query": "q"},
            "must be an http://",
        ),
    ],
)
def test_unusable_urls_fail_at_load(entry: dict[str, Any], message: str) -> None:
    report = Report()
    sources = build_metrics_sources([entry], report)
    assert next(m for _, m in _messages(report)).startswith(message)
    assert not sources.empty  # kept, so routes that need it are not reported twice


@pytest.mark.parametrize(
    "url",
    ["http://prom:9090", "https://h/api.json?x=1", "file:///etc/catalog.json", "file://localhost/c.json"],
)
def test_usable_urls(url: str) -> None:
    report = Report()
    build_metrics_sources([{"type": "cost", "provider": "digitalocean", "url": url}], report)
    assert _messages(report) == []


def _pref(name: str, prefer: str | None) -> tuple[tuple[str | int, ...], dict[str, Any]]:
    pref: dict[str, Any] = {"name": name, "description": "d", "models": ["a/b"]}
    if prefer is not None:
        pref["selection_policy"] = {"prefer": prefer}
    return ("routing_preferences", 0), pref


@pytest.mark.parametrize(
    ("prefer", "sources", "kind"),
    [
        ("cheapest", MetricsSources(), "cost"),
        ("fastest", MetricsSources(), "latency"),
        ("cheapest", MetricsSources(latency=LatencySource(url="http://p", query="q")), "cost"),
        ("fastest", MetricsSources(cost=CostSource(provider="models.dev", url=MODELS_DEV_URL)), "latency"),
        ("cheapest", MetricsSources(cost=CostSource(provider="models.dev", url=MODELS_DEV_URL)), None),
        ("fastest", MetricsSources(latency=LatencySource(url="http://p", query="q")), None),
        ("none", MetricsSources(), None),
        (None, MetricsSources(), None),
    ],
)
def test_prefer_needs_a_source(prefer: str | None, sources: MetricsSources, kind: str | None) -> None:
    report = Report()
    check_selection_policies([_pref("code", prefer)], sources, report)
    if kind is None:
        assert _messages(report) == []
    else:
        assert _messages(report) == [
            (
                "routing_preferences[0].selection_policy.prefer",
                f"routing_preferences route 'code' uses prefer: {prefer} but no {kind} metrics source is "
                f"configured — add a {kind} metrics source to model_metrics_sources",
            )
        ]


# --- models.dev -----------------------------------------------------------------------------------------

MODELS_DEV = b"""{
    "anthropic": {
        "models": {
            "claude-opus-4-5": {"cost": {"input": 5.0, "output": 25.0, "cache_read": 0.5}}
        }
    },
    "groq": {
        "models": {
            "llama-3.3-70b-versatile": {"cost": {"input": 0.59, "output": 0.79}},
            "whisper-large-v3-turbo": {"cost": null}
        }
    }
}"""


def test_models_dev_composes_provider_keys_and_registers_bare_ids() -> None:
    rates = parse_models_dev(MODELS_DEV)
    assert rates["anthropic/claude-opus-4-5"] == ModelRates(5.0, 25.0, 0.5)
    assert rates["anthropic/claude-opus-4-5"].total_per_m == 30.0
    assert rates["groq/llama-3.3-70b-versatile"].total_per_m == 1.38
    assert rates["groq/llama-3.3-70b-versatile"].cached_input_per_m is None
    assert rates["claude-opus-4-5"].total_per_m == 30.0
    assert "groq/whisper-large-v3-turbo" not in rates
    assert "whisper-large-v3-turbo" not in rates


def test_models_dev_aliases_rename_the_full_key() -> None:
    body = b'{"openai": {"models": {"gpt-oss-120b": {"cost": {"input": 1.0, "output": 2.0}}}}}'
    rates = parse_models_dev(body, {"openai/gpt-oss-120b": "openai/gpt-4o"})
    assert rates["openai/gpt-4o"].total_per_m == 3.0
    assert "openai/gpt-oss-120b" not in rates
    assert rates["gpt-oss-120b"].total_per_m == 3.0  # the bare fallback keeps the catalog id


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # a bare id is taken by the first provider that lists it; full names are all kept
        (
            {
                "a": {"models": {"m": {"cost": {"input": 1, "output": 1}}}},
                "b": {"models": {"m": {"cost": {"input": 9, "output": 9}}}},
            },
            {"a/m": 2.0, "m": 2.0, "b/m": 18.0},
        ),
        # a provider without models, a model without cost, a cost without output
        ({"p": {"name": "P"}, "q": {"models": {"x": {}, "y": {"cost": {"input": 1}}}}}, {}),
        # unknown fields are skipped, integers are prices too
        (
            {
                "p": {
                    "id": "p",
                    "env": ["K"],
                    "models": {
                        "m": {"limit": {"context": 1}, "cost": {"input": 2, "output": 3, "reasoning": 9}}
                    },
                }
            },
            {"p/m": 5.0, "m": 5.0},
        ),
        # a model key with a slash (aggregators) keeps it whole
        (
            {"openrouter": {"models": {"openai/gpt-4o": {"cost": {"input": 2.5, "output": 10}}}}},
            {"openrouter/openai/gpt-4o": 12.5, "openai/gpt-4o": 12.5},
        ),
        ({}, {}),
    ],
)
def test_models_dev_table(body: dict[str, Any], expected: dict[str, float]) -> None:
    rates = parse_models_dev(json.dumps(body).encode())
    assert {key: r.total_per_m for key, r in rates.items()} == expected


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"null",
        b'{"p": []}',
        b'{"p": {"models": null}}',
        b'{"p": {"models": {"m": {"cost": {"input": "1", "output": 2}}}}}',
        b'{"p": {"models": {"m": {"cost": {"input": true, "output": 2}}}}}',
        b'{"p": {"models": {"m": {"cost": {"input": 1e999, "output": 2}}}}}',
        b'{"p": {"models": {"m": {"cost": {"input": 1, "output": 2}}}}',
        b'{"p": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
        b"\xff\xfe",
    ],
)
def test_models_dev_wrong_shapes(body: bytes) -> None:
    with pytest.raises(FeedError, match=r"^models.dev catalog: "):
        parse_models_dev(body)


# --- DigitalOcean ---------------------------------------------------------------------------------------

DIGITALOCEAN = b"""{
    "data": [
        {
            "model_id": "digitalocean/anthropic-claude-4.6-sonnet",
            "pricing": {
                "input_price_per_million": 3e-6,
                "output_price_per_million": 15e-6,
                "cache_read_input_price_per_million": 3e-7
            }
        },
        {
            "model_id": "digitalocean/openai-gpt-4o",
            "pricing": {"input_price_per_million": 2.5e-6, "output_price_per_million": 10e-6}
        }
    ]
}"""

DIGITALOCEAN_CACHE_NAMES = b"""{
    "data": [
        {"model_id": "kimi-k2.5", "pricing": {"input_price_per_million": 3.75e-7,
            "output_price_per_million": 2.025e-6, "cache_read_input_price_per_million": 2.03e-7,
            "input_cache_read": 2.03e-7}},
        {"model_id": "glm-5", "pricing": {"input_price_per_million": 6e-7,
            "output_price_per_million": 2.2e-6, "input_cache_read": 1.1e-7}},
        {"model_id": "legacy-model", "pricing": {"input_price_per_million": 5e-7,
            "output_price_per_million": 1e-6}}
    ]
}"""


def test_digitalocean_scales_per_token_to_per_million() -> None:
    rates = parse_digitalocean(DIGITALOCEAN)
    sonnet = rates["digitalocean/anthropic-claude-4.6-sonnet"]
    assert sonnet.input_per_m == pytest.approx(3.0)
    assert sonnet.output_per_m == pytest.approx(15.0)
    assert sonnet.cached_input_per_m == pytest.approx(0.3)
    gpt4o = rates["digitalocean/openai-gpt-4o"]
    assert gpt4o.input_per_m == pytest.approx(2.5)
    assert gpt4o.cached_input_per_m is None
    assert sonnet.cached_input_per_m is not None
    switch_cost = 5_000 / 1_000_000 * (gpt4o.input_per_m - sonnet.cached_input_per_m)
    assert switch_cost > 0.01  # real dollars, not ~1e-8


@pytest.mark.parametrize(
    ("model", "input_per_m", "cached"),
    [("kimi-k2.5", 0.375, 0.203), ("glm-5", 0.6, 0.11), ("legacy-model", 0.5, None)],
)
def test_digitalocean_cache_rate_under_either_name(
    model: str, input_per_m: float, cached: float | None
) -> None:
    rates = parse_digitalocean(DIGITALOCEAN_CACHE_NAMES)[model]
    assert rates.input_per_m == pytest.approx(input_per_m)
    if cached is None:
        assert rates.cached_input_per_m is None
    else:
        assert rates.cached_input_per_m == pytest.approx(cached)


def test_digitalocean_explicit_cache_name_wins() -> None:
    body = b'{"data": [{"model_id": "m", "pricing": {"cache_read_input_price_per_million": 1e-6, "input_cache_read": 9e-6}}]}'  # noqa: E501
    assert parse_digitalocean(body)["m"] == ModelRates(0.0, 0.0, pytest.approx(1.0))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "aliases", "expected"),
    [
        ({"data": [{"model_id": "m"}, {"model_id": "n", "pricing": None}]}, {}, {}),
        ({"data": [{"model_id": "m", "pricing": {}}]}, {}, {"m": 0.0}),
        (
            {"data": [{"model_id": "m", "pricing": {"output_price_per_million": 1e-6}, "name": "M"}]},
            {},
            {"m": 1.0},
        ),
        (
            {
                "data": [
                    {"model_id": "openai/openai-gpt-oss-120b", "pricing": {"input_price_per_million": 1e-6}}
                ]
            },
            {"openai/openai-gpt-oss-120b": "openai/gpt-4o"},
            {"openai/gpt-4o": 1.0},
        ),
        ({"data": [], "meta": {"total": 0}}, {}, {}),
    ],
)
def test_digitalocean_table(
    body: dict[str, Any], aliases: dict[str, str], expected: dict[str, float]
) -> None:
    rates = parse_digitalocean(json.dumps(body).encode(), aliases)
    assert {key: pytest.approx(r.total_per_m) for key, r in rates.items()} == expected


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b'{"data": {}}',
        b'{"data": [{"pricing": {}}]}',
        b'{"data": [{"model_id": 5}]}',
        b'{"data": [1]}',
    ],
)
def test_digitalocean_wrong_shapes(body: bytes) -> None:
    with pytest.raises(FeedError, match=r"^DigitalOcean catalog: "):
        parse_digitalocean(body)


def test_parse_cost_dispatches_on_provider() -> None:
    assert parse_cost("models.dev", MODELS_DEV) == parse_models_dev(MODELS_DEV)
    assert parse_cost("digitalocean", DIGITALOCEAN) == parse_digitalocean(DIGITALOCEAN)
    with pytest.raises(ValueError):
        parse_cost("nope", b"{}")


# --- Prometheus -----------------------------------------------------------------------------------------


def _prom(*samples: tuple[dict[str, str], list[Any]]) -> bytes:
    result = [{"metric": metric, "value": value} for metric, value in samples]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            _prom(({"model_name": "openai/gpt-4o"}, [1.7e9, "0.2"]), ({"model_name": "b"}, [1, "120"])),
            {"openai/gpt-4o": 0.2, "b": 120.0},
        ),
        (_prom(({"model": "x"}, [1, "1"])), {}),  # not the label Plano reads
        (_prom(({"model_name": "x", "job": "j"}, [1, "1e3"])), {"x": 1000.0}),
        (_prom(({"model_name": "x"}, [1, "1"]), ({"model_name": "x"}, [2, "2"])), {"x": 2.0}),
        (
            _prom(({"model_name": "x"}, [1, "+Inf"]), ({"model_name": "y"}, [1, "-inf"])),
            {"x": math.inf, "y": -math.inf},
        ),
        (_prom(({"model_name": "x"}, [1, ".5"]), ({"model_name": "y"}, [1, "5."])), {"x": 0.5, "y": 5.0}),
        # what float() takes but Plano's parser does not
        (
            _prom(
                ({"model_name": "x"}, [1, " 1"]),
                ({"model_name": "y"}, [1, "1_0"]),
                ({"model_name": "z"}, [1, "\u0661"]),
            ),
            {},
        ),
        (
            _prom(
                ({"model_name": "x"}, [1, ""]),
                ({"model_name": "y"}, [1, "e5"]),
                ({"model_name": "z"}, [1, "."]),
            ),
            {},
        ),
        (b'{"data": {"result": []}}', {}),
    ],
)
def test_prometheus_table(body: bytes, expected: dict[str, float]) -> None:
    assert parse_prometheus(body) == expected


def test_prometheus_nan_is_kept_and_looked_up_as_missing() -> None:
    latency = parse_prometheus(_prom(({"model_name": "x"}, [1, "NaN"])))
    assert math.isnan(latency["x"])
    assert MetricsSnapshot({}, latency).latency_for("x") is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"status": "error", "errorType": "bad_data", "error": "parse error"}',
        b'{"data": {"resultType": "scalar", "result": [1, "2"]}}',
        b'{"data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "2"]]}]}}',
        b'{"data": {"result": [{"metric": {"model_name": 5}, "value": [1, "2"]}]}}',
        b'{"data": {"result": [{"metric": {}, "value": [1, 2]}]}}',
        b'{"data": {"result": [{"metric": {}, "value": [1, "2", 3]}]}}',
        b'{"data": {"result": [{"metric": {}, "value": ["1", "2"]}]}}',
        b"<html>502 Bad Gateway</html>",
    ],
)
def test_prometheus_wrong_shapes(body: bytes) -> None:
    with pytest.raises(FeedError, match=r"^Prometheus answer: "):
        parse_prometheus(body)


@given(st.binary(max_size=512))
def test_any_bytes_parse_or_feed_error(body: bytes) -> None:
    for parse in (parse_models_dev, parse_digitalocean, parse_prometheus):
        with contextlib.suppress(FeedError):
            parse(body)  # type: ignore[operator]


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers()
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_near_models_dev = st.dictionaries(
    st.text(max_size=6),
    st.fixed_dictionaries(
        {},
        optional={
            "models": st.dictionaries(
                st.text(max_size=6),
                st.fixed_dictionaries(
                    {},
                    optional={
                        "cost": st.none()
                        | st.dictionaries(st.sampled_from(["input", "output", "cache_read", "x"]), _json)
                    },
                ),
                max_size=4,
            )
        },
    ),
    max_size=4,
)


@given(_near_models_dev)
def test_near_misses_parse_or_feed_error(doc: Any) -> None:
    """Documents shaped almost like the catalogs: either prices with the right types, or a FeedError."""
    body = json.dumps(doc).encode()
    for parse in (parse_models_dev, parse_digitalocean):
        try:
            rates = parse(body)  # type: ignore[operator]
        except FeedError:
            continue
        for key, r in rates.items():
            assert isinstance(key, str)
            assert isinstance(r.input_per_m, float) and isinstance(r.output_per_m, float)


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "metric": st.dictionaries(st.sampled_from(["model_name", "job"]), st.text(max_size=5)),
                "value": st.tuples(st.integers(), st.text(max_size=6)),
            }
        ),
        max_size=6,
    )
)
def test_prometheus_values_are_floats_or_skipped(result: list[dict[str, Any]]) -> None:
    latency = parse_prometheus(json.dumps({"data": {"result": result}}).encode())
    labelled = {sample["metric"]["model_name"] for sample in result if "model_name" in sample["metric"]}
    assert set(latency) <= labelled
    assert all(isinstance(v, float) for v in latency.values())


def test_big_catalog_parses_in_linear_time() -> None:
    models = {
        f"m{i}": {"cost": {"input": i, "output": 1}, "limit": {"context": 128000}} for i in range(20000)
    }
    rates = parse_models_dev(json.dumps({"p": {"models": models}}).encode())
    assert len(rates) == 40000


# --- lookups --------------------------------------------------------------------------------------------

SONNET = ModelRates(3.0, 15.0, 0.3)


@pytest.mark.parametrize(
    ("rates", "model", "expected", "ranked"),
    [
        ({"anthropic/claude-sonnet-4-5": SONNET}, "anthropic/claude-sonnet-4-5", SONNET, SONNET),
        # the budget falls back to the bare id; Plano's ranking does not
        ({"claude-sonnet-4-5": SONNET}, "vercel/claude-sonnet-4-5", SONNET, None),
        ({"claude-sonnet-4-5": SONNET}, "claude-sonnet-4-5", SONNET, SONNET),
        ({"claude-sonnet-4-5": SONNET}, "unknown/model", None, None),
        # only the first slash splits
        ({"openai/gpt-4o": SONNET}, "openrouter/openai/gpt-4o", SONNET, None),
        ({}, "a", None, None),
    ],
)
def test_rates_lookup(
    rates: dict[str, ModelRates], model: str, expected: ModelRates | None, ranked: ModelRates | None
) -> None:
    snapshot = MetricsSnapshot(rates, {})
    assert snapshot.rates_for(model) == expected
    assert snapshot.rank_rates_for(model) == ranked


def test_latency_lookup_is_by_full_name() -> None:
    snapshot = MetricsSnapshot({}, {"openai/gpt-4o": 0.2, "claude": 0.1})
    assert snapshot.latency_for("openai/gpt-4o") == 0.2
    assert snapshot.latency_for("anthropic/claude") is None
    assert EMPTY_SNAPSHOT.latency_for("x") is None


@pytest.mark.parametrize(
    ("prefer", "expected"),
    [("cheapest", ["b", "nan"]), ("fastest", ["a", "b"]), ("none", []), (None, [])],
)
def test_models_without_data(prefer: str | None, expected: list[str]) -> None:
    snapshot = MetricsSnapshot({"a": SONNET}, {"nan": math.nan})
    assert models_without_data(snapshot, prefer, ("a", "b", "nan")) == expected
