from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.mock_provider import MockProvider

# Property tests run a bounded number of examples so CI time stays predictable; no deadline, because the
# machine is shared and a slow example is noise, not a failure.
settings.register_profile(
    "bounded", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("bounded")

# Every gateway a test starts serves /metrics; on an ephemeral loopback port, so parallel gateways (and
# other test runs on this machine) do not fight over Plano's default 0.0.0.0:9092.
os.environ.setdefault("METRICS_BIND_ADDRESS", "127.0.0.1:0")


@pytest.fixture
def mock() -> Iterator[MockProvider]:
    provider = MockProvider().start()
    try:
        yield provider
    finally:
        provider.stop()
