"""How many client connections a listener may hold open, from the process's descriptor limit.

Every accepted client connection holds a file descriptor until it closes, and
a proxied request holds a second one: its upstream socket to the provider.
The process needs a few more of its own: listening sockets, the state store's
Postgres connections, log files, CA bundle reads, idle pooled upstream
sockets, trio's wake-up pipe.  Once `accept` fails with EMFILE nothing gets
in any more, not even a load balancer's `/healthz`, so the server stops
accepting well before the limit instead (see `server.lanes`).

`connection_bound` is the rule, as a pure function; `raise_nofile_limit` is
the one piece of I/O (a syscall at start-up).
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("plano_trio.server")

MIN_RESERVE = 64
"""Descriptors always kept for the process itself, however small the limit."""

MIN_CONNECTIONS = 8
"""A derived bound never goes below this, so a tiny limit still serves something."""

_NR_OPEN = Path("/proc/sys/fs/nr_open")
_NR_OPEN_FALLBACK = 1 << 20
"""Linux's default `fs.nr_open`: the most a soft limit may be raised to when the hard one is unlimited."""


def connection_bound(configured: int, soft_limit: int, listeners: int) -> int:
    """Open client connections allowed per listener.

    `configured > 0` is the operator's explicit per-listener bound and wins.
    Otherwise: keep `max(64, soft_limit // 4)` descriptors for the process
    itself (including each listener's overflow lane), split the rest in half
    between client connections and the upstream sockets their requests open
    (one each, in the worst case every connection is proxying), and share the
    client half evenly between listeners.  With the common soft limit of
    1,024 that is (1024 - 256) // 2 = 384 connections for one listener.
    """
    if configured > 0:
        return configured
    reserve = max(MIN_RESERVE, soft_limit // 4)
    return max(MIN_CONNECTIONS, (soft_limit - reserve) // 2 // max(1, listeners))


@dataclass(frozen=True, slots=True)
class NofileLimit:
    soft: int
    """The soft RLIMIT_NOFILE now in force (what `accept` runs into)."""
    before: int
    """The soft limit the process started with."""
    hard: int


def _ceiling(hard: int) -> int:
    """The highest soft limit the kernel accepts: the hard limit, or `fs.nr_open` if that is unlimited."""
    if hard != resource.RLIM_INFINITY:
        return hard
    try:
        return int(_NR_OPEN.read_text())
    except (OSError, ValueError):
        return _NR_OPEN_FALLBACK


def raise_nofile_limit() -> NofileLimit:
    """Raise the soft RLIMIT_NOFILE to the hard limit, as servers commonly do, and log the outcome.

    Distributions start processes with a soft limit of 1,024 (a historical
    value kept for programs that use `select`) and a far higher hard limit
    any process may raise itself to; trio uses epoll, so the soft limit only
    ever gets in the way.  If the kernel refuses, the current limit stays and
    the connection bound is derived from it.
    """
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = before
    target = _ceiling(hard)
    if before == resource.RLIM_INFINITY or before >= target:
        soft = min(before, target)
    else:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError) as error:
            log.warning("could not raise the file-descriptor limit from %d to %d: %s", before, target, error)
    limit = NofileLimit(soft=soft, before=before, hard=hard)
    log.info("file descriptors: soft limit %d (was %d, hard %s)", soft, before, _show(hard))
    return limit


def _show(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else str(value)
