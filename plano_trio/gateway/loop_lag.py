"""How late the event loop runs, and whether that is too late to take a new LLM request.

One process runs one trio loop on one core.  Past what that core can
relay, established streams keep their pace (one pass of the run loop per
token) but a new request needs about a dozen passes before its first token,
each waiting behind a whole pass: at 1,000 long streams new ones waited
seconds (`bench/README.md`, long streams).  How long a pass takes is the
signal: `server.lag_monitor` sleeps a short period over and over and feeds
how late each wake-up came (`observe`); `Admission` refuses new LLM
requests while `over` is true (`plano_trio.max_loop_lag_ms`).

This module is the decision alone, pure and cheap: no clock, no I/O.
"""

from __future__ import annotations

WINDOW = 3
"""Wake-ups the lag is the median of."""


class LoopLag:
    """The loop's lag: the median of its last `WINDOW` oversleeps, against a limit.

    Why the median of three, and not the last sample, a maximum, a minimum
    or a moving average:

    * one late wake-up says little: a single long step (a full GC pass, a
      large body parsed) delays one wake and is over; refusing requests for
      it would only turn away work the loop is about to have time for.  The
      median ignores one such sample, whatever its size (a moving average
      would carry a 2 s stall above any limit for many samples);
    * a wake-up's oversleep under load is noisy by nature: the monitor lands
      anywhere in the batch of tasks that runs once its deadline has passed,
      so it waits from almost nothing to about two passes.  The median of
      three sits near the middle of that spread, where a minimum would
      report about half the real pass time;
    * it acts as hysteresis at both ends: shedding starts after two late
      wake-ups in a row (about two passes once the loop is that slow) and
      stops after two timely ones (about two periods once the loop has
      caught up), so one slow pass never flips it on, nor one quick pass off.

    `lag_s` and `over` are plain attributes, updated on each `observe`:
    reading them is all a request's admission costs.
    """

    __slots__ = ("_recent", "lag_s", "limit_s", "over")

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.lag_s = 0.0
        """The median of the last `WINDOW` oversleeps, in seconds (0 until enough have been seen)."""
        self.over = False
        """True while `lag_s` exceeds `limit_s`: new LLM requests are refused."""
        self._recent = [0.0] * WINDOW
        """The last `WINDOW` oversleeps, oldest first (zeros before the first wake-ups)."""

    def observe(self, oversleep_s: float) -> None:
        """One wake-up of the monitor came `oversleep_s` after its deadline (a negative value counts as 0)."""
        recent = self._recent
        del recent[0]
        recent.append(max(0.0, oversleep_s))
        self.lag_s = sorted(recent)[WINDOW // 2]
        self.over = self.lag_s > self.limit_s
