"""Transitional alias: the gateway's import of `response_id`, until it imports it from `matrix`."""

from plano_trio.translate.client_responses import response_id

__all__ = ["response_id"]
