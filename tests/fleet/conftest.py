"""Fixtures of the fleet tests: one served sandbox per module (its anvil holds the payments counted)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fleet_support import served_sandbox


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``python -m buyer_agent sandbox`` in a separate process for this module; its JSON line."""
    with served_sandbox(tmp_path_factory.mktemp("served")) as (info, _proc):
        yield info
