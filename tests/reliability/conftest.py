"""Options and fixtures of the reliability suite: ``--crash-runs`` and one served sandbox per module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from reliability_support import served_sandbox

#: The SIGKILLs a crash test delivers by default (``--crash-runs 1000`` or $BUYER_AGENT_CRASH_RUNS for more).
DEFAULT_CRASH_RUNS = 200


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--crash-runs",
        type=int,
        default=None,
        help=f"SIGKILLs the crash suite delivers (default {DEFAULT_CRASH_RUNS}, or $BUYER_AGENT_CRASH_RUNS)",
    )


# Read at import: the suite's autouse fixture clears BUYER_AGENT_* variables from each test's environment.
_ENV_RUNS = os.environ.get("BUYER_AGENT_CRASH_RUNS")


@pytest.fixture(scope="session")
def crash_runs(request: pytest.FixtureRequest) -> int:
    """How many SIGKILLs to deliver."""
    option = request.config.getoption("--crash-runs")
    if option is not None:
        return int(option)
    return int(_ENV_RUNS) if _ENV_RUNS else DEFAULT_CRASH_RUNS


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``python -m buyer_agent sandbox`` in a separate process for this module; its JSON line."""
    # Deduplicating nothing (the default, said here), as peaq's docs promise no idempotency key.
    with served_sandbox(tmp_path_factory.mktemp("served"), "--idempotency", "off") as (info, _proc):
        yield info
