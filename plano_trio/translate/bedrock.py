"""Transitional alias: the gateway's import of `converse_stream_event`, until it imports it from `matrix`."""

from plano_trio.translate.upstream_bedrock import converse_stream_event

__all__ = ["converse_stream_event"]
