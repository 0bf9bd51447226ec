"""`plano-trio init`: write a config to start from, as `planoai init` does.

    plano-trio init --list-templates
    plano-trio init --template ID|PATH [-o FILE] [--force]
    plano-trio init                      # at a terminal: pick a template from a numbered list

A template is one of Plano's (`plano_trio.config.templates`) or a YAML file
of your own.  Before anything is written the template is checked exactly as
`plano-trio validate` checks a file, so `init` never leaves a config behind
that would not start; the one thing it cannot check is an API-key variable
the shell has not set yet, which it names instead (the config is written).
An existing file is kept unless `--force`.  Plano's `--clean` (an empty
file, which no loader accepts) is not offered.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plano_trio.config import ConfigError, load_config_text
from plano_trio.config.templates import BY_ID, TEMPLATES, Template

DEFAULT_OUTPUT = "config.yaml"
MAX_TEMPLATE_BYTES = 1024 * 1024
"""A template file of your own larger than this is refused (configs are a few kB)."""

_UNSET = re.compile(r"environment variable ([A-Za-z_][A-Za-z0-9_]*) is not set")
"""The loader's problem for an unset `$VAR`: not a flaw of the template, only of this shell."""

Ask = Callable[[str], str]


class InitError(Exception):
    """Why nothing was written (printed as is, exit status 1)."""


def add_init_command(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `init` to the CLI's subcommands (`commands` is argparse's subparsers object)."""
    init = commands.add_parser(
        "init",
        parents=parents,
        help="write a config to start from (Plano's templates)",
        description="Write a config from a template: one of Plano's (see --list-templates) or a YAML file "
        "of your own. It is checked like `plano-trio validate` before it is written. At a terminal, "
        "without --template, pick one from a list.",
    )
    init.add_argument("--template", metavar="ID|PATH", help="a template id (--list-templates) or a YAML file")
    init.add_argument("--list-templates", action="store_true", help="list the template ids and exit")
    init.add_argument(
        "-o",
        "--output",
        default=DEFAULT_OUTPUT,
        metavar="FILE",
        help=f"where to write (default: {DEFAULT_OUTPUT})",
    )
    init.add_argument("--force", action="store_true", help="overwrite FILE if it exists")


def run_init(args: argparse.Namespace, ask: Ask = input) -> int:
    if args.list_templates:
        width = max(len(t.id) for t in TEMPLATES)
        for template in TEMPLATES:
            print(f"  {template.id:<{width}}  {template.description}")
        return 0
    try:
        if args.template is not None:
            name, text = load_template(args.template)
            output = Path(args.output).expanduser()
        elif sys.stdin.isatty():
            chosen, output = _interactive(ask, Path(args.output).expanduser(), args.force)
            if chosen is None:
                print("Cancelled.")
                return 1
            name, text = chosen.id, chosen.text()
            args.force = True  # the prompt asked already
        else:
            raise InitError("choose a template: plano-trio init --template ID (--list-templates lists them)")
        missing = check_template(text, name)
        write_config(output, text, force=args.force)
    except InitError as error:
        print(f"plano-trio init: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {output} ({name})")
    if missing:
        print(f"Before `plano-trio up {output}`, set: {', '.join(missing)}")
    else:
        print(f"Next: plano-trio up {output}")
    return 0


def load_template(id_or_path: str) -> tuple[str, str]:
    """(name, YAML text) of a built-in template id, else of the file at that path."""
    template = BY_ID.get(id_or_path)
    if template is not None:
        return template.id, template.text()
    path = Path(id_or_path).expanduser()
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_TEMPLATE_BYTES + 1)
    except FileNotFoundError:
        ids = ", ".join(BY_ID)
        raise InitError(
            f"unknown template {id_or_path!r}: neither a template id ({ids}) nor a file"
        ) from None
    except OSError as error:
        raise InitError(f"cannot read template {path}: {error.strerror or error}") from None
    if len(raw) > MAX_TEMPLATE_BYTES:
        raise InitError(f"template {path} is larger than {MAX_TEMPLATE_BYTES} bytes")
    try:
        return str(path), raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InitError(f"template {path} is not UTF-8 text ({error.reason} at byte {error.start})") from None


def check_template(text: str, name: str) -> list[str]:
    """The API-key variables the template needs that this environment lacks; InitError if it is invalid."""
    try:
        load_config_text(text, source=name, env=os.environ)
    except ConfigError as error:
        missing = [m.group(1) for p in error.problems if (m := _UNSET.fullmatch(p.message))]
        flaws = [p for p in error.problems if not _UNSET.fullmatch(p.message)]
        if flaws:
            raise InitError(f"template {name} is not a valid config:\n{ConfigError(flaws, name)}") from None
        return list(dict.fromkeys(missing))
    return []


def write_config(output: Path, text: str, *, force: bool) -> None:
    """Write `text` to `output` (parent directories made); an existing file only with `force`."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w" if force else "x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        raise InitError(f"refusing to overwrite {output} (use --force)") from None
    except OSError as error:
        raise InitError(f"cannot write {output}: {error.strerror or error}") from None


def _interactive(ask: Ask, output: Path, force: bool) -> tuple[Template | None, Path]:
    """A numbered list at the terminal; (None, _) when cancelled (EOF, Ctrl-C, a declined overwrite)."""
    print("Templates:")
    for number, template in enumerate(TEMPLATES, 1):
        print(f"  {number}) {template.title}: {template.description}")
    try:
        while True:
            answer = ask(f"Template [1-{len(TEMPLATES)}, default 1]: ").strip() or "1"
            if answer.isdigit() and 1 <= int(answer) <= len(TEMPLATES):
                chosen = TEMPLATES[int(answer) - 1]
                break
            if answer in BY_ID:
                chosen = BY_ID[answer]
                break
            print(f"  {answer!r} is not one of the numbers (or ids) above")
        output = Path(ask(f"Write to [{output}]: ").strip() or output).expanduser()
        if (
            output.exists()
            and not force
            and ask(f"{output} exists. Overwrite? [y/N]: ").strip().lower() != "y"
        ):
            return None, output
    except (EOFError, KeyboardInterrupt):
        print()
        return None, output
    return chosen, output
