"""One conversation analysed: `analyze` (a decoded request to its report) and `analyse` (a job's body to
the `Analysis` the worker sends back).

Only the signals worker's process imports this module (`worker.main`, as it
starts), and with it the detectors, their phrase indexes and patterns: the
gateway's process, which only queues jobs and reads results, never loads
the analysis (`frames` is all it needs).
"""

from __future__ import annotations

import time

import msgspec

from plano_trio.apis.kind import Api

from .analyzer import analyze_rows
from .frames import APIS, Analysis
from .normalize import conversation
from .report import SignalReport


def analyze(api: Api, request: object, response: object = None) -> SignalReport:
    """The signal report of a client request's conversation (and the response's turn, when given).

    Raises `ConversationError` only when `request` is not a JSON object.
    """
    return analyze_rows(conversation(api, request, response))


def analyse(api_index: int, body: bytes, span: bool = True) -> Analysis:
    """One job: the body decoded and analysed, as Plano reads the request's messages; without `span`,
    the result leaves out the span attributes and events."""
    started = time.process_time()
    try:
        request = msgspec.json.decode(body)
        report = analyze(APIS[api_index], request)
    except Exception as error:  # a body the edge accepted but the analysis cannot read, or a bug
        return Analysis(error=f"{type(error).__name__}: {error}"[:500], cpu_s=time.process_time() - started)
    return Analysis(
        quality=report.quality.value,
        score=report.quality_score,
        concerning=report.concerning,
        turns=report.turns.total_turns,
        attributes=report.span_attributes() if span else {},
        events=report.span_events() if span else [],
        types=report.types(),
        cpu_s=time.process_time() - started,
    )
