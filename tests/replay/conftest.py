"""Fixtures of the replay tests: a journal on disk with a deterministic clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from replay_orders import Clock

from buyer_agent.journal import Journal


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    """An empty journal in ``<tmp>/src`` whose clock moves 250 ms per read."""
    j = Journal(tmp_path / "src" / "buyer_agent.db", clock=Clock())
    yield j
    j.close()
