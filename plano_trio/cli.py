"""Command line: `plano-trio up [CONFIG]`, `validate CONFIG`, `init`, `trace`, `obs`, `--version`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import msgspec
import trio

from plano_trio import __version__
from plano_trio.config import Config, ConfigError, find_config_file, load_config, load_config_text
from plano_trio.config.defaults import DEFAULT_LISTENER_PORT, DEFAULT_OTLP_ENDPOINT, SOURCE, zero_config
from plano_trio.gateway.metrics_feed import MetricsStartupError
from plano_trio.init_cli import add_init_command, run_init
from plano_trio.logs import setup_logging
from plano_trio.state import StateStartupError
from plano_trio.tracing_cli.command import add_trace_command, run_trace
from plano_trio.tracing_cli.obs_command import add_obs_command, run_obs

log = logging.getLogger("plano_trio")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (default: info)",
    )
    common.add_argument(
        "--log-format",
        default="human",
        choices=["human", "json"],
        help="human-readable lines or one JSON object per line (default: human)",
    )
    parser = argparse.ArgumentParser(
        prog="plano-trio",
        description="A Plano-compatible AI gateway: one OpenAI/Anthropic-compatible front door to many "
        "LLM providers, configured with Plano's YAML format.",
    )
    parser.add_argument("--version", action="version", version=f"plano-trio {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser(
        "up",
        parents=[common],
        help="run the gateway in the foreground (Ctrl-C/SIGTERM stops it gracefully)",
        description="Run the gateway in the foreground. Config lookup: CONFIG (a file, or a directory "
        "holding config.yaml or plano_config.yaml), else ./config.yaml, else ./plano_config.yaml, else "
        "Plano's zero-config default: a wildcard provider for each common LLM provider, keyed from its "
        "API-key variable when set, else passing the client's key through. Logs go to stderr.",
    )
    up.add_argument("config", nargs="?", help="path to a Plano config file (or a directory holding one)")
    up.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes sharing the listening sockets (default: plano_trio.workers, else 1)",
    )
    up.add_argument(
        "--listener-port",
        type=int,
        metavar="PORT",
        help="override the model listener's port (0 picks a free port; the log line says which)",
    )
    validate = commands.add_parser(
        "validate",
        parents=[common],
        help="check a config file; exit 0, or 1 listing every problem",
    )
    validate.add_argument("config", help="path to a Plano config file")
    add_init_command(commands, [common])
    add_trace_command(commands, [common])
    add_obs_command(commands, [common])
    return parser


def _load(path: Path | None, text: str | None = None) -> Config | None:
    """The config at `path`, or (`path` None) the synthesized `text`; None after printing why not."""
    where = str(path) if path is not None else SOURCE
    try:
        return load_config(path) if path is not None else load_config_text(text or "", source=SOURCE)
    except ConfigError as error:
        print(f"{where}: invalid config:\n{error}", file=sys.stderr)
        return None
    except OSError as error:
        print(f"{where}: cannot read config: {error.strerror or error}", file=sys.stderr)
        return None


def _zero_config(directory: Path, listener_port: int | None) -> Config | None:
    """Plano's default config when `directory` has none; logs which providers use which auth."""
    port = DEFAULT_LISTENER_PORT if listener_port is None else listener_port
    synthesized = zero_config(os.environ, port)
    log.info(
        "no config.yaml or plano_config.yaml in %s: serving Plano's zero-config default, a wildcard "
        "provider for each of %d providers (%s), traces to %s. `plano-trio init` writes a config to start "
        "from.",
        directory,
        len(synthesized.keyed) + len(synthesized.passthrough),
        synthesized.summary,
        DEFAULT_OTLP_ENDPOINT,
    )
    return _load(None, synthesized.text)


def _report(config: Config) -> None:
    for warning in config.warnings:
        log.warning("config: %s", warning)
    if config.unsupported:
        log.warning(
            "config keys accepted but not supported yet (they have no effect): %s",
            ", ".join(config.unsupported),
        )


def with_model_listener_port(config: Config, port: int) -> Config:
    listeners = tuple(
        msgspec.structs.replace(listener, port=port) if listener.type == "model" else listener
        for listener in config.listeners
    )
    return msgspec.structs.replace(config, listeners=listeners)


def cmd_validate(args: argparse.Namespace) -> int:
    path = Path(args.config)
    config = _load(path)
    if config is None:
        return 1
    _report(config)
    print(f"{path}: OK ({len(config.model_providers)} providers, {len(config.listeners)} listeners)")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    path = find_config_file(args.config, Path.cwd())
    if path is None:  # no argument, or a directory without a config in it
        config = _zero_config(Path.cwd() / (args.config or ""), args.listener_port)
    else:
        config = _load(path)
    if config is None:
        return 1
    if args.listener_port is not None:
        config = with_model_listener_port(config, args.listener_port)
    workers = args.workers or config.server.workers
    if workers > 1 and config.state_storage is not None and config.state_storage.type == "memory":
        print("--workers > 1 needs state_storage type postgres (or none)", file=sys.stderr)
        return 1
    log.info("plano-trio %s starting with %s", __version__, path or SOURCE)
    _report(config)
    from plano_trio.server.serve import serve  # heavy imports only when serving

    if workers > 1:
        from plano_trio.server.workers import run_workers

        return run_workers(config, workers)
    try:
        trio.run(partial(serve, config, tune_gc=True))
    except BaseExceptionGroup as group:
        startup = group.subgroup((StateStartupError, MetricsStartupError))
        if startup is None:
            raise
        log.error("%s", _first(startup))
        return 1
    except (StateStartupError, MetricsStartupError) as error:
        log.error("%s", error)
        return 1
    return 0


def _first(group: BaseExceptionGroup[Exception]) -> BaseException:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    if args.command == "validate":
        return cmd_validate(args)
    if args.command == "trace":
        return run_trace(args)
    if args.command == "obs":
        return run_obs(args)
    if args.command == "init":
        return run_init(args)
    return cmd_up(args)


if __name__ == "__main__":
    sys.exit(main())
