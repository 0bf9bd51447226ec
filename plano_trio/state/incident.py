"""One log line per database incident, not one per request.

While the database is down, every request that needs it fails the same way;
logging each would flood the log at request rate and bury the first line,
which is the one that says what broke.  `IncidentLog` logs the first failure
with its detail, then at most one line per `interval_s` carrying how many
failures it did not log, and one line when an operation succeeds again.  The
clock is injected so the policy is tested without sleeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any


class IncidentLog:
    def __init__(
        self,
        logger: logging.Logger,
        message: str,
        *,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._message = message
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

    def failure(self, fields: dict[str, Any]) -> bool:
        """Record one failure; log it (with `fields`) if it starts an incident or the interval passed.

        Returns whether a line was logged.
        """
        now = self._clock()
        self._failures += 1
        if self._active and now - self._last_logged < self._interval_s:
            self._unlogged += 1
            return False
        extra = {**fields, "failures": self._failures, "not_logged": self._unlogged}
        self._logger.warning(self._message, extra={"fields": extra})
        self._active = True
        self._last_logged = now
        self._unlogged = 0
        return True

    def success(self) -> bool:
        """Record a success; log the end of an incident (with its failure count) if one was active."""
        if not self._active:
            return False
        self._logger.info("state database reachable again", extra={"fields": {"failures": self._failures}})
        self._active = False
        self._unlogged = 0
        self._failures = 0
        return True
