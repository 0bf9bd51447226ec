"""bench.opcodes: naming and layering of traced code, and one real count through a running gateway."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.opcodes import REPO_ROOT, by_layer, count_tree, layer_of, read_counts, short_name

SP = "/venv/lib/python3.11/site-packages"


@pytest.mark.parametrize(
    ("filename", "short", "layer"),
    [
        (f"{SP}/trio/_core/_run.py", "trio/_core/_run.py", "trio scheduler"),
        (f"{SP}/trio/_socket.py", "trio/_socket.py", "trio sockets & streams"),
        (f"{SP}/outcome/_impl.py", "outcome/_impl.py", "other"),
        (
            "<attrs generated methods outcome._impl.Value>",
            "<attrs generated methods outcome._impl.Value>",
            "other",
        ),
        (f"{SP}/h11/_headers.py", "h11/_headers.py", "h11"),
        (f"{SP}/hypercorn/protocol/h11.py", "hypercorn/protocol/h11.py", "hypercorn"),
        ("/work/main/plano_trio/sockio.py", "plano_trio/sockio.py", "ours"),
        (
            "/work/main/plano_trio/server/connection.py",
            "plano_trio/server/connection.py",
            "ours: server edge",
        ),
        ("/tmp/plano-trio-ab-x/plano_trio/upstream/http1.py", "plano_trio/upstream/http1.py", "ours"),
        (
            "/usr/lib/python3.11/collections/__init__.py",
            "/usr/lib/python3.11/collections/__init__.py",
            "other",
        ),
        ("<frozen runpy>", "<frozen runpy>", "other"),
    ],
)
def test_short_name_and_layer(filename: str, short: str, layer: str) -> None:
    assert short_name(filename) == short
    assert layer_of(short) == layer


def test_read_counts_merges_trees_and_layers(tmp_path: Path) -> None:
    dump = tmp_path / "g.opcodes"
    dump.write_text(
        f"10\t/a/plano_trio/sockio.py\treceive_some\n"
        f"5\t/b/plano_trio/sockio.py\treceive_some\n"
        f"7\t{SP}/trio/_core/_run.py\tunrolled_run\n"
    )
    counts = read_counts(dump)
    assert counts == {("plano_trio/sockio.py", "receive_some"): 15, ("trio/_core/_run.py", "unrolled_run"): 7}
    assert by_layer({key: float(n) for key, n in counts.items()}) == {"ours": 15.0, "trio scheduler": 7.0}


def test_counts_a_running_gateway(tmp_path: Path) -> None:
    """The recorder in front of `plano_trio up`, switched by signals, sees the relay's own functions."""
    counts = count_tree(REPO_ROOT, tmp_path, "new", "gpt-4o-mini", streams=2, deltas=10)
    layers = by_layer(counts)
    assert layers["ours"] > 100 and layers["trio scheduler"] > 100
    assert counts[("plano_trio/upstream/http1.py", "_read_chunked")] > 0
