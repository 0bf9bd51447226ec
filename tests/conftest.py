from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.mock_provider import MockProvider


@pytest.fixture
def mock() -> Iterator[MockProvider]:
    provider = MockProvider().start()
    try:
        yield provider
    finally:
        provider.stop()
