"""Conversation-quality signals."""
