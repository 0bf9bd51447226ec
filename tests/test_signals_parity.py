"""Parity with Plano's signal analyzer: conversations and what Plano's code reports for them.

Every expected value here was produced by running Plano's signals code
(`crates/brightstaff/src/signals/`, through its ShareGPT entry point, the
one its replay tool uses) on the conversation beside it, outside this
repository; the conversations are our own.  The table checks the set of
signal types with their counts, the quality band and score, and the 🚩
decision (Plano's parity harness calls this "tier A"); `FULL` checks every
span attribute and event, floats, snippets and metadata text included, and
the summary line.
"""

# ruff: noqa: E501 -- expected metadata is Plano's JSON text, kept whole so it can be compared by eye

from __future__ import annotations

from typing import Any

import pytest

from plano_trio.apis.kind import Api
from plano_trio.signals import analyze, analyze_rows, conversation
from plano_trio.signals.analyzer import forget

PARITY: list[tuple[str, list[list[str]], dict[str, int], str, float, bool]] = [
    (
        "clean_short_chat",
        [
            ["human", "Hello, can you help me with a question?"],
            ["gpt", "Of course, what's your question?"],
            ["human", "How does X work?"],
            ["gpt", "X works by ..."],
        ],
        {},
        "neutral",
        50.0,
        False,
    ),
    (
        "escalation_is_severe",
        [
            ["human", "This isn't helpful at all"],
            ["gpt", "I'm sorry, can you tell me more?"],
            ["human", "Get me a human, this is useless"],
        ],
        {"interaction.disengagement.escalation": 1},
        "severe",
        0.0,
        True,
    ),
    (
        "satisfied_user",
        [
            ["human", "Can you summarize this report?"],
            ["gpt", "Here's a summary: ..."],
            ["human", "That's perfect, exactly what I needed, you're awesome!"],
        ],
        {"interaction.satisfaction.gratitude": 1},
        "good",
        62.0,
        False,
    ),
    (
        "gratitude_not_misalignment",
        [
            ["human", "What is the weather in Istanbul?"],
            ["gpt", "Istanbul is 14C and partly cloudy."],
            ["human", "That worked, exactly what I needed. Thanks, that is perfect!"],
        ],
        {"interaction.satisfaction.gratitude": 1},
        "good",
        62.0,
        False,
    ),
    (
        "explicit_correction",
        [
            ["human", "Show me my orders"],
            ["gpt", "Sure, here are your invoices"],
            ["human", "No, I meant my recent orders"],
        ],
        {"interaction.misalignment.correction": 1},
        "poor",
        35.0,
        True,
    ),
    (
        "rephrase_marker",
        [["human", "Show me X"], ["gpt", "Sure"], ["human", "Let me rephrase: I want X grouped by date"]],
        {"interaction.misalignment.rephrase": 1},
        "poor",
        35.0,
        True,
    ),
    (
        "clarification",
        [
            ["human", "Run the report"],
            ["gpt", "Foobar quux baz."],
            ["human", "I don't understand what you mean"],
        ],
        {"interaction.misalignment.clarification": 1},
        "poor",
        35.0,
        True,
    ),
    (
        "semantic_rephrase",
        [
            ["human", "Please list the unpaid invoices for customer Acme in March"],
            ["gpt", "Here are all invoices."],
            ["human", "List unpaid invoices for customer Acme in March please"],
        ],
        {"interaction.misalignment.rephrase": 1},
        "poor",
        35.0,
        True,
    ),
    (
        "typo_correction_fuzzy",
        [["human", "Book a table for two"], ["gpt", "Booked for four."], ["human", "no i ment two"]],
        {},
        "neutral",
        50.0,
        False,
    ),
    (
        "quit",
        [
            ["human", "Can you fix my build?"],
            ["gpt", "Try clearing the cache."],
            ["human", "Forget it, I give up"],
        ],
        {"interaction.disengagement.quit": 1},
        "severe",
        0.0,
        True,
    ),
    (
        "all_caps_and_punctuation",
        [
            ["human", "WHY IS THIS STILL BROKEN AFTER ALL THAT"],
            ["gpt", "Let me check."],
            ["human", "Are you even listening???"],
        ],
        {"interaction.disengagement.negative_stance": 2},
        "neutral",
        40.0,
        True,
    ),
    (
        "positive_excitement",
        [["human", "Yes!! That's perfect!!!"]],
        {"interaction.satisfaction.gratitude": 1},
        "good",
        62.0,
        False,
    ),
    (
        "profanity",
        [["human", "Fix the login page"], ["gpt", "Done."], ["human", "this is bullshit, it still fails"]],
        {"interaction.disengagement.negative_stance": 1},
        "neutral",
        40.0,
        True,
    ),
    (
        "complaint",
        [["human", "Deploy the app"], ["gpt", "Deployed."], ["human", "It is still not working"]],
        {"interaction.disengagement.negative_stance": 1},
        "neutral",
        40.0,
        True,
    ),
    (
        "dragging_ten_turns",
        [
            ["human", "What were sales in January?"],
            ["gpt", "Here it is."],
            ["human", "And February?"],
            ["gpt", "Here it is."],
            ["human", "Which region led?"],
            ["gpt", "Here it is."],
            ["human", "Why did it drop?"],
            ["gpt", "Here it is."],
            ["human", "Show the margin trend"],
            ["gpt", "Here it is."],
            ["human", "Compare with last year"],
            ["gpt", "Here it is."],
            ["human", "Which product sold best?"],
            ["gpt", "Here it is."],
            ["human", "Any returns data?"],
            ["gpt", "Here it is."],
            ["human", "Forecast for next month?"],
            ["gpt", "Here it is."],
            ["human", "Summarize it"],
            ["gpt", "Here it is."],
        ],
        {"interaction.stagnation.dragging": 1},
        "neutral",
        50.0,
        False,
    ),
    (
        "nine_turns_not_dragging",
        [
            ["human", "What were sales in January?"],
            ["gpt", "Here it is."],
            ["human", "And February?"],
            ["gpt", "Here it is."],
            ["human", "Which region led?"],
            ["gpt", "Here it is."],
            ["human", "Why did it drop?"],
            ["gpt", "Here it is."],
            ["human", "Show the margin trend"],
            ["gpt", "Here it is."],
            ["human", "Compare with last year"],
            ["gpt", "Here it is."],
            ["human", "Which product sold best?"],
            ["gpt", "Here it is."],
            ["human", "Any returns data?"],
            ["gpt", "Here it is."],
            ["human", "Forecast for next month?"],
            ["gpt", "Here it is."],
        ],
        {},
        "neutral",
        50.0,
        False,
    ),
    (
        "exact_repetition",
        [
            ["human", "This widget is broken and needs repair right now"],
            ["gpt", "Sorry to hear that. Let me look into it."],
            ["human", "This widget is broken and needs repair right now"],
        ],
        {"interaction.misalignment.rephrase": 1, "interaction.stagnation.repetition": 1},
        "poor",
        35.0,
        True,
    ),
    (
        "near_duplicate_assistant",
        [
            ["human", "Help me plan the trip"],
            ["gpt", "I suggest visiting the old town first and then the museum district in the afternoon."],
            ["human", "ok and then?"],
            [
                "gpt",
                "I suggest visiting the old town first and then the museum district in the late afternoon.",
            ],
        ],
        {"interaction.stagnation.repetition": 1},
        "neutral",
        50.0,
        False,
    ),
    (
        "tool_invalid_args",
        [
            ["human", "create a user"],
            ["function_call", '{"name":"create_user","arguments":"{\\"age\\":\\"twelve\\"}"}'],
            ["observation", "Error: validation failed - expected integer got string"],
            ["function_call", '{"name":"create_user","arguments":"{}"}'],
            ["observation", "missing required field: name"],
        ],
        {"execution.failure.invalid_args": 2},
        "poor",
        34.0,
        True,
    ),
    (
        "tool_not_found_auth_state",
        [
            ["human", "do it"],
            ["function_call", '{"name":"send_thought","arguments":"{}"}'],
            ["observation", "Error: unknown function 'send_thought'"],
            ["function_call", '{"name":"get_secret","arguments":"{}"}'],
            ["observation", "HTTP 401 Unauthorized"],
            ["function_call", '{"name":"commit_tx","arguments":"{}"}'],
            ["observation", "must call begin_tx first"],
        ],
        {
            "execution.failure.tool_not_found": 1,
            "execution.failure.auth_misuse": 1,
            "execution.failure.state_error": 1,
        },
        "poor",
        26.0,
        True,
    ),
    (
        "bad_query_low_confidence",
        [
            ["human", "search"],
            ["function_call", '{"name":"search","arguments":"{\\"q\\":\\"x\\"}"}'],
            ["observation", "unknown field 'colour' in filter"],
        ],
        {"execution.failure.bad_query": 1},
        "neutral",
        42.0,
        True,
    ),
    (
        "retry_loop",
        [
            ["human", "status?"],
            ["function_call", '{"name":"check_status","arguments":"{\\"id\\":\\"abc\\"}"}'],
            ["function_call", '{"name":"check_status","arguments":"{\\"id\\":\\"abc\\"}"}'],
            ["function_call", '{"name":"check_status","arguments":"{\\"id\\":\\"abc\\"}"}'],
            ["function_call", '{"name":"check_status","arguments":"{\\"id\\":\\"abc\\"}"}'],
        ],
        {"execution.loops.retry": 1},
        "neutral",
        45.0,
        True,
    ),
    (
        "parameter_drift",
        [
            ["human", "find it"],
            ["function_call", '{"name":"search","arguments":"{\\"q\\": \\"a\\"}"}'],
            ["function_call", '{"name":"search","arguments":"{\\"q\\": \\"ab\\"}"}'],
            ["function_call", '{"name":"search","arguments":"{\\"q\\": \\"abc\\"}"}'],
            ["function_call", '{"name":"search","arguments":"{\\"q\\": \\"abcd\\"}"}'],
        ],
        {"execution.loops.parameter_drift": 1},
        "neutral",
        45.0,
        True,
    ),
    (
        "oscillation",
        [
            ["human", "sync"],
            ["function_call", '{"name":"toolA","arguments":"{}"}'],
            ["function_call", '{"name":"toolB","arguments":"{}"}'],
            ["function_call", '{"name":"toolA","arguments":"{}"}'],
            ["function_call", '{"name":"toolB","arguments":"{}"}'],
            ["function_call", '{"name":"toolA","arguments":"{}"}'],
            ["function_call", '{"name":"toolB","arguments":"{}"}'],
        ],
        {"execution.loops.oscillation": 1},
        "neutral",
        45.0,
        True,
    ),
    (
        "exhaustion_classes",
        [
            ["human", "go"],
            ["function_call", '{"name":"api","arguments":"{}"}'],
            ["observation", "HTTP 429: too many requests, retry after 30s"],
            ["function_call", '{"name":"api","arguments":"{}"}'],
            ["observation", "503 service unavailable - try again later"],
            ["function_call", '{"name":"api","arguments":"{}"}'],
            ["observation", "Connection timed out after 30 seconds"],
            ["function_call", '{"name":"api","arguments":"{}"}'],
            ["observation", "ECONNREFUSED: connection refused by remote host"],
            ["function_call", '{"name":"api","arguments":"{}"}'],
            ["observation", "Invalid JSON: unexpected token at position 42"],
            ["function_call", '{"name":"api","arguments":"{}"}'],
            ["observation", "Maximum context length exceeded for this model"],
        ],
        {
            "execution.failure.invalid_args": 1,
            "execution.loops.retry": 1,
            "environment.exhaustion.rate_limit": 1,
            "environment.exhaustion.api_error": 1,
            "environment.exhaustion.timeout": 1,
            "environment.exhaustion.network": 1,
            "environment.exhaustion.malformed_response": 1,
            "environment.exhaustion.context_overflow": 1,
        },
        "severe",
        19.0,
        True,
    ),
    (
        "object_arguments_and_call_syntax",
        [
            ["human", "go"],
            ["function_call", '{"name":"get","arguments":{"b":1,"a":2}}'],
            ["function_call", '{"name":"get","arguments":{"a":2,"b":1}}'],
            ["function_call", 'get({"a": 2, "b": 1})'],
            ["function_call", "get"],
        ],
        {"execution.loops.retry": 1},
        "neutral",
        45.0,
        True,
    ),
]


