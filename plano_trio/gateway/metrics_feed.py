"""The cost and latency feeds behind `prefer: cheapest | fastest`: fetched at startup, refreshed aside.

Requests read `MetricsFeed.snapshot`, a plain attribute holding an immutable
`MetricsSnapshot`; a fetch builds a new snapshot and assigns it in one step,
so a request never awaits the feed and never sees half of an update.

Fetches go through the gateway's own upstream client (http, https) or read a
`file://` path in a worker thread.  Every fetch is bounded: the pool's
connect timeout (5 s by default, as Plano), `fetch_timeout_s` overall (30 s,
as Plano), `body_limit` bytes.  Where plano-trio differs from Plano:

- a feed that cannot be read at startup is a startup error (`load` raises
  `MetricsStartupError`) instead of a silent empty map that ranks every model
  "without data" — unless the caller asks for Plano's leniency
  (`strict=False`);
- a refresh that fails keeps the last good data (Plano replaces it with an
  empty map until the next period), is counted and logged in one line;
- a non-2xx answer is a failure even if its body happens to parse.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar
from urllib.parse import SplitResult, quote, unquote, urlencode, urljoin, urlsplit

import trio

from plano_trio.config.metrics_sources import CostSource, LatencySource, MetricsSources
from plano_trio.router.metrics import (
    EMPTY_SNAPSHOT,
    FeedError,
    MetricsSnapshot,
    parse_cost,
    parse_prometheus,
)
from plano_trio.upstream import Origin, UpstreamError, UpstreamPool

log = logging.getLogger("plano_trio.routing")

FETCH_TIMEOUT_S = 30.0
"""Bound on one fetch, connect to last body byte (Plano's client timeout)."""
BODY_LIMIT = 32 * 1024 * 1024
"""Largest feed body kept: models.dev's whole catalog is a few MiB; an endless body must not fill memory."""
MAX_REDIRECTS = 5
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_HEADERS: list[tuple[bytes, bytes]] = [
    (b"accept", b"application/json"),
    (b"accept-encoding", b"identity"),  # our client does not decompress
    (b"user-agent", b"plano-trio"),
]
_URL_SAFE = "/%:@!$&'()*+,;=-._~?"
_T = TypeVar("_T")


class MetricsStartupError(Exception):
    """A metrics source could not be read at startup; the message names each failed source and why."""


class _FetchFailed(Exception):
    """One fetch of one source failed (network, status, size, timeout or shape)."""


class MetricsFeed:
    """The latest cost and latency data, and the fetching that keeps it fresh.

    `load` fills it once before the listeners open; `refresh_forever` is
    started by the server in its nursery and refetches each source on its
    `refresh_interval`.  Per source (`"cost"`, `"latency"`):
    `last_refresh` is the wall-clock time of the last good fetch,
    `refresh_failures` counts failed refreshes, `last_error` says why the
    latest one failed.
    """

    def __init__(
        self,
        sources: MetricsSources,
        *,
        fetch_timeout_s: float = FETCH_TIMEOUT_S,
        body_limit: int = BODY_LIMIT,
    ) -> None:
        self.sources = sources
        self.snapshot: MetricsSnapshot = EMPTY_SNAPSHOT
        self.fetch_timeout_s = fetch_timeout_s
        self.body_limit = body_limit
        self.last_refresh: dict[str, float] = {}
        self.refresh_failures: dict[str, int] = {}
        self.refresh_attempts: dict[str, int] = {}
        """Refreshes tried (good or failed), after the initial load."""
        self.last_error: dict[str, str] = {}
        for kind in self._kinds():
            self.refresh_failures[kind] = 0
            self.refresh_attempts[kind] = 0

    def _kinds(self) -> list[str]:
        return [
            kind
            for kind, source in (("cost", self.sources.cost), ("latency", self.sources.latency))
            if source
        ]

    # --- startup --------------------------------------------------------------------------------------

    async def load(self, pool: UpstreamPool, *, strict: bool = True) -> None:
        """Fetch every source once, concurrently.

        With `strict` (the default), any source that fails raises
        `MetricsStartupError` listing every failure.  Without it, a failed
        source is logged and left empty, as Plano does.
        """
        failures: list[str] = []

        async def one(kind: str) -> None:
            try:
                await self._fetch_and_store(pool, kind)
            except _FetchFailed as exc:
                self.last_error[kind] = str(exc)
                failures.append(str(exc))

        async with trio.open_nursery() as nursery:
            for kind in self._kinds():
                nursery.start_soon(one, kind)
        if not failures:
            return
        if strict:
            raise MetricsStartupError("; ".join(sorted(failures)))
        for failure in sorted(failures):
            log.warning("metrics source unavailable at startup, its models rank last: %s", failure)

    # --- refresh --------------------------------------------------------------------------------------

    async def refresh_forever(
        self, pool: UpstreamPool, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Refetch each source that has a `refresh_interval`, on that period, until cancelled.

        Runs beside the requests, never in their way: a slow catalog delays
        only its own next snapshot.  A failed refresh keeps the data from the
        last good one.  Returns at once when no source refreshes.
        """
        async with trio.open_nursery() as nursery:
            for kind in self._kinds():
                source = self._source(kind)
                if source.refresh_interval_s is not None:
                    nursery.start_soon(self._refresh_loop, pool, kind, float(source.refresh_interval_s))
            task_status.started()

    async def _refresh_loop(self, pool: UpstreamPool, kind: str, interval_s: float) -> None:
        while True:
            await trio.sleep(interval_s)
            self.refresh_attempts[kind] += 1
            try:
                await self._fetch_and_store(pool, kind)
            except _FetchFailed as exc:
                self.refresh_failures[kind] += 1
                self.last_error[kind] = str(exc)
                log.warning(
                    "metrics refresh failed, keeping the last good data (%d failures so far): %s",
                    self.refresh_failures[kind],
                    exc,
                )

    # --- one fetch ------------------------------------------------------------------------------------

    def _source(self, kind: str) -> CostSource | LatencySource:
        source = self.sources.cost if kind == "cost" else self.sources.latency
        assert source is not None
        return source

    async def _fetch_and_store(self, pool: UpstreamPool, kind: str) -> None:
        """Fetch and parse one source, then swap it into the snapshot (only if both succeeded)."""
        source = self._source(kind)
        if isinstance(source, CostSource):
            label = f"{source.provider} cost source {_shown(source.url)}"
            body = await self._bounded(pool, source.url, label)
            rates = _parse(label, partial(parse_cost, source.provider, body, dict(source.model_aliases)))
            self.snapshot = self.snapshot._replace(rates=rates)
            count = len(rates)
        else:
            url = prometheus_query_url(source.url, source.query)
            label = f"prometheus latency source {_shown(url)}"
            body = await self._bounded(pool, url, label)
            latency = _parse(label, partial(parse_prometheus, body))
            self.snapshot = self.snapshot._replace(latency=latency)
            count = len(latency)
        self.last_refresh[kind] = time.time()
        self.last_error.pop(kind, None)
        log.info("fetched %s: %d models", label, count)

    async def _bounded(self, pool: UpstreamPool, url: str, label: str) -> bytes:
        with trio.move_on_after(self.fetch_timeout_s):
            try:
                if urlsplit(url).scheme == "file":
                    return await trio.to_thread.run_sync(
                        _read_file, _file_path(url), self.body_limit, abandon_on_cancel=True
                    )
                return await _http_get(pool, url, self.body_limit)
            except UpstreamError as exc:
                raise _FetchFailed(f"{label}: {exc.message}") from None
            except OSError as exc:
                raise _FetchFailed(f"{label}: {exc.strerror or exc}") from None
            except _FetchFailed as exc:
                raise _FetchFailed(f"{label}: {exc}") from None
        raise _FetchFailed(f"{label}: no complete answer within {self.fetch_timeout_s:g}s")


def _parse(label: str, parse: Callable[[], _T]) -> _T:
    try:
        return parse()
    except FeedError as exc:
        raise _FetchFailed(f"{label}: {exc}") from None


def prometheus_query_url(base: str, query: str) -> str:
    """`{base}/api/v1/query?query=...`: the Prometheus HTTP API's instant query, as Plano calls it."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/") + "/api/v1/query"
    params = urlencode({"query": query})
    return parts._replace(path=path, query=f"{parts.query}&{params}" if parts.query else params).geturl()


async def _http_get(pool: UpstreamPool, url: str, limit: int) -> bytes:
    """GET `url` through the pool, following a few redirects (as Plano's client does), body capped."""
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        origin, target, headers = _request_for(parts)
        async with await pool.request(origin, b"GET", target, headers, b"") as resp:
            if resp.status in _REDIRECTS:
                location = next((value for name, value in resp.headers if name == b"location"), None)
                if location is None:
                    raise _FetchFailed(f"HTTP {resp.status} without a Location")
                url = urljoin(url, location.decode("latin-1"))
                if urlsplit(url).scheme not in ("http", "https"):
                    raise _FetchFailed(f"redirected to a non-http URL {_shown(url)}")
                continue
            if not 200 <= resp.status < 300:
                raise _FetchFailed(f"HTTP {resp.status}")
            return await resp.read(limit=limit)
    raise _FetchFailed(f"more than {MAX_REDIRECTS} redirects")


def _request_for(parts: SplitResult) -> tuple[Origin, bytes, list[tuple[bytes, bytes]]]:
    """The pool's origin, the request target and headers for a checked http(s) URL."""
    try:
        host = (parts.hostname or "").encode("idna").decode("ascii")
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except (UnicodeError, ValueError) as exc:
        raise _FetchFailed(f"bad URL: {exc}") from None
    if not host or parts.scheme not in ("http", "https"):
        raise _FetchFailed("not an http(s) URL with a host")
    target = quote(parts.path or "/", safe=_URL_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_URL_SAFE)
    headers = list(_HEADERS)
    if (
        parts.username is not None
    ):  # `http://user:pass@prometheus:9090`, sent as Basic, as Plano's client does
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers.append((b"authorization", b"Basic " + base64.b64encode(credentials)))
    return Origin(parts.scheme, host, port), target.encode("ascii"), headers


def _file_path(url: str) -> str:
    return unquote(urlsplit(url).path)


def _read_file(path: str, limit: int) -> bytes:
    """The file's bytes, at most `limit` (runs in a worker thread: a disk or a FIFO may block)."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _FetchFailed(f"file is larger than {limit} bytes")
    return data


def _shown(url: str) -> str:
    """The URL for logs and errors, without credentials in it."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"***@{netloc}").geturl()
