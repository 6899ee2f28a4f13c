"""``bench --tiny --json`` runs every benchmark end to end and reports the issue's keys with the right types.

Only the shape is checked: timings never decide a test.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from reliability_support import ROOT, clean_env

from buyer_agent.testing import PostgresServer, postgres_available

pytestmark = pytest.mark.chains


def test_bench_json_has_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "buyer_agent", "bench", "--tiny", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "bench: " in done.stderr  # progress goes to stderr, the JSON alone to stdout
    report = json.loads(done.stdout)
    for key in ("overhead_ratio", "journal_ratio", "replay_events_per_s", "resume_ratio"):
        assert isinstance(report[key], float) and report[key] > 0, key
    # The tracing side: the same orders with and without the tracing observer (the otel extra is in dev).
    assert isinstance(report["tracing_ratio"], float) and report["tracing_ratio"] > 0
    tracing = report["detail"]["tracing"]
    assert tracing["orders"] == 2 and tracing["spans_per_order"] > 10
    levels = report["concurrency"]
    assert [c["in_flight"] for c in levels] == [1, 2]
    for level in levels:
        assert {"in_flight", "orders_per_s", "sandbox_orders_per_s"} <= set(level)
        assert (level["failed"], level["sandbox_failed"], level["first_error"]) == (0, 0, None)
        assert isinstance(level["orders_per_s"], float) and level["orders_per_s"] > 0
        assert isinstance(level["sandbox_orders_per_s"], float) and level["sandbox_orders_per_s"] > 0


def test_bench_table_names_every_measure() -> None:
    from buyer_agent.bench import TINY, BenchReport
    from buyer_agent.bench._journal import JournalFigures
    from buyer_agent.bench._orders import ConcurrencyFigures, OverheadFigures, ResumeFigures

    report = BenchReport(
        sizes=TINY,
        overhead=OverheadFigures(agent_s=0.2, raw_s=0.1),
        journal=JournalFigures(events_per_s=900.0, raw_commits_per_s=1000.0),
        journal_full=JournalFigures(events_per_s=90.0, raw_commits_per_s=100.0),
        replay_events_per_s=150_000.0,
        resume=ResumeFigures(orders=2, resume_s=1.0, read_s=0.5),
        concurrency=(ConcurrencyFigures(1, 5.0, 6.0),),
        seconds=3.0,
    )
    table = report.table()
    assert "2.00x" in table and "MISSED" in table  # overhead 2x misses its 1.05x target
    assert "0.90x" in table and "150,000/s" in table
    assert report.to_json()["resume_ratio"] == 2.0


def test_bench_table_shows_the_tracing_overhead_against_its_target() -> None:
    from buyer_agent.bench import TINY, BenchReport
    from buyer_agent.bench._journal import JournalFigures
    from buyer_agent.bench._orders import OverheadFigures, ResumeFigures
    from buyer_agent.bench._tracing import TracingFigures

    def report(tracing: TracingFigures | None) -> BenchReport:
        return BenchReport(
            sizes=TINY,
            overhead=OverheadFigures(agent_s=0.2, raw_s=0.1),
            journal=JournalFigures(events_per_s=900.0, raw_commits_per_s=1000.0),
            journal_full=JournalFigures(events_per_s=90.0, raw_commits_per_s=100.0),
            replay_events_per_s=150_000.0,
            resume=ResumeFigures(orders=2, resume_s=1.0, read_s=0.5),
            concurrency=(),
            seconds=3.0,
            tracing=tracing,
        )

    over = report(TracingFigures(orders=2, plain_s=0.1, traced_s=0.12, spans_per_order=30))
    line = next(row for row in over.table().splitlines() if row.startswith("tracing overhead"))
    assert "1.20x" in line and "MISSED" in line and "30 spans" in line
    assert over.to_json()["tracing_ratio"] == pytest.approx(1.2)
    under = report(TracingFigures(orders=2, plain_s=0.1, traced_s=0.105, spans_per_order=30))
    assert "1.05x" in under.table() and "<= 1.1x met" in under.table()
    assert report(None).to_json()["tracing_ratio"] is None  # no otel extra: no figure, no row
    assert "tracing overhead" not in report(None).table()


@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not installed (scripts/setup)")
def test_bench_store_measures_1_2_4_workers_and_sqlite_as_ratios(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "buyer_agent", "bench", "--tiny", "--json", "--store", postgres_url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=400,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "bench: fleet: 4 worker(s) on postgresql" in done.stderr
    fleet = json.loads(done.stdout)["fleet"]
    # The store's label, never its password, in what is printed.
    assert postgres_server.password not in done.stdout + done.stderr
    runs = fleet["runs"]
    assert [(r["store"], r["workers"]) for r in runs] == [
        ("postgresql", 1),
        ("postgresql", 2),
        ("postgresql", 4),
        ("sqlite", 1),
    ]
    assert runs[0]["ratio"] == 1.0
    for run in runs:
        assert run["failed"] == 0 and run["orders"] == 4, run
        assert isinstance(run["orders_per_s"], float) and run["orders_per_s"] > 0
        assert run["ratio"] == pytest.approx(run["orders_per_s"] / runs[0]["orders_per_s"])


def test_bench_store_is_a_postgresql_url() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "buyer_agent", "bench", "--tiny", "--store", "state/"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --store: give a postgresql:// URL, not 'state/'"


def test_bench_table_gives_the_fleet_as_ratios_to_one_postgresql_worker() -> None:
    from buyer_agent.bench import TINY, BenchReport
    from buyer_agent.bench._fleet import FleetFigures, FleetRun
    from buyer_agent.bench._journal import JournalFigures
    from buyer_agent.bench._orders import OverheadFigures, ResumeFigures

    fleet = FleetFigures(
        store="postgresql://postgres@127.0.0.1:5432/bench",
        concurrency=4,
        runs=(
            FleetRun("postgresql", 1, 100, 10.0, 0),
            FleetRun("postgresql", 2, 100, 6.25, 0),
            FleetRun("sqlite", 1, 100, 8.0, 1),
        ),
    )
    report = BenchReport(
        sizes=TINY,
        overhead=OverheadFigures(agent_s=0.2, raw_s=0.1),
        journal=JournalFigures(events_per_s=900.0, raw_commits_per_s=1000.0),
        journal_full=JournalFigures(events_per_s=90.0, raw_commits_per_s=100.0),
        replay_events_per_s=150_000.0,
        resume=ResumeFigures(orders=2, resume_s=1.0, read_s=0.5),
        concurrency=(),
        seconds=3.0,
        fleet=fleet,
    )
    table = report.table()
    assert "1.60x one PostgreSQL worker" in table and "1.25x one PostgreSQL worker" in table
    assert "1 NOT CONFIRMED" in table
    assert [r["ratio"] for r in report.to_json()["fleet"]["runs"]] == [1.0, 1.6, 1.25]
