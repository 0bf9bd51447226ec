"""``python -m tools.zipapp OUT``: build the single-file gateway with shiv (``make zipapp`` calls this).

Why shiv: of shiv, pex and the stdlib ``zipapp``, only shiv and pex run the native extensions (msgspec,
psycopg-binary) from a zip, and shiv gave the smallest file and fastest start (``docs/measurements.md``,
"Zipapp: shiv vs pex vs stdlib").  The command is exactly the one the start-up scenario expects::

    shiv -o OUT -e plano_trio.cli:main -p "/usr/bin/env python3" <repo>

The shiv next to this interpreter is preferred (it is in the ``bench`` extra), then one on PATH.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def shiv_command(out: Path, repo: Path = REPO) -> list[str]:
    local = Path(sys.executable).parent / "shiv"
    exe = str(local) if local.exists() else shutil.which("shiv")
    if exe is None:
        raise SystemExit("shiv not found: pip install shiv (it is in the `bench` extra)")
    return [exe, "-o", str(out), "-e", "plano_trio.cli:main", "-p", "/usr/bin/env python3", str(repo)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.zipapp", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output file, e.g. dist/plano-trio.pyz")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = shiv_command(out)
    print("+ " + " ".join(f"'{c}'" if " " in c else c for c in cmd), flush=True)
    t0 = time.perf_counter()
    code = subprocess.run(cmd, check=False).returncode
    if code == 0:
        size = out.stat().st_size / 2**20
        print(f"built {out} ({size:.1f} MiB) in {time.perf_counter() - t0:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
