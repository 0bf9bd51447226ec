"""Per-model prices, shared by ranking (`cheapest`), the routing budget and session cost accounting."""

from __future__ import annotations

from typing import NamedTuple


class ModelRates(NamedTuple):
    """USD per million tokens, as a cost feed (models.dev, DigitalOcean) publishes them."""

    input_per_m: float
    output_per_m: float
    cached_input_per_m: float | None = None
    """Price of a prompt-cache read, when the feed has one; else callers derive it from a discount."""

    @property
    def total_per_m(self) -> float:
        """What `prefer: cheapest` sorts by: input plus output price."""
        return self.input_per_m + self.output_per_m
