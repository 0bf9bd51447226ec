"""The task that measures how late the event loop runs (`plano_trio.max_loop_lag_ms`).

It sleeps `PERIOD_S` over and over and tells `gateway.loop_lag.LoopLag` how
late each wake-up came: the time the loop spent on every other task once
the deadline had passed, i.e. the length of its passes.  `serve` starts it
only when the key is set, next to the server's other per-process tasks, and
cancels it on the way down.
"""

from __future__ import annotations

import trio

from plano_trio.gateway.loop_lag import LoopLag

PERIOD_S = 0.05
"""Time between two measurements.

Short, because shedding starts after two late wake-ups in a row: with a
loop running L late, that is about 2 x (PERIOD_S + L) after the overload
began, and stopping takes about 2 x PERIOD_S once the loop has caught up.
Not shorter, because trio's waits are at best millisecond-exact (epoll's
timeout), so a period near the limits one sets (tens of ms) gains no
precision, and because each wake-up costs CPU.  Measured on the bench VM:
under load a wake-up is one more task step among thousands (`bench.ab`,
JSON c=32 with and without the key: 1.01x, within its noise); on an idle
gateway it runs cold, about 0.5 ms each, so the process goes from 0.5 to
11 ms of CPU a second (1 % of a core) while nothing else happens.
"""


async def watch_loop_lag(lag: LoopLag, period_s: float = PERIOD_S) -> None:
    """Measure until cancelled: each wake-up's delay past its deadline goes to `lag`."""
    while True:
        due = trio.current_time() + period_s
        await trio.sleep_until(due)
        lag.observe(trio.current_time() - due)
