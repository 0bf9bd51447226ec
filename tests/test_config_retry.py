"""Loading `model_providers[].retry_policy` and listener `max_retries`; one model, several providers.

Tables of good and bad policies (every bad one with its exact key path and
line), hypothesis properties for status code ranges, Plano's own retry
example configs loaded unchanged, and model resolution when two providers
serve one bare model id.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plano_trio import cli
from plano_trio.config import Config, ConfigError, load_config, load_config_text
from plano_trio.config.retry import (
    Backoff,
    HighLatencyRule,
    RetryAfterHandling,
    RetryPolicy,
    StatusRule,
    TimeoutRule,
)
from plano_trio.config.retry_policy import StatusRangeError, parse_status_range
from plano_trio.providers.resolve import ModelResolver

POLICY_LINE = 7
"""Line of `retry_policy:` in `with_policy`'s text; the policy body starts on the next line."""


def with_policy(body: str, *, extra: str = "") -> str:
    """A config whose first provider carries `body` as its retry_policy (body line n is file line 7+n)."""
    indented = textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 6)
    return (
        "version: v0.4.0\n"
        "listeners:\n"
        "  - {name: llm, type: model, port: 12000}\n"
        "model_providers:\n"
        "  - model: openai/gpt-4o\n"
        "    access_key: k\n"
        "    retry_policy:\n"
        f"{indented}\n"
        "  - model: anthropic/claude-3-5-sonnet\n"
        "    access_key: k\n"
        f"{extra}"
    )


def load(text: str) -> Config:
    return load_config_text(text, source="config.yaml", env={})


def policy(body: str) -> RetryPolicy:
    config = load(with_policy(body))
    found = config.model_providers[0].retry_policy
    assert found is not None
    return found