@pytest.mark.parametrize(
    ("rows", "types", "quality", "score", "concerning"),
    [case[1:] for case in PARITY],
    ids=[case[0] for case in PARITY],
)
def test_types_counts_and_quality_match_plano(
    rows: list[list[str]], types: dict[str, int], quality: str, score: float, concerning: bool
) -> None:
    report = analyze_rows([(role, value) for role, value in rows])
    assert report.types() == types
    assert (report.quality.value, report.quality_score, report.concerning) == (quality, score, concerning)


FULL: dict[str, dict[str, Any]] = {
    "dragging_ten_turns": {
        "attributes": {
            "signals.quality": "neutral",
            "signals.quality_score": 50.0,
            "signals.turn_count": 10,
            "signals.efficiency_score": 0.4444444477558136,
            "signals.interaction.stagnation.count": 1,
            "signals.interaction.stagnation.severity": 1,
        },
        "events": [
            [
                "signal.interaction.stagnation.dragging",
                {
                    "signal.type": "interaction.stagnation.dragging",
                    "signal.message_index": 19,
                    "signal.confidence": 0.5555555820465088,
                    "signal.snippet": "Conversation dragging: 10 turns (efficiency: 0.44)",
                    "signal.metadata": '{"total_turns":10,"efficiency_score":0.4444444477558136,"baseline_turns":5}',
                },
            ]
        ],
        "concerning": False,
        "summary": "Overall Quality: neutral | Turns: 10 (efficiency: 44.4%) | "
        "Interaction — misalignment: 0, stagnation: 1 (sev 1), "
        "disengagement: 0, satisfaction: 0 | Execution — failure: 0, loops: "
        "0 | Environment — exhaustion: 0",
    },
    "near_duplicate_assistant": {
        "attributes": {
            "signals.quality": "neutral",
            "signals.quality_score": 50.0,
            "signals.turn_count": 2,
            "signals.efficiency_score": 1.0,
            "signals.interaction.stagnation.count": 1,
            "signals.interaction.stagnation.severity": 1,
        },
        "events": [
            [
                "signal.interaction.stagnation.repetition",
                {
                    "signal.type": "interaction.stagnation.repetition",
                    "signal.message_index": 3,
                    "signal.confidence": 0.9333333373069763,
                    "signal.snippet": "Near-duplicate with message 1",
                    "signal.metadata": '{"repetition_type":"near_duplicate","compared_to":1,"similarity":0.9333333373069763,"role":"gpt"}',
                },
            ]
        ],
        "concerning": False,
        "summary": "Overall Quality: neutral | Turns: 2 (efficiency: 100.0%) | "
        "Interaction — misalignment: 0, stagnation: 1 (sev 1), "
        "disengagement: 0, satisfaction: 0 | Execution — failure: 0, "
        "loops: 0 | Environment — exhaustion: 0",
    },
    "all_caps_and_punctuation": {
        "attributes": {
            "signals.quality": "neutral",
            "signals.quality_score": 40.0,
            "signals.turn_count": 2,
            "signals.efficiency_score": 1.0,
            "signals.interaction.disengagement.count": 2,
            "signals.interaction.disengagement.severity": 1,
        },
        "events": [
            [
                "signal.interaction.disengagement.negative_stance",
                {
                    "signal.type": "interaction.disengagement.negative_stance",
                    "signal.message_index": 0,
                    "signal.confidence": 1.0,
                    "signal.snippet": "WHY IS THIS STILL BROKEN AFTER ALL THAT",
                    "signal.metadata": '{"indicator_type":"all_caps","upper_ratio":1.0}',
                },
            ],
            [
                "signal.interaction.disengagement.negative_stance",
                {
                    "signal.type": "interaction.disengagement.negative_stance",
                    "signal.message_index": 2,
                    "signal.confidence": 1.0,
                    "signal.snippet": "Are you even listening???",
                    "signal.metadata": '{"indicator_type":"excessive_punctuation","consecutive_questions":1,"consecutive_exclamations":0,"mixed_punctuation":1}',
                },
            ],
        ],
        "concerning": True,
        "summary": "Overall Quality: neutral | Turns: 2 (efficiency: 100.0%) | "
        "Interaction — misalignment: 0, stagnation: 0, disengagement: "
        "2 (sev 1), satisfaction: 0 | Execution — failure: 0, loops: 0 "
        "| Environment — exhaustion: 0",
    },
    "exhaustion_classes": {
        "attributes": {
            "signals.quality": "severe",
            "signals.quality_score": 19.0,
            "signals.turn_count": 1,
            "signals.efficiency_score": 1.0,
            "signals.execution.failure.count": 1,
            "signals.execution.failure.severity": 1,
            "signals.execution.loops.count": 1,
            "signals.execution.loops.severity": 1,
            "signals.environment.exhaustion.count": 6,
            "signals.environment.exhaustion.severity": 3,
        },
        "events": [
            [
                "signal.execution.failure.invalid_args",
                {
                    "signal.type": "execution.failure.invalid_args",
                    "signal.message_index": 10,
                    "signal.confidence": 0.8999999761581421,
                    "signal.snippet": "Invalid JSON: unexpected token at position 42",
                    "signal.metadata": '{"tool_name":"api","call_index":9,"error_type":"invalid_args","matched":"invalid '
                    'json"}',
                },
            ],
            [
                "signal.execution.loops.retry",
                {
                    "signal.type": "execution.loops.retry",
                    "signal.message_index": 1,
                    "signal.confidence": 0.949999988079071,
                    "signal.snippet": "Tool 'api' called 6 times with identical arguments",
                    "signal.metadata": '{"tool_name":"api","start_index":1,"end_index":11,"call_count":6,"loop_type":"retry"}',
                },
            ],
            [
                "signal.environment.exhaustion.rate_limit",
                {
                    "signal.type": "environment.exhaustion.rate_limit",
                    "signal.message_index": 2,
                    "signal.confidence": 0.949999988079071,
                    "signal.snippet": "HTTP 429: too many requests, retry after 30s",
                    "signal.metadata": '{"exhaustion_type":"rate_limit","matched":"http 429"}',
                },
            ],
            [
                "signal.environment.exhaustion.api_error",
                {
                    "signal.type": "environment.exhaustion.api_error",
                    "signal.message_index": 4,
                    "signal.confidence": 0.8999999761581421,
                    "signal.snippet": "503 service unavailable - try again later",
                    "signal.metadata": '{"exhaustion_type":"api_error","matched":"503 service unavailable"}',
                },
            ],
            [
                "signal.environment.exhaustion.timeout",
                {
                    "signal.type": "environment.exhaustion.timeout",
                    "signal.message_index": 6,
                    "signal.confidence": 0.8999999761581421,
                    "signal.snippet": "Connection timed out after 30 seconds",
                    "signal.metadata": '{"exhaustion_type":"timeout","matched":"connection timed out"}',
                },
            ],
            [
                "signal.environment.exhaustion.network",
                {
                    "signal.type": "environment.exhaustion.network",
                    "signal.message_index": 8,
                    "signal.confidence": 0.8999999761581421,
                    "signal.snippet": "ECONNREFUSED: connection refused by remote host",
                    "signal.metadata": '{"exhaustion_type":"network","matched":"econnrefused"}',
                },
            ],
            [
                "signal.environment.exhaustion.malformed_response",
                {
                    "signal.type": "environment.exhaustion.malformed_response",
                    "signal.message_index": 10,
                    "signal.confidence": 0.8500000238418579,
                    "signal.snippet": "Invalid JSON: unexpected token at position 42",
                    "signal.metadata": '{"exhaustion_type":"malformed_response","matched":"invalid json"}',
                },
            ],
            [
                "signal.environment.exhaustion.context_overflow",
                {
                    "signal.type": "environment.exhaustion.context_overflow",
                    "signal.message_index": 12,
                    "signal.confidence": 0.8999999761581421,
                    "signal.snippet": "Maximum context length exceeded for this model",
                    "signal.metadata": '{"exhaustion_type":"context_overflow","matched":"maximum context"}',
                },
            ],
        ],
        "concerning": True,
        "summary": "Overall Quality: severe | Turns: 1 (efficiency: 100.0%) | "
        "Interaction — misalignment: 0, stagnation: 0, disengagement: 0, "
        "satisfaction: 0 | Execution — failure: 1 (sev 1), loops: 1 (sev 1) "
        "| Environment — exhaustion: 6 (sev 3)",
    },
    "tool_not_found_auth_state": {
        "attributes": {
            "signals.quality": "poor",
            "signals.quality_score": 26.0,
            "signals.turn_count": 1,
            "signals.efficiency_score": 1.0,
            "signals.execution.failure.count": 3,
            "signals.execution.failure.severity": 2,
        },
        "events": [
            [
                "signal.execution.failure.tool_not_found",
                {
                    "signal.type": "execution.failure.tool_not_found",
                    "signal.message_index": 2,
                    "signal.confidence": 0.949999988079071,
                    "signal.snippet": "Error: unknown function 'send_thought'",
                    "signal.metadata": '{"tool_name":"send_thought","call_index":1,"error_type":"tool_not_found","matched":"unknown '
                    'function"}',
                },
            ],
            [
                "signal.execution.failure.auth_misuse",
                {
                    "signal.type": "execution.failure.auth_misuse",
                    "signal.message_index": 4,
                    "signal.confidence": 0.800000011920929,
                    "signal.snippet": "HTTP 401 Unauthorized",
                    "signal.metadata": '{"tool_name":"get_secret","call_index":3,"error_type":"auth_misuse","matched":"http '
                    '401"}',
                },
            ],
            [
                "signal.execution.failure.state_error",
                {
                    "signal.type": "execution.failure.state_error",
                    "signal.message_index": 6,
                    "signal.confidence": 0.8500000238418579,
                    "signal.snippet": "must call begin_tx first",
                    "signal.metadata": '{"tool_name":"commit_tx","call_index":5,"error_type":"state_error","matched":"must '
                    'call begin_tx first"}',
                },
            ],
        ],
        "concerning": True,
        "summary": "Overall Quality: poor | Turns: 1 (efficiency: 100.0%) | "
        "Interaction — misalignment: 0, stagnation: 0, disengagement: "
        "0, satisfaction: 0 | Execution — failure: 3 (sev 2), loops: "
        "0 | Environment — exhaustion: 0",
    },
    "acceptance": {
        "attributes": {
            "signals.quality": "poor",
            "signals.quality_score": 26.0,
            "signals.turn_count": 3,
            "signals.efficiency_score": 1.0,
            "signals.interaction.misalignment.count": 1,
            "signals.interaction.misalignment.severity": 1,
            "signals.interaction.satisfaction.count": 1,
            "signals.interaction.satisfaction.severity": 1,
            "signals.execution.failure.count": 2,
            "signals.execution.failure.severity": 1,
            "signals.execution.loops.count": 1,
            "signals.execution.loops.severity": 1,
        },
        "events": [
            [
                "signal.interaction.misalignment.correction",
                {
                    "signal.type": "interaction.misalignment.correction",
                    "signal.message_index": 6,
                    "signal.confidence": 1.0,
                    "signal.snippet": "no, i meant",
                    "signal.metadata": '{"pattern_type":"correction"}',
                },
            ],
            [
                "signal.interaction.satisfaction.success",
                {
                    "signal.type": "interaction.satisfaction.success",
                    "signal.message_index": 10,
                    "signal.confidence": 1.0,
                    "signal.snippet": "that worked",
                    "signal.metadata": '{"pattern_type":"success"}',
                },
            ],
            [
                "signal.execution.failure.invalid_args",
                {
                    "signal.type": "execution.failure.invalid_args",
                    "signal.message_index": 2,
                    "signal.confidence": 0.8999999761581421,
                    "signal.snippet": "Error: invalid parameter order_id: expected integer, got string",
                    "signal.metadata": '{"tool_name":"lookup_order","call_index":1,"error_type":"invalid_args","matched":"invalid '
                    'parameter"}',
                },
            ],
            [
                "signal.execution.failure.invalid_args",
                {
                    "signal.type": "execution.failure.invalid_args",
                    "signal.message_index": 4,
                    "signal.confidence": 0.8999999761581421,
                    "signal.snippet": "Error: invalid parameter order_id: expected integer, got string",
                    "signal.metadata": '{"tool_name":"lookup_order","call_index":3,"error_type":"invalid_args","matched":"invalid '
                    'parameter"}',
                },
            ],
            [
                "signal.execution.loops.parameter_drift",
                {
                    "signal.type": "execution.loops.parameter_drift",
                    "signal.message_index": 1,
                    "signal.confidence": 0.8500000238418579,
                    "signal.snippet": "Tool 'lookup_order' called 3 times with 2 different "
                    "argument variations",
                    "signal.metadata": '{"tool_name":"lookup_order","start_index":1,"end_index":7,"call_count":3,"variation_count":2,"loop_type":"parameter_drift"}',
                },
            ],
        ],
        "concerning": True,
        "summary": "Overall Quality: poor | Turns: 3 (efficiency: 100.0%) | Interaction — "
        "misalignment: 1 (sev 1), stagnation: 0, disengagement: 0, satisfaction: 1 "
        "(sev 1) | Execution — failure: 2 (sev 1), loops: 1 (sev 1) | Environment — "
        "exhaustion: 0 | High misalignment rate: 33.3% of user turns",
    },
}


