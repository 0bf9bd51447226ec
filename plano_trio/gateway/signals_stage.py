"""The signals stage: a finished LLM request's conversation, analysed off the request, then reported.

Runs after the observe stage, when the response is fully sent: `submit`
hands the client's request body (kept by the pipeline in
`Outcome.conversation`) to the signals worker's bounded queue and returns
at once.  When the analysis comes back (`PendingAnalysis.settle`, on the
trio thread, from the worker's reader task), it is counted in the
`plano_trio_signals_*` metrics, written as one `plano_trio.signals` log
line, and handed to whatever waits for it: a traced request's span, which
`trace_spans.finish` holds back until then, so it is exported once, with
the `signals.*` attributes, the `signal.<type>` events and the 🚩 name.

Which requests: LLM requests of a model listener that the provider
answered and the client received whole (`result == "ok"`), as Plano
analyses every LLM response whose stream completed, traced or not.  The
conversation is the client's request as it arrived (before input filters),
as Plano reads `messages` when it parses the request; the answer is not
part of it.  A request the queue cannot take is skipped and counted
(`queue_full`); its span goes out at once, without signals.

The log line comes after the request's access line, as its own line
(`plano_trio.signals` logger, INFO): the access line is written when the
response ends, and holding it back for the analysis would delay every
request's log by the queue's wait and make a skipped analysis hold up
nothing but still be invisible.  Fields: `request_id` and `trace_id` (to
join the two lines), `quality`, `score`, `concerning`, `turns`, `types`
(`type:count`, comma-separated) and `analysis_ms` (the worker's CPU time).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from plano_trio.gateway.context import RequestContext
from plano_trio.gateway.observe import Outcome
from plano_trio.gateway.signals_worker import Failure, SignalsWorker
from plano_trio.metrics import labels
from plano_trio.metrics.record import GATEWAY
from plano_trio.signals.frames import Analysis

signals_log = logging.getLogger("plano_trio.signals")

Waiter = Callable[[Analysis | None], None]


class PendingAnalysis:
    """One request's analysis in the worker's queue; `then` registers what waits for it."""

    __slots__ = ("_waiters", "request_id", "trace_id")

    def __init__(self, request_id: str, trace_id: str | None) -> None:
        self.request_id = request_id
        self.trace_id = trace_id
        self._waiters: list[Waiter] = []

    def then(self, waiter: Waiter) -> None:
        """Call `waiter` with the analysis (None: none came) once the worker is done with it."""
        self._waiters.append(waiter)

    def settle(self, analysis: Analysis | None, failure: Failure | None) -> None:
        """The worker's answer: counted, logged, then handed to the waiters (the worker's `done`)."""
        if failure is None and analysis is not None:
            GATEWAY.signals_analysed(analysis.quality, analysis.types, analysis.concerning, analysis.cpu_s)
            log_analysis(self, analysis)
        else:
            GATEWAY.signals_failed(failure or "error")
            analysis = None
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter(analysis)


def submit(
    worker: SignalsWorker | None, ctx: RequestContext, outcome: Outcome, handler: str
) -> PendingAnalysis | None:
    """Queue the request's conversation for analysis; None when it is not analysed."""
    if (
        worker is None
        or outcome.conversation is None
        or handler != labels.LLM_CHAT
        or outcome.result != "ok"
        or not outcome.upstream_status
    ):
        return None
    api, body = outcome.conversation
    trace = ctx.trace
    pending = PendingAnalysis(ctx.request_id.decode("ascii"), trace.trace_id_hex if trace else None)
    refused = worker.submit(api, body, pending.settle, span=trace is not None)
    if refused is not None:
        GATEWAY.signals_skipped(refused)
        return None
    return pending


def log_analysis(pending: PendingAnalysis, analysis: Analysis) -> None:
    if not signals_log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, object] = {"request_id": pending.request_id}
    if pending.trace_id is not None:
        fields["trace_id"] = pending.trace_id
    fields["quality"] = analysis.quality
    fields["score"] = round(analysis.score, 2)
    fields["concerning"] = analysis.concerning
    fields["turns"] = analysis.turns
    fields["types"] = ",".join(f"{name}:{count}" for name, count in analysis.types.items())
    fields["analysis_ms"] = round(analysis.cpu_s * 1000, 2)
    signals_log.info("signals %s %s", analysis.quality, fields["score"], extra={"fields": fields})
