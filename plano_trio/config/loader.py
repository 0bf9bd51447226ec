"""Load a Plano config file into the frozen `Config` the rest of plano-trio reads.

The order of work: parse YAML (keeping lines, expanding `$VAR`s) -> check the
key set and value types -> normalize providers, listeners, preferences and
aliases the way Plano's CLI does -> cross-section checks -> build Structs.
Every step reports into one `Report`; if anything is wrong, one `ConfigError`
lists it all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import crosscheck
from .access_settings import (
    ACCESS_KNOBS,
    InboundAuthSettings,
    build_inbound_auth,
    build_rate_limits,
    check_key_models,
)
from .errors import ConfigError, KeyPath, Problem, Report
from .keyspec import INBOUND_KEY, TOP_LEVEL
from .listeners import build_listeners
from .metrics_sources import build_metrics_sources, check_selection_policies
from .providers import build_providers, internal_providers
from .routing import build_aliases, build_routing_preferences, lift_inline_preferences
from .routing_settings import ROUTING_KNOBS, build_routing_settings
from .schema import METRICS_OFF, Config, ModelProvider, ServerSettings
from .shape import ListOf
from .tracing_settings import build_tracing_settings
from .values import DURATION_HINT, parse_duration, parse_socket_address
from .yamlsource import read_yaml

CONFIG_FILE_NAMES = ("config.yaml", "plano_config.yaml")


def find_config_file(arg: str | None, cwd: Path) -> Path | None:
    """Plano's lookup: the given file (or `DIR/config.yaml`, then
    `DIR/plano_config.yaml` if it names a directory), else the same two names
    in `cwd`.  A given file is returned even if missing, so the error names it.
    """
    if arg is not None:
        given = cwd / arg
        if not given.is_dir():
            return given
        cwd = given
    for name in CONFIG_FILE_NAMES:
        candidate = cwd / name
        if candidate.is_file():
            return candidate
    return None


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    source = os.fspath(path)
    try:
        raw = Path(source).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            [Problem(path="", line=None, message=f"cannot read config file: {reason}")], source
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [
                Problem(
                    path="",
                    line=None,
                    message=f"config file is not UTF-8 text: {exc.reason} at byte {exc.start}",
                )
            ],
            source,
        ) from None
    return load_config_text(text, source=source, env=env)


def load_config_text(text: str, *, source: str = "<string>", env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    doc = read_yaml(text, env)
    if doc.problems and doc.value is None:
        raise ConfigError(doc.problems, source)
    if doc.value is None:
        raise ConfigError([Problem(path="", line=None, message="config file is empty")], source)
    report = Report(doc.lines, doc.substituted)
    if not isinstance(doc.value, dict):
        shown = report.shown((), doc.value)
        raise ConfigError(
            [Problem(path="", line=1, message=f"top level must be a mapping of keys, got {shown}")], source
        )

    for problem in doc.problems:
        report.add(problem)
    for path in doc.duplicate_keys:
        report.warn(path, "key given more than once; the last value is used")

    top: dict[str, Any] = TOP_LEVEL.check(doc.value, (), report)
    base_dir = Path(source).parent if source != "<string>" else None
    config = _build(top, set(doc.value), report, env, base_dir)

    # Unset variables only matter where plano-trio uses the value; an unset
    # `$POSTHOG_API_KEY` under (unsupported) `tracing` must not stop startup.
    for path, name in doc.unset_env:
        if not report.is_unsupported(path):
            report.problem(path, f"environment variable {name} is not set")

    if report.problems:
        raise ConfigError(report.problems, source)
    return config


def _build(
    top: dict[str, Any],
    written: set[str],
    report: Report,
    env: Mapping[str, str],
    base_dir: Path | None = None,
) -> Config:
    """`top` is the checked tree (broken parts dropped); `written` the keys the file has; `base_dir` the
    config file's directory (relative paths in it are resolved there)."""
    providers_key = "model_providers"
    if "llm_providers" in written:
        if "model_providers" in written:
            report.problem(
                ("llm_providers",),
                "Please provide either llm_providers or model_providers, not both. "
                "llm_providers is deprecated, please use model_providers instead",
            )
        else:
            providers_key = "llm_providers"
    raw_providers: list[Any] = top.get(providers_key, [])
    providers_ok = providers_key in top  # False when the whole list had the wrong type

    built = build_providers(raw_providers, (providers_key,), report, env)
    listeners, legacy = build_listeners(top.get("listeners"), report, len(raw_providers))
    if not raw_providers and not legacy and (providers_ok or providers_key not in written):
        report.problem((providers_key,), "There must be at least one LLM Provider")

    ids = crosscheck.agent_ids(top, report)
    if not report.has_problems_under(("agents",)) and not report.has_problems_under(("filters",)):
        raw_listeners = top.get("listeners")
        crosscheck.check_listener_filters(
            raw_listeners if isinstance(raw_listeners, list) else [], ids, report
        )
        crosscheck.check_prompt_target_endpoints(top, ids, report)
    tracing = build_tracing_settings(top.get("tracing", {}), env, report)
    crosscheck.check_routing(top, report)

    version: str = top.get("version", "")
    entries = lift_inline_preferences(
        version, raw_providers, providers_key, top.get("routing_preferences", []), report
    )
    metrics_sources = build_metrics_sources(top.get("model_metrics_sources", []), report)
    check_selection_policies(entries, metrics_sources, report)
    # A broken provider is missing from the catalog; checking names against it would only add noise.
    preferences = build_routing_preferences(entries, built.catalog, report, check_models=built.complete)
    aliases = build_aliases(top.get("model_aliases", {}), built.catalog, report, check_targets=built.complete)

    overrides: dict[str, Any] = top.get("overrides", {})
    internal = internal_providers(
        built.providers, has_routing_preferences=bool(preferences), overrides=overrides
    )
    ours: dict[str, Any] = top.get("plano_trio", {})
    server = _server_settings(overrides, ours, report)
    routing = build_routing_settings(top.get("routing", {}), top.get("prompt_caching", {}), overrides, ours)
    state_storage = crosscheck.build_state_storage(top.get("state_storage"), report)
    inbound_auth = build_inbound_auth(
        ours.get("inbound_auth"),
        report,
        base_dir=base_dir,
        read_keys_file=lambda path, where: _read_keys_file(path, where, report, env),
    )
    if inbound_auth is not None:
        _check_inbound_auth(inbound_auth, built.providers, aliases, report)
    if server.workers > 1 and state_storage is not None and state_storage.type == "memory":
        report.problem(
            ("plano_trio", "workers"),
            "workers > 1 needs state_storage type postgres (each worker process would keep its own memory "
            "store, so a conversation could not continue on another worker)",
        )
    return Config(
        version=version,
        listeners=tuple(listeners),
        model_providers=tuple(built.providers + internal),
        model_aliases=tuple(aliases),
        routing_preferences=tuple(preferences),
        routing=routing,
        agents=crosscheck.build_agent_endpoints(top),
        metrics_sources=metrics_sources,
        state_storage=state_storage,
        server=server,
        tracing=tracing,
        inbound_auth=inbound_auth,
        ratelimits=build_rate_limits(top.get("ratelimits", []), ours, report),
        unsupported=tuple(dict.fromkeys(report.unsupported)),
        warnings=tuple(report.warnings),
    )


