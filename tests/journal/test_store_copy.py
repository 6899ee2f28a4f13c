"""Journals move between SQLite and PostgreSQL unchanged: same events, same hashes, verified on arrival.

A real golden order and orders written natively by each store travel SQLite → PostgreSQL → SQLite;
their exports verify and import; a broken chain is refused naming the order and the event; a
different order under the same id is never overwritten.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from buyer_agent import JournalError
from buyer_agent._money import Money
from buyer_agent.history import imported_context, replay_file
from buyer_agent.journal import (
    CopyableStore,
    Journal,
    LedgerChange,
    LedgerStatus,
    SqliteStore,
    copy_store,
    export_order,
    import_order,
    open_store,
)

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "order_confirmed_v1.jsonl"


def arun(body: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(body())  # type: ignore[arg-type]


def golden_sqlite(path: Path) -> None:
    """A SQLite journal holding the committed golden order (imported as the ``import`` command does)."""
    result = replay_file(GOLDEN)
    assert result.breakage is None
    journal = Journal(path)
    try:
        import_order(
            journal, result.header, result.events, context=imported_context(result.header, result.events)
        )
    finally:
        journal.close()


async def _open(target: str | Path) -> CopyableStore:
    store = await open_store(target)
    assert isinstance(store, CopyableStore)
    return store


async def _write_native(store: CopyableStore, order_id: str) -> None:
    """An order written by the store itself (its own clock and hashes), with a ledger row."""
    await store.create_order(order_id, {"task": "ü"}, context={"machine_id": "m"})
    await store.record(
        order_id, "pair", "created", "paired", {"p": "✓"}, {"pairing_id": "p1"}, pairing_id="p1"
    )
    commit = LedgerChange(LedgerStatus.COMMITTED, "p1", Money(2_500_000, 6, "USDC"))
    await store.record(
        order_id, "intent:pay", "paired", "paired", {"n": 1}, ledger=commit, market_order_id="mo"
    )


def test_a_journal_travels_sqlite_postgres_sqlite_unchanged(tmp_path: Path, postgres_url: str) -> None:
    src_db = tmp_path / "src" / "buyer_agent.db"
    golden_sqlite(src_db)

    async def body() -> None:
        src = await _open(src_db)
        await _write_native(src, "ord_sqlite")
        await src.set_meta("order_market:ord_sqlite", "http://127.0.0.1:1")
        await src.reserve("eip155:31337", "0xAbC", 7, 3)
        pg = await _open(postgres_url)
        await _write_native(pg, "ord_pg")
        back = await _open(tmp_path / "back")
        try:
            report = await copy_store(src, pg)
            assert sorted(report.copied) == ["ord_golden_1", "ord_sqlite"] and not report.refused
            assert report.meta == 1 and report.nonces == 1
            again = await copy_store(src, pg)  # a second run finds everything there
            assert again.copied == [] and sorted(again.present) == ["ord_golden_1", "ord_sqlite"]
            report = await copy_store(pg, back)
            assert sorted(report.copied) == ["ord_golden_1", "ord_pg", "ord_sqlite"]
            for order_id in ("ord_golden_1", "ord_sqlite"):
                assert [e.to_json() for e in await back.events(order_id)] == [
                    e.to_json() for e in await src.events(order_id)
                ]
                mine, theirs = await src.order(order_id), await back.order(order_id)
                assert (theirs.state, theirs.context, theirs.spec, theirs.market_order_id) == (
                    mine.state, mine.context, mine.spec, mine.market_order_id,
                )  # fmt: skip
            assert [e.hash for e in await back.events("ord_pg")] == [
                e.hash for e in await pg.events("ord_pg")
            ]
            entry = await back.ledger_entry("ord_pg")
            assert entry is not None and entry.amount == Money(2_500_000, 6, "USDC")
            assert await back.get_meta("order_market:ord_sqlite") == "http://127.0.0.1:1"
            assert await back.reserve("eip155:31337", "0xabc", 0, 1) == 10  # the counter came along
            # The copied order is drivable where it arrived: the head moved with the import.
            await back.record("ord_pg", "note:after", "paired", "paired", {})
        finally:
            for store in (src, pg, back):
                await store.aclose()

    arun(body)
    # An order written by PostgreSQL exports from SQLite as a file that verifies and imports anywhere.
    journal = Journal(tmp_path / "back" / "buyer_agent.db")
    out = io.StringIO()
    export_order(journal, "ord_pg", out)
    journal.close()
    result = replay_file("ord_pg.jsonl", lines=out.getvalue().splitlines())
    assert result.breakage is None and result.count == 4


def test_a_broken_chain_is_refused_naming_the_order_and_event(tmp_path: Path, postgres_url: str) -> None:
    src_db = tmp_path / "buyer_agent.db"

    async def write() -> None:
        src = await _open(src_db)
        await _write_native(src, "ord_good")
        await _write_native(src, "ord_bad")
        await src.aclose()

    arun(write)
    journal = Journal(src_db)  # tamper with an event behind the schema's back
    journal.db.execute("DROP TRIGGER events_no_update")
    journal.db.execute(
        "UPDATE events SET payload = '{\"p\":\"forged\"}' WHERE order_id = 'ord_bad' AND seq = 2"
    )
    journal.close()

    async def body() -> None:
        src, pg = await _open(src_db), await _open(postgres_url)
        try:
            report = await copy_store(src, pg)
            assert report.copied == ["ord_good"]
            assert [str(r) for r in report.refused] == [
                "order ord_bad: event 2: hash does not match the event's content"
            ]
            assert not await pg.has_order("ord_bad")
            # The database refuses it too, even from a writer that skipped the verification.
            with pytest.raises(JournalError, match="hash does not match"):
                await pg.import_order(await src.order("ord_bad"), await src.events("ord_bad"), None)
            assert not await pg.has_order("ord_bad")
        finally:
            await src.aclose()
            await pg.aclose()

    arun(body)


def test_a_different_order_under_the_same_id_is_never_overwritten(tmp_path: Path, postgres_url: str) -> None:
    async def body() -> None:
        src, pg = await _open(tmp_path), await _open(postgres_url)
        try:
            await _write_native(src, "ord_1")
            await _write_native(pg, "ord_1")  # same id, other times and hashes
            before = [e.hash for e in await pg.events("ord_1")]
            report = await copy_store(src, pg)
            assert report.copied == [] and report.refused[0].order_id == "ord_1"
            assert "different journal" in report.refused[0].reason
            assert [e.hash for e in await pg.events("ord_1")] == before
        finally:
            await src.aclose()
            await pg.aclose()

    arun(body)


def test_open_store_picks_the_store_by_where_it_is(tmp_path: Path, postgres_url: str) -> None:
    async def body() -> None:
        for target in (tmp_path / "dir", tmp_path / "file.db"):
            store = await open_store(target)
            assert isinstance(store, SqliteStore)
            await store.aclose()
        assert (tmp_path / "dir" / "buyer_agent.db").is_file() and (tmp_path / "file.db").is_file()
        store = await open_store(postgres_url)
        assert type(store).__name__ == "PostgresStore" and "@127.0.0.1:" in store.label
        await store.aclose()

    arun(body)


def test_the_sqlite_default_never_imports_psycopg() -> None:
    # The postgres extra is optional: the package, the CLI and a SQLite store work without it.
    import subprocess
    import sys

    code = (
        "import sys, asyncio, tempfile\n"
        "import buyer_agent, buyer_agent.cli, buyer_agent.journal\n"
        "buyer_agent.cli.build_parser()\n"
        "store = asyncio.run(buyer_agent.journal.open_store(tempfile.mkdtemp()))\n"
        "assert not [m for m in sys.modules if m.startswith('psycopg')], 'psycopg imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
