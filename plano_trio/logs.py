"""Logging to stderr: readable lines for people, JSON lines for machines.

Structured fields travel in `extra={"fields": {...}}`; the human formatter
renders them as `key=value`, the JSON formatter as top-level keys.
`IncidentLog` is the policy every outage of a dependency (the state
database, the session cache) is logged with.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

LogFormat = Literal["human", "json"]


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        text = f"{stamp}.{int(record.msecs):03d} {record.levelname:<7} {record.name}: {record.getMessage()}"
        fields = _fields(record)
        if fields:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str = "info", fmt: LogFormat = "human") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # hypercorn's own access log duplicates ours; its error log stays.
    logging.getLogger("hypercorn.access").disabled = True


class IncidentLog:
    """One log line per outage of a dependency, not one per request.

    While a database or cache is down, every request that needs it fails the
    same way; logging each would flood the log at request rate and bury the
    first line, which is the one that says what broke.  This logs the first
    failure with its detail (a warning), then at most one line per
    `interval_s` carrying how many failures it did not log, and one line
    (info) when an operation succeeds again.  `context` fields (which
    dependency) go on every line.  The clock is injected so the policy is
    tested without sleeping.
    """

    __slots__ = (
        "_active",
        "_clock",
        "_context",
        "_failures",
        "_interval_s",
        "_last_logged",
        "_logger",
        "_message",
        "_recovered",
        "_unlogged",
    )

    def __init__(
        self,
        logger: logging.Logger,
        message: str,
        recovered: str,
        *,
        context: Mapping[str, Any] | None = None,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._message = message
        self._recovered = recovered
        self._context = dict(context or {})
        self._interval_s = interval_s
        self._clock = clock
        self._active = False
        self._last_logged = 0.0
        self._unlogged = 0
        self._failures = 0

    @property
    def active(self) -> bool:
        """True between a failure and the next success."""
        return self._active

    def failure(self, fields: Mapping[str, Any]) -> bool:
        """Record one failure; log it (with `fields`) if it starts an incident or the interval passed.

        Returns whether a line was logged.
        """
        now = self._clock()
        self._failures += 1
        if self._active and now - self._last_logged < self._interval_s:
            self._unlogged += 1
            return False
        extra = {**self._context, **fields, "failures": self._failures, "not_logged": self._unlogged}
        self._logger.warning(self._message, extra={"fields": extra})
        self._active = True
        self._last_logged = now
        self._unlogged = 0
        return True

    def success(self) -> bool:
        """Record a success; log the end of an incident (with its failure count) if one was active."""
        if not self._active:
            return False
        self._logger.info(self._recovered, extra={"fields": {**self._context, "failures": self._failures}})
        self._active = False
        self._unlogged = 0
        self._failures = 0
        return True