def problems(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return [(p.path, p.line, p.message) for p in info.value.problems]


P = "model_providers[0].retry_policy"


# --------------------------------------------------------------------------------------
# Good policies
# --------------------------------------------------------------------------------------

GOOD: list[tuple[str, str, RetryPolicy]] = [
    ("empty mapping takes every default", "{}", RetryPolicy()),
    (
        "codes as ints and ranges, expanded",
        """
        on_status_codes:
          - codes: [429, "502-504"]
            strategy: same_model
            max_attempts: 3
          - codes: [" 500 - 500 "]
            strategy: same_provider
            max_attempts: 0
        """,
        RetryPolicy(
            on_status_codes=(
                StatusRule(codes=frozenset({429, 502, 503, 504}), strategy="same_model", max_attempts=3),
                StatusRule(codes=frozenset({500}), strategy="same_provider", max_attempts=0),
            )
        ),
    ),
    (
        "every key given",
        """
        fallback_models: [anthropic/claude-3-5-sonnet, openai/gpt-4o-mini]
        default_strategy: same_provider
        default_max_attempts: 0
        on_timeout: {strategy: different_provider, max_attempts: 1}
        on_high_latency:
          threshold_ms: 2500
          measure: total
          strategy: different_provider
          max_attempts: 2
          block_duration_seconds: 60
          scope: provider
          apply_to: request
          min_triggers: 3
          trigger_window_seconds: 30
        backoff: {apply_to: global, base_ms: 200, max_ms: 201, jitter: false}
        retry_after_handling: {scope: provider, apply_to: request, max_retry_after_seconds: 10}
        max_retry_duration_ms: 15000
        """,
        RetryPolicy(
            fallback_models=("anthropic/claude-3-5-sonnet", "openai/gpt-4o-mini"),
            default_strategy="same_provider",
            default_max_attempts=0,
            on_timeout=TimeoutRule(strategy="different_provider", max_attempts=1),
            on_high_latency=HighLatencyRule(
                threshold_ms=2500,
                measure="total",
                strategy="different_provider",
                max_attempts=2,
                block_duration_seconds=60,
                scope="provider",
                apply_to="request",
                min_triggers=3,
                trigger_window_seconds=30,
            ),
            backoff=Backoff(apply_to="global", base_ms=200, max_ms=201, jitter=False),
            retry_after_handling=RetryAfterHandling(
                scope="provider", apply_to="request", max_retry_after_seconds=10
            ),
            max_retry_duration_ms=15000,
        ),
    ),
    (
        "nested defaults",
        """
        on_high_latency: {threshold_ms: 5000, strategy: same_model, max_attempts: 1,
                          block_duration_seconds: 1}
        backoff: {apply_to: same_provider}
        retry_after_handling: {}
        """,
        RetryPolicy(
            on_high_latency=HighLatencyRule(
                threshold_ms=5000, strategy="same_model", max_attempts=1, block_duration_seconds=1
            ),
            backoff=Backoff(apply_to="same_provider", base_ms=100, max_ms=5000, jitter=True),
        ),
    ),
    (
        "min_triggers 1 needs no window; a fallback to a wildcard provider's model",
        """
        fallback_models: [anthropic/claude-opus-4]
        on_high_latency: {threshold_ms: 1000, strategy: same_model, max_attempts: 1,
                          block_duration_seconds: 5, min_triggers: 1}
        """,
        RetryPolicy(
            fallback_models=("anthropic/claude-opus-4",),
            on_high_latency=HighLatencyRule(
                threshold_ms=1000, strategy="same_model", max_attempts=1, block_duration_seconds=5
            ),
        ),
    ),
]


@pytest.mark.parametrize(("body", "expected"), [g[1:] for g in GOOD], ids=[g[0] for g in GOOD])
def test_good_policies(body: str, expected: RetryPolicy) -> None:
    text = with_policy(body, extra="  - {model: anthropic/*, access_key: k}\n")
    config = load(text)
    assert config.model_providers[0].retry_policy == expected
    assert config.model_providers[1].retry_policy is None
    assert config.unsupported == ()


def test_legacy_llm_providers_key() -> None:
    text = with_policy("default_max_attempts: 4").replace("model_providers:", "llm_providers:")
    config = load(text)
    assert config.model_providers[0].retry_policy == RetryPolicy(default_max_attempts=4)


# --------------------------------------------------------------------------------------
# Bad policies: exact key path, line and message
# --------------------------------------------------------------------------------------

BAD: list[tuple[str, str, list[tuple[str, int, str]]]] = [
    (
        "unknown key",
        "retries: 3",
        [(f"{P}.retries", 8, "Unknown key 'retries'")],
    ),
    (
        "not a mapping",
        "",
        [(P, 7, "expected a mapping, got null")],
    ),
    (
        "bad strategy enum",
        "default_strategy: next_model",
        [
            (
                f"{P}.default_strategy",
                8,
                "expected one of same_model, same_provider, different_provider; got string 'next_model'",
            )
        ],
    ),
    (
        "negative default_max_attempts",
        "default_max_attempts: -1",
        [(f"{P}.default_max_attempts", 8, "must be at least 0, got -1")],
    ),
    (
        "status rule missing keys",
        """
        on_status_codes:
          - codes: [429]
        """,
        [
            (f"{P}.on_status_codes[0].strategy", 9, "missing required key 'strategy'"),
            (f"{P}.on_status_codes[0].max_attempts", 9, "missing required key 'max_attempts'"),
        ],
    ),
    (
        "status rule unknown key",
        """
        on_status_codes:
          - {codes: [429], strategy: same_model, max_attempts: 1, backoff_ms: 5}
        """,
        [(f"{P}.on_status_codes[0].backoff_ms", 9, "Unknown key 'backoff_ms'")],
    ),
    (
        "integer code out of range",
        """
        on_status_codes:
          - codes: [429, 600]
            strategy: same_model
            max_attempts: 1
        """,
        [(f"{P}.on_status_codes[0].codes[1]", 9, "must be at most 599, got 600")],
    ),
    (
        "integer code below range",
        """
        on_status_codes:
          - codes:
              - 99
            strategy: same_model
            max_attempts: 1
        """,
        [(f"{P}.on_status_codes[0].codes[0]", 10, "must be at least 100, got 99")],
    ),
    (
        "boolean code",
        """
        on_status_codes:
          - {codes: [true], strategy: same_model, max_attempts: 1}
        """,
        [
            (
                f"{P}.on_status_codes[0].codes[0]",
                9,
                "expected an integer status code or a range string, got boolean true",
            )
        ],
    ),
    (
        "inverted range",
        """
        on_status_codes:
          - {codes: ["504-502"], strategy: same_model, max_attempts: 1}
        """,
        [
            (
                f"{P}.on_status_codes[0].codes[0]",
                9,
                "status code range '504-502' is inverted: start must not exceed end",
            )
        ],
    ),
    (
        "range outside 100-599",
        """
        on_status_codes:
          - {codes: ["500-600"], strategy: same_model, max_attempts: 1}
        """,
        [(f"{P}.on_status_codes[0].codes[0]", 9, "status code range '500-600' goes outside 100-599")],
    ),
    (
        "single code as a string",
        """
        on_status_codes:
          - {codes: ["429"], strategy: same_model, max_attempts: 1}
        """,
        [
            (
                f"{P}.on_status_codes[0].codes[0]",
                9,
                "invalid status code range '429': expected 'start-end', e.g. '502-504'",
            )
        ],
    ),
    (
        "three-part range",
        """
        on_status_codes:
          - {codes: ["500-502-504"], strategy: same_model, max_attempts: 1}
        """,
        [
            (
                f"{P}.on_status_codes[0].codes[0]",
                9,
                "invalid status code range '500-502-504': expected 'start-end', e.g. '502-504'",
            )
        ],
    ),
    (
        "on_timeout max_attempts 0",
        "on_timeout: {strategy: same_model, max_attempts: 0}",
        [(f"{P}.on_timeout.max_attempts", 8, "must be at least 1, got 0")],
    ),
    (
        "on_timeout missing strategy",
        "on_timeout: {max_attempts: 1}",
        [(f"{P}.on_timeout.strategy", 8, "missing required key 'strategy'")],
    ),
    (
        "high latency missing required keys",
        """
        on_high_latency:
          threshold_ms: 2000
        """,
        [
            (f"{P}.on_high_latency.strategy", 8, "missing required key 'strategy'"),
            (f"{P}.on_high_latency.max_attempts", 8, "missing required key 'max_attempts'"),
            (
                f"{P}.on_high_latency.block_duration_seconds",
                8,
                "missing required key 'block_duration_seconds'",
            ),
        ],
    ),
    (
        "high latency zero values",
        """
        on_high_latency:
          threshold_ms: 0
          strategy: same_model
          max_attempts: 0
          block_duration_seconds: 0
          trigger_window_seconds: 0
        """,
        [
            (f"{P}.on_high_latency.threshold_ms", 9, "must be at least 1, got 0"),
            (f"{P}.on_high_latency.max_attempts", 11, "must be at least 1, got 0"),
            (f"{P}.on_high_latency.block_duration_seconds", 12, "must be at least 1, got 0"),
            (f"{P}.on_high_latency.trigger_window_seconds", 13, "must be at least 1, got 0"),
        ],
    ),
    (
        "min_triggers > 1 without a window",
        """
        on_high_latency:
          threshold_ms: 2000
          strategy: same_model
          max_attempts: 1
          block_duration_seconds: 10
          min_triggers: 3
        """,
        [
            (
                f"{P}.on_high_latency.min_triggers",
                13,
                "min_triggers 3 needs trigger_window_seconds (the window the triggers are counted in)",
            )
        ],
    ),
    (
        "bad measure",
        "on_high_latency: {threshold_ms: 2000, strategy: same_model, max_attempts: 1, "
        "block_duration_seconds: 1, measure: ttlb}",
        [(f"{P}.on_high_latency.measure", 8, "expected one of ttfb, total; got string 'ttlb'")],
    ),
    (
        "backoff needs apply_to",
        "backoff: {base_ms: 10}",
        [(f"{P}.backoff.apply_to", 8, "missing required key 'apply_to'")],
    ),
    (
        "backoff base_ms 0",
        "backoff: {apply_to: global, base_ms: 0}",
        [(f"{P}.backoff.base_ms", 8, "must be at least 1, got 0")],
    ),
    (
        "backoff max_ms equal to base_ms",
        """
        backoff:
          apply_to: global
          base_ms: 300
          max_ms: 300
        """,
        [(f"{P}.backoff.max_ms", 11, "max_ms (300) must be greater than base_ms (300)")],
    ),
    (
        "backoff base_ms above the default max_ms",
        """
        backoff:
          apply_to: global
          base_ms: 6000
        """,
        [
            (
                f"{P}.backoff.base_ms",
                10,
                "max_ms (5000) must be greater than base_ms (6000); max_ms defaults to 5000",
            )
        ],
    ),
    (
        "backoff jitter not a boolean",
        "backoff: {apply_to: global, jitter: sometimes}",
        [(f"{P}.backoff.jitter", 8, "expected true or false, got string 'sometimes'")],
    ),
    (
        "retry_after max 0 and bad scope",
        """
        retry_after_handling:
          scope: region
          max_retry_after_seconds: 0
        """,
        [
            (f"{P}.retry_after_handling.scope", 9, "expected one of model, provider; got string 'region'"),
            (f"{P}.retry_after_handling.max_retry_after_seconds", 10, "must be at least 1, got 0"),
        ],
    ),
    (
        "retry_after bad apply_to",
        "retry_after_handling: {apply_to: forever}",
        [(f"{P}.retry_after_handling.apply_to", 8, "expected one of global, request; got string 'forever'")],
    ),
    (
        "max_retry_duration_ms 0",
        "max_retry_duration_ms: 0",
        [(f"{P}.max_retry_duration_ms", 8, "must be greater than 0 (leave it out for no bound)")],
    ),
    (
        "max_retry_duration_ms negative",
        "max_retry_duration_ms: -5",
        [(f"{P}.max_retry_duration_ms", 8, "must be at least 0, got -5")],
    ),
    (
        "fallback without a provider prefix, and empty",
        """
        fallback_models:
          - claude-3-5-sonnet
          - ""
        """,
        [
            (
                f"{P}.fallback_models[0]",
                9,
                "fallback model 'claude-3-5-sonnet' must be a full model name, <provider>/<model> "
                "(e.g. 'anthropic/claude-3-5-sonnet')",
            ),
            (
                f"{P}.fallback_models[1]",
                10,
                "fallback model '' must be a full model name, <provider>/<model> "
                "(e.g. 'anthropic/claude-3-5-sonnet')",
            ),
        ],
    ),
    (
        "fallback_models not a list",
        "fallback_models: anthropic/claude-3-5-sonnet",
        [(f"{P}.fallback_models", 8, "expected a list, got string 'anthropic/claude-3-5-sonnet'")],
    ),
]


@pytest.mark.parametrize(("body", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_policies(body: str, expected: list[tuple[str, int, str]]) -> None:
    assert problems(with_policy(body)) == expected


def test_every_problem_is_listed_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = with_policy(
        """
        default_strategy: nope
        on_status_codes:
          - {codes: ["9-1"], strategy: same_model, max_attempts: 1}
        backoff: {apply_to: global, base_ms: 10, max_ms: 5}
        """,
        extra="  - model: anthropic/claude-3-5-sonnet\n    access_key: k\n",
    )
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert cli.main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    found = re.findall(rf"^{re.escape(str(path))}:(\d+): (\S+): ", err, flags=re.MULTILINE)
    assert found == [
        ("8", f"{P}.default_strategy"),
        ("10", f"{P}.on_status_codes[0].codes[0]"),
        ("11", f"{P}.backoff.max_ms"),
        ("14", "model_providers[2].model"),
        ("14", "model_providers[2].model"),
    ]


# --------------------------------------------------------------------------------------
# Warnings: legal, but probably not what was meant (the gateway still starts)
# --------------------------------------------------------------------------------------

WARNINGS: list[tuple[str, str, str, list[str]]] = [
    (
        "overlapping codes across entries",
        """
        on_status_codes:
          - {codes: ["500-503"], strategy: same_model, max_attempts: 1}
          - {codes: [429, 502, 503], strategy: different_provider, max_attempts: 1}
        """,
        "",
        [
            f"line 10: {P}.on_status_codes[1].codes: status 502, 503 already listed by an earlier "
            "on_status_codes entry, which is the one applied"
        ],
    ),
    (
        "empty codes",
        "on_status_codes: [{codes: [], strategy: same_model, max_attempts: 1}]",
        "",
        [f"line 8: {P}.on_status_codes[0].codes: lists no status codes, so this entry never applies"],
    ),
    (
        "backoff on same-model retries under a different-provider strategy",
        "backoff: {apply_to: same_model}",
        "",
        [
            f"line 8: {P}.backoff.apply_to: apply_to same_model never delays a retry made by "
            "default_strategy different_provider; only rules whose strategy matches get a backoff"
        ],
    ),
    (
        "backoff on same-provider retries under a same-model strategy",
        "default_strategy: same_model\nbackoff: {apply_to: same_provider}",
        "",
        [
            f"line 9: {P}.backoff.apply_to: apply_to same_provider never delays a retry made by "
            "default_strategy same_model; only rules whose strategy matches get a backoff"
        ],
    ),
    (
        "provider-wide Retry-After block with same-model retries",
        "default_strategy: same_model\nretry_after_handling: {scope: provider}",
        "",
        [
            f"line 9: {P}.retry_after_handling.scope: a Retry-After blocks the whole provider, but "
            "default_strategy same_model retries that blocked model, so those retries wait or fail; "
            "same_provider or different_provider avoids it"
        ],
    ),
    (
        "provider-wide latency block with same-model retries, aggressive threshold",
        """
        on_high_latency:
          threshold_ms: 800
          strategy: same_model
          max_attempts: 1
          block_duration_seconds: 5
          scope: provider
        """,
        "",
        [
            f"line 13: {P}.on_high_latency.scope: high latency blocks the whole provider, but strategy "
            "same_model retries that blocked model; same_provider or different_provider avoids it",
            f"line 9: {P}.on_high_latency.threshold_ms: threshold_ms 800 is under 1000 ms; ordinary slow "
            "answers may trigger failover and blocks",
        ],
    ),
    (
        "fallback that no provider serves",
        "fallback_models: [mistral/mistral-large, anthropic/claude-3-5-sonnet]",
        "",
        [
            f"line 8: {P}.fallback_models[0]: fallback model 'mistral/mistral-large' is not served by any "
            "model_provider; it will be skipped"
        ],
    ),
    (
        "fallback served by a wildcard provider, or named by a provider name",
        "fallback_models: [mistral/mistral-large, team/backup]",
        "  - {model: mistral/*, access_key: k}\n"
        "  - {name: team/backup, model: groq/llama-3, access_key: k}\n",
        [],
    ),
]


@pytest.mark.parametrize(
    ("body", "extra", "expected"), [w[1:] for w in WARNINGS], ids=[w[0] for w in WARNINGS]
)
def test_warnings(body: str, extra: str, expected: list[str]) -> None:
    assert list(load(with_policy(body, extra=extra)).warnings) == expected


def test_failover_strategy_with_a_single_provider_warns() -> None:
    text = (
        "version: v0.4.0\nlisteners:\n  - {name: llm, type: model, port: 12000}\nmodel_providers:\n"
        "  - model: openai/gpt-4o\n    access_key: k\n    retry_policy:\n      default_max_attempts: 2\n"
    )
    assert load(text).warnings == (
        "line 7: model_providers[0].retry_policy.default_strategy: different_provider fails over to other "
        "models, but this is the only model_provider",
    )
    same_model = text.replace("default_max_attempts: 2", "default_strategy: same_model")
    assert load(same_model).warnings == ()


# --------------------------------------------------------------------------------------
# Status code ranges (properties)
# --------------------------------------------------------------------------------------

codes = st.integers(100, 599)


@given(codes, codes, st.sampled_from(["", " ", "  "]))
def test_valid_ranges_expand_to_every_code(a: int, b: int, pad: str) -> None:
    start, end = min(a, b), max(a, b)
    assert parse_status_range(f"{pad}{start}{pad}-{pad}{end}{pad}") == range(start, end + 1)


@given(codes, codes)
def test_inverted_ranges_are_refused(a: int, b: int) -> None:
    if a > b:
        with pytest.raises(StatusRangeError, match="inverted"):
            parse_status_range(f"{a}-{b}")


@given(st.text(max_size=20))
def test_any_string_is_a_range_inside_100_599_or_a_typed_error(text: str) -> None:
    try:
        expanded = parse_status_range(text)
    except StatusRangeError as error:
        assert repr(text) in str(error)
    else:
        assert 100 <= expanded.start <= expanded.stop - 1 <= 599


@given(st.lists(st.one_of(codes, st.tuples(codes, codes).map(sorted)), min_size=1, max_size=6))
def test_loaded_codes_are_the_union_of_entries(entries: list[int | list[int]]) -> None:
    written = [e if isinstance(e, int) else f"{e[0]}-{e[1]}" for e in entries]
    expected = set()
    for e in entries:
        expected |= {e} if isinstance(e, int) else set(range(e[0], e[1] + 1))
    body = f"on_status_codes: [{{codes: {written!r}, strategy: same_model, max_attempts: 1}}]"
    assert policy(body).on_status_codes[0].codes == expected


# --------------------------------------------------------------------------------------
# Listener max_retries (Plano 0.4.36)
# --------------------------------------------------------------------------------------


def test_listener_max_retries_is_supported() -> None:
    text = with_policy("{}").replace("port: 12000}", "port: 12000, max_retries: 3}")
    config = load(text)
    assert config.listeners[0].max_retries == 3
    assert config.unsupported == ()


def test_listener_max_retries_must_not_be_negative() -> None:
    text = with_policy("{}").replace("port: 12000}", "port: 12000, max_retries: -1}")
    assert problems(text) == [("listeners[0].max_retries", 3, "must be at least 0, got -1")]


# --------------------------------------------------------------------------------------
# One model, several providers
# --------------------------------------------------------------------------------------

SHARED_MODEL = """\
version: v0.4.0
listeners:
  - {name: llm, type: model, port: 12000}
model_providers:
  - model: custom/claude-opus-4-6
    base_url: http://127.0.0.1:9001
    provider_interface: openai
    access_key: k
    retry_policy: {fallback_models: [custom-aws/claude-opus-4-6]}
  - model: custom-aws/claude-opus-4-6
    base_url: http://127.0.0.1:9002
    provider_interface: openai
    access_key: k
  - model: anthropic/claude-opus-4-6
    access_key: k
"""


def test_two_providers_may_serve_one_model_id() -> None:
    config = load(SHARED_MODEL)
    assert [p.name for p in config.model_providers if not p.internal] == [
        "custom/claude-opus-4-6",
        "custom-aws/claude-opus-4-6",
        "anthropic/claude-opus-4-6",
    ]
    assert config.warnings == ()


def test_bare_id_goes_to_the_first_provider_full_names_to_their_own() -> None:
    resolver = ModelResolver(load(SHARED_MODEL))
    ports = {
        name: route.origin.port if (route := resolver.resolve(name)) is not None else None
        for name in ("claude-opus-4-6", "custom/claude-opus-4-6", "custom-aws/claude-opus-4-6")
    }
    assert ports == {
        "claude-opus-4-6": 9001,
        "custom/claude-opus-4-6": 9001,
        "custom-aws/claude-opus-4-6": 9002,
    }
    anthropic = resolver.resolve("anthropic/claude-opus-4-6")
    assert anthropic is not None and anthropic.provider.name == "anthropic/claude-opus-4-6"


def test_bare_id_follows_config_order() -> None:
    head, custom, aws, rest = re.split(r"(?=  - model: )", SHARED_MODEL)
    route = ModelResolver(load(head + aws + custom + rest)).resolve("claude-opus-4-6")
    assert route is not None and route.provider.name == "custom-aws/claude-opus-4-6"


def test_full_model_name_must_stay_unique() -> None:
    text = SHARED_MODEL + "  - model: custom/claude-opus-4-6\n    name: second\n    access_key: k\n"
    assert (
        "model_providers[3].model",
        16,
        "Duplicate model name custom/claude-opus-4-6, please provide unique model name for each "
        "model_provider",
    ) in problems(text)


# --------------------------------------------------------------------------------------
# Plano's own retry example configs, unchanged
# --------------------------------------------------------------------------------------

RETRY_CONFIGS = Path(__file__).parent / "plano_configs" / "retry"
MOCK_ENV = {
    f"MOCK_{role}_PORT": str(port)
    for port, role in enumerate(("PRIMARY", "SECONDARY", "TERTIARY", "FALLBACK1", "FALLBACK2"), start=18001)
}


def load_retry_config(name: str) -> Config:
    return load_config(RETRY_CONFIGS / name, env=MOCK_ENV)


def test_there_are_thirteen_retry_configs() -> None:
    assert len(list(RETRY_CONFIGS.glob("retry_it*.yaml"))) == 13


@pytest.mark.parametrize("path", sorted(RETRY_CONFIGS.glob("retry_it*.yaml")), ids=lambda p: p.name)
def test_plano_retry_configs_load_unchanged(path: Path) -> None:
    config = load_retry_config(path.name)
    primary = config.model_providers[0]
    assert primary.name == "openai/gpt-4o" and primary.base_url == "http://host.docker.internal:18001"
    assert config.unsupported == ()
    assert config.warnings == ()
    if path.name.startswith("retry_it4_"):
        assert primary.retry_policy is None
    else:
        assert primary.retry_policy is not None


R429 = StatusRule(codes=frozenset({429}), strategy="different_provider", max_attempts=2)

RETRY_CONFIG_POLICIES = [
    (
        "retry_it1_basic_429.yaml",
        RetryPolicy(default_strategy="different_provider", default_max_attempts=2, on_status_codes=(R429,)),
    ),
    (
        "retry_it2_503_different_provider.yaml",
        RetryPolicy(
            on_status_codes=(
                StatusRule(codes=frozenset({503}), strategy="different_provider", max_attempts=2),
            )
        ),
    ),
    (
        "retry_it6_backoff_delay.yaml",
        RetryPolicy(
            default_strategy="same_model",
            default_max_attempts=3,
            on_status_codes=(StatusRule(codes=frozenset({429}), strategy="same_model", max_attempts=3),),
            backoff=Backoff(apply_to="same_model", base_ms=500, max_ms=5000, jitter=False),
        ),
    ),
    (
        "retry_it7_fallback_priority.yaml",
        RetryPolicy(
            fallback_models=("anthropic/claude-3-5-sonnet", "mistral/mistral-large"),
            default_max_attempts=3,
            on_status_codes=(
                StatusRule(codes=frozenset({429}), strategy="different_provider", max_attempts=3),
            ),
        ),
    ),
    (
        "retry_it8_retry_after_honored.yaml",
        RetryPolicy(
            default_strategy="same_model",
            on_status_codes=(StatusRule(codes=frozenset({429}), strategy="same_model", max_attempts=2),),
            retry_after_handling=RetryAfterHandling(
                scope="model", apply_to="request", max_retry_after_seconds=300
            ),
        ),
    ),
    (
        "retry_it10_timeout_triggers_retry.yaml",
        RetryPolicy(
            fallback_models=("anthropic/claude-3-5-sonnet",),
            on_status_codes=(R429,),
            on_timeout=TimeoutRule(strategy="different_provider", max_attempts=2),
        ),
    ),
    (
        "retry_it11_high_latency_failover.yaml",
        RetryPolicy(
            fallback_models=("anthropic/claude-3-5-sonnet",),
            on_status_codes=(R429,),
            on_high_latency=HighLatencyRule(
                threshold_ms=1000,
                measure="total",
                min_triggers=1,
                strategy="different_provider",
                max_attempts=2,
                block_duration_seconds=60,
                scope="model",
                apply_to="global",
            ),
        ),
    ),
]


@pytest.mark.parametrize(
    ("name", "expected"), RETRY_CONFIG_POLICIES, ids=[name for name, _ in RETRY_CONFIG_POLICIES]
)
def test_plano_retry_config_policies(name: str, expected: RetryPolicy) -> None:
    assert load_retry_config(name).model_providers[0].retry_policy == expected


def test_retry_it9_both_providers_have_policies() -> None:
    config = load_retry_config("retry_it9_retry_after_blocks_selection.yaml")
    first, second = config.model_providers[:2]
    assert first.retry_policy is not None and first.retry_policy.fallback_models == (
        "anthropic/claude-3-5-sonnet",
    )
    assert second.retry_policy == RetryPolicy(on_status_codes=(R429,))
    assert not second.default


# --------------------------------------------------------------------------------------
# The documented examples load, with no warnings
# --------------------------------------------------------------------------------------

ROOT = Path(__file__).parent.parent


def test_readme_retry_example_loads_cleanly() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Retries and failover") :]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match is not None
    text = "version: v0.4.0\nlisteners:\n  - {name: llm, type: model, port: 12000}\n" + match.group(1)
    config = load_config_text(text, env={"OPENAI_API_KEY": "a", "ANTHROPIC_API_KEY": "b"})
    found = config.model_providers[0].retry_policy
    assert found is not None and found.on_status_codes[0].codes == {429, 502, 503, 504}
    assert (config.warnings, config.unsupported) == ((), ())


def test_example_config_commented_policy_loads_cleanly() -> None:
    text = (ROOT / "config.example.yaml").read_text()
    uncommented = text.replace("    # retry_policy:", "    retry_policy:").replace("    #   ", "      ")
    assert uncommented != text
    config = load_config_text(uncommented, env={})
    (found,) = [p.retry_policy for p in config.model_providers if p.retry_policy is not None]
    assert found.fallback_models == ("groq/llama-3.3-70b-versatile",)
    assert config.warnings == ()
