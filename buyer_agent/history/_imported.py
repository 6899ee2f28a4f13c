"""The working context an imported order's row starts with: its facts, folded from its events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from buyer_agent.history._evidence import context_from_events

__all__ = ["imported_context"]


def imported_context(header: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The order's context rebuilt from its events (so ``show``/``orders`` read it as usual)."""
    return {**context_from_events(events), "imported_from": header.get("exported_at")}