def _server_settings(overrides: dict[str, Any], ours: dict[str, Any], report: Report) -> ServerSettings:
    """plano-trio's knobs: Plano's `overrides` first, then `plano_trio:` (which wins)."""
    settings: dict[str, Any] = {}
    timeout = overrides.get("upstream_connect_timeout")
    if timeout is not None:
        seconds = parse_duration(timeout)
        path = ("overrides", "upstream_connect_timeout")
        if seconds is None:
            report.problem(path, f"invalid duration {timeout!r}: {DURATION_HINT}")
        elif seconds == float("inf"):
            report.problem(path, "must be greater than 0")
        else:
            settings["upstream_connect_timeout_s"] = seconds
    if "upstream_tls_ca_path" in overrides:
        settings["ca_bundle"] = overrides["upstream_tls_ca_path"]
    if overrides.get("disable_signals"):
        settings["signals"] = False
    settings.update((key, value) for key, value in ours.items() if key not in ROUTING_KNOBS | ACCESS_KNOBS)
    for key in (
        "graceful_shutdown_s",
        "upstream_connect_timeout_s",
        "upstream_read_timeout_s",
        "client_body_timeout_s",
        "client_body_total_timeout_s",
        "client_send_timeout_s",
        "filter_timeout_s",
    ):
        if key in settings:
            settings[key] = float(settings[key])
    bind = settings.get("metrics_bind_address")
    if bind is not None and bind.strip().lower() not in METRICS_OFF and parse_socket_address(bind) is None:
        report.problem(
            ("plano_trio", "metrics_bind_address"),
            f"invalid address {bind!r}: use ip:port (e.g. 0.0.0.0:9092 or [::]:9092), or off",
        )
    return ServerSettings(**settings)


def _read_keys_file(
    path: Path, where: KeyPath, report: Report, env: Mapping[str, str]
) -> list[tuple[KeyPath, dict[str, Any]]]:
    """The entries of an inbound keys file (a YAML list of `keys` entries, or `{keys: [...]}`); its
    problems are reported at `where`, each naming the file's own line and path, and so are later
    problems with an entry (`where[i]`)."""
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        report.problem(where, f"cannot read keys file {path}: {reason}")
        return []
    doc = read_yaml(text, env)
    inner = Report(doc.lines, doc.substituted)
    for problem in doc.problems:
        inner.add(problem)
    value = doc.value
    base: KeyPath = ()
    if isinstance(value, dict) and set(value) == {"keys"}:
        value, base = value["keys"], ("keys",)
    entries: list[Any] = []
    if value is None and not doc.problems:
        inner.problem(base, "no keys")
    elif value is not None:
        checked = ListOf(INBOUND_KEY).check(value, base, inner)
        entries = checked if isinstance(checked, list) else []
    for name_path, name in doc.unset_env:
        inner.problem(name_path, f"environment variable {name} is not set")
    for problem in inner.problems:
        line = f":{problem.line}" if problem.line is not None else ""
        what = f" {problem.path}:" if problem.path else ""
        report.problem(where, f"{path}{line}:{what} {problem.message}")
    return [((*where, i), entry) for i, entry in enumerate(entries) if isinstance(entry, dict)]


def _check_inbound_auth(
    auth: InboundAuthSettings, providers: list[ModelProvider], aliases: list[tuple[str, str]], report: Report
) -> None:
    """Warn about key `models` that name nothing, and say how passthrough providers get their key."""
    known = {p.name for p in providers} | {p.model for p in providers} | {alias for alias, _ in aliases}
    prefixes = {p.prefix for p in providers if p.is_wildcard}
    check_key_models(auth, known, prefixes, report)
    for provider in providers:
        if provider.passthrough_auth:
            report.warn(
                ("plano_trio", "inbound_auth"),
                f"provider '{provider.name}' uses passthrough_auth: with inbound keys on, clients send its "
                "key in x-plano-upstream-authorization (their inbound key is never forwarded)",
            )
