"""The benchmark report: one JSON object, and the table ``bench`` prints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from buyer_agent.bench._fleet import FleetFigures
from buyer_agent.bench._journal import JournalFigures
from buyer_agent.bench._orders import ConcurrencyFigures, OverheadFigures, ResumeFigures
from buyer_agent.bench._sizes import BenchSizes
from buyer_agent.bench._tracing import TracingFigures

__all__ = ["BenchReport"]

OVERHEAD_TARGET = 1.05
JOURNAL_TARGET = 0.8
REPLAY_TARGET = 100_000
TRACING_TARGET = 1.10


@dataclass(frozen=True, slots=True)
class BenchReport:
    """Every figure of one ``bench`` run, measured side by side."""

    sizes: BenchSizes
    overhead: OverheadFigures
    journal: JournalFigures
    journal_full: JournalFigures
    replay_events_per_s: float
    resume: ResumeFigures
    concurrency: tuple[ConcurrencyFigures, ...]
    seconds: float
    tracing: TracingFigures | None = None
    """Orders with the tracing observer against the same orders without (None: no ``otel`` extra)."""
    fleet: FleetFigures | None = None
    """Worker processes on a shared store (``bench --store``), else None."""

    def to_json(self) -> dict[str, Any]:
        """The ratios and rates the issues name (``overhead_ratio`` … ``tracing_ratio``), then the detail.

        ``fleet`` is there only with ``bench --store``.
        """
        t = self.tracing
        doc: dict[str, Any] = {
            "size": self.sizes.name,
            "overhead_ratio": self.overhead.ratio,
            "journal_ratio": self.journal.ratio,
            "replay_events_per_s": self.replay_events_per_s,
            "resume_ratio": self.resume.ratio,
            "concurrency": [c.to_json() for c in self.concurrency],
            "tracing_ratio": t.ratio if t is not None else None,
            "detail": {
                "overhead": {
                    "orders": self.sizes.overhead_orders,
                    "agent_s_per_order": self.overhead.agent_s,
                    "raw_s_per_order": self.overhead.raw_s,
                },
                "journal": {
                    "events": self.sizes.journal_events,
                    "events_per_s": self.journal.events_per_s,
                    "raw_commits_per_s": self.journal.raw_commits_per_s,
                    "full_durability": {
                        "ratio": self.journal_full.ratio,
                        "events_per_s": self.journal_full.events_per_s,
                        "raw_commits_per_s": self.journal_full.raw_commits_per_s,
                    },
                },
                "replay": {"events": self.sizes.replay_events},
                "resume": {
                    "orders": self.resume.orders,
                    "confirmed": self.resume.confirmed,
                    "resume_s": self.resume.resume_s,
                    "read_s": self.resume.read_s,
                },
                "tracing": {
                    "orders": t.orders,
                    "plain_s_per_order": t.plain_s,
                    "traced_s_per_order": t.traced_s,
                    "spans_per_order": t.spans_per_order,
                }
                if t is not None
                else None,
                "seconds": self.seconds,
            },
        }
        if self.fleet is not None:
            doc["fleet"] = self.fleet.to_json()
        return doc

    def table(self) -> str:
        """The figures as a fixed-width table with the targets (for people and BENCHMARKS.md)."""
        o, j, r = self.overhead, self.journal, self.resume
        rows = [
            ("measure", "value", "target", "detail"),
            (
                "per-order overhead",
                f"{o.ratio:.2f}x",
                f"<= {OVERHEAD_TARGET}x {_mark(o.ratio <= OVERHEAD_TARGET)}",
                f"agent {o.agent_s * 1000:.1f} ms vs raw {o.raw_s * 1000:.1f} ms per order "
                f"({self.sizes.overhead_orders} each)",
            ),
            (
                "journal commits",
                f"{j.ratio:.2f}x",
                f">= {JOURNAL_TARGET}x {_mark(j.ratio >= JOURNAL_TARGET)}",
                f"{j.events_per_s:,.0f} events/s vs raw SQLite {j.raw_commits_per_s:,.0f} commits/s",
            ),
            (
                "journal (FULL sync)",
                f"{self.journal_full.ratio:.2f}x",
                "-",
                f"{self.journal_full.events_per_s:,.0f} events/s vs raw SQLite "
                f"{self.journal_full.raw_commits_per_s:,.0f} commits/s, synchronous=FULL",
            ),
            (
                "replay",
                f"{self.replay_events_per_s:,.0f}/s",
                f">= {REPLAY_TARGET:,}/s {_mark(self.replay_events_per_s >= REPLAY_TARGET)}",
                f"{self.sizes.replay_events:,} synthetic events, every hash and transition checked",
            ),
            (
                "resume",
                f"{r.ratio:.1f}x",
                "-",
                f"{r.orders} interrupted orders resumed ({r.confirmed} confirmed) in {r.resume_s:.2f} s; "
                f"journals read in {r.read_s:.3f} s",
            ),
        ]
        if self.tracing is not None:
            t = self.tracing
            rows.append(
                (
                    "tracing overhead",
                    f"{t.ratio:.2f}x",
                    f"<= {TRACING_TARGET}x {_mark(t.ratio <= TRACING_TARGET)}",
                    f"traced {t.traced_s * 1000:.1f} ms vs untraced {t.plain_s * 1000:.1f} ms per order "
                    f"({t.orders} each, alternating; {t.spans_per_order:.0f} spans an order, OTLP-encoded)",
                )
            )
        for c in self.concurrency:
            rows.append(
                (
                    f"concurrency {c.in_flight}",
                    f"{c.orders_per_s:.1f}/s",
                    "-",
                    f"orders/s with {c.in_flight} in flight; "
                    f"sandbox+anvil alone (raw) {c.sandbox_orders_per_s:.1f}/s"
                    + (
                        f"; FAILED {c.failed} (raw {c.sandbox_failed}): {c.first_error}"
                        if c.first_error
                        else ""
                    ),
                )
            )
        if self.fleet is not None:
            f = self.fleet
            for run in f.runs:
                rows.append(
                    (
                        f"fleet {run.store} x{run.workers}",
                        f"{run.orders_per_s:.1f}/s",
                        "-",
                        f"{f.ratio(run):.2f}x one PostgreSQL worker; {run.workers} worker process(es), "
                        f"{f.concurrency} orders each at once, {run.orders} orders in {run.seconds:.2f} s"
                        + (f"; {run.failed} NOT CONFIRMED" if run.failed else ""),
                    )
                )
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = []
        for n, row in enumerate(rows):
            lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
            if n == 0:
                lines.append("-" * max(len(line) for line in lines))
        lines.append(f"({self.sizes.name} size, {self.seconds:.0f} s)")
        return "\n".join(lines)


def _mark(ok: bool) -> str:
    return "met" if ok else "MISSED"
