"""Replay benchmark: events per second over a synthetic, hash-chained journal (target ≥ 100,000/s)."""

from __future__ import annotations

from buyer_agent.history import replay_benchmark

__all__ = ["bench_replay"]


def bench_replay(n_events: int) -> float:
    """Replay ``n_events`` synthetic events (verifying every hash and transition); events per second."""
    return replay_benchmark(n_events)
