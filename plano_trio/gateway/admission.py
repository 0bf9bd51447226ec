"""Admission: refuse work the process cannot take, at once, instead of queueing it.

A gateway that accepts every request only moves the overload somewhere
worse (timeouts after minutes, memory growth).  Past `max_concurrent_requests`
LLM requests in flight, the next one is answered 503 with `Retry-After`
before its body is read, so a load balancer or client can go elsewhere.
Health checks and the other cheap endpoints are never counted.
"""

from __future__ import annotations

from plano_trio.gateway.errors import unavailable


class Admission:
    """A counter, not a semaphore: nobody ever waits for a slot.

    Used as `with admission:` around a request; a plain context manager
    rather than a generator one, since it runs on every request.
    """

    __slots__ = ("in_flight", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def __enter__(self) -> None:
        if self.in_flight >= self.limit:
            raise unavailable(
                f"The gateway is at its limit of {self.limit} concurrent requests; retry shortly",
                "overloaded",
            )
        self.in_flight += 1

    def __exit__(self, *exc_info: object) -> None:
        self.in_flight -= 1