ACCEPTANCE_CHAT: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are the order desk."},
        {"role": "user", "content": "Where is my order 1234?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": '{"order_id": "1234"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "c1",
            "content": "Error: invalid parameter order_id: expected integer, got string",
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": '{"order_id": "1234"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "c2",
            "content": "Error: invalid parameter order_id: expected integer, got string",
        },
        {"role": "assistant", "content": "I found invoice 1234 from March. Is that the one?"},
        {"role": "user", "content": "No, I meant the order I placed last week"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c3",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": '{"order_id": 1234}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c3", "content": "Order 1234: shipped on Monday, arriving Thursday"},
        {"role": "assistant", "content": "Your order shipped on Monday and arrives Thursday."},
        {"role": "user", "content": "thanks, that worked"},
    ],
}
"""The issue's acceptance case: a correction, a tool failing twice alike, then "thanks, that worked"."""

FULL_ROWS: dict[str, list[tuple[str, str]]] = {
    name: [(role, value) for role, value in rows] for name, rows, *_ in PARITY if name in FULL
}
FULL_ROWS["acceptance"] = list(conversation(Api.CHAT, ACCEPTANCE_CHAT))


@pytest.mark.parametrize("name", list(FULL))
@pytest.mark.parametrize("remembered", [False, True], ids=["cold", "warm"])
def test_span_attributes_events_and_summary_match_plano(name: str, remembered: bool) -> None:
    if not remembered:
        forget()
    report = analyze_rows(FULL_ROWS[name])
    expected = FULL[name]
    assert report.span_attributes() == expected["attributes"]
    assert [[event, attributes] for event, attributes in report.span_events()] == expected["events"]
    assert report.concerning is expected["concerning"]
    assert report.summary == expected["summary"]


