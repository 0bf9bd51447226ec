"""The four wire APIs plano-trio speaks, named once for both sides of the gateway.

A client talks to us in one of the first three; a provider is spoken to in
any of the four.  The same enum names both, because a pair of them (client
API, provider API) is what decides between passthrough and translation.
"""

from __future__ import annotations

from enum import Enum


class Api(Enum):
    """A wire format: OpenAI Chat Completions, Anthropic Messages, OpenAI Responses, Bedrock Converse."""

    CHAT = "chat"
    MESSAGES = "messages"
    RESPONSES = "responses"
    BEDROCK = "bedrock"
