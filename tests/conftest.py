"""Shared fixtures: every test starts with no buyer_agent / peaq environment leaking in."""

from __future__ import annotations

import os

import pytest

_PREFIXES = ("PEAQOS_", "BUYER_AGENT_")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name, raising=False)