def test_acceptance_case_on_the_span() -> None:
    """Correction, repeated tool failure and "thanks, that worked": each shows, and the score is Plano's."""
    report = analyze(Api.CHAT, ACCEPTANCE_CHAT)
    attributes = report.span_attributes()
    assert attributes["signals.interaction.misalignment.count"] == 1
    assert attributes["signals.execution.failure.count"] == 2
    assert attributes["signals.interaction.satisfaction.count"] == 1
    assert report.types() == {
        "interaction.misalignment.correction": 1,
        "interaction.satisfaction.success": 1,
        "execution.failure.invalid_args": 2,
        "execution.loops.parameter_drift": 1,
    }
    # 50 + 12 (one satisfaction) - 15 (misalignment on 1 of 3 user turns) - 2 x 8 (failures) - 5 (loop)
    assert (report.quality.value, report.quality_score) == ("poor", 26.0)
    assert report.concerning
    assert report.span_name("POST /v1/chat/completions") == "POST /v1/chat/completions \U0001f6a9"
    events = report.span_events()
    assert [name for name, _ in events] == [
        "signal.interaction.misalignment.correction",
        "signal.interaction.satisfaction.success",
        "signal.execution.failure.invalid_args",
        "signal.execution.failure.invalid_args",
        "signal.execution.loops.parameter_drift",
    ]
