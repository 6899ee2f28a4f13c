"""How big each benchmark runs: the full sizes of the issue, ``--quick`` and a tiny size for tests."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FULL", "QUICK", "TINY", "BenchSizes"]


@dataclass(frozen=True, slots=True)
class BenchSizes:
    """The sizes of one ``bench`` run.

    Attributes:
        name: ``full``, ``quick`` or ``tiny``.
        overhead_orders: Orders per side (agent, raw) for the per-order overhead.
        journal_events: Events per side (journal, raw SQLite) for the journal ratio.
        replay_events: Events in the synthetic journal replayed.
        resume_orders: Interrupted orders resumed.
        in_flight: Orders in flight at each concurrency level.
        fleet_orders: Orders each fleet run drives (``bench --store``).
    """

    name: str
    overhead_orders: int
    journal_events: int
    replay_events: int
    resume_orders: int
    in_flight: tuple[int, ...]
    fleet_orders: int = 200


FULL = BenchSizes("full", 100, 20_000, 1_000_000, 1_000, (1, 10, 100, 1_000))
QUICK = BenchSizes("quick", 10, 3_000, 100_000, 20, (1, 10, 20), 60)
TINY = BenchSizes("tiny", 2, 200, 2_000, 2, (1, 2), 4)
