"""The journal: atomic events with their order row, the hash chain, ledger, nonces, leases, meta."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from buyer_agent import JournalError, JournalIntegrityError, Money
from buyer_agent.journal import (
    GENESIS_HASH,
    Journal,
    LedgerChange,
    LedgerStatus,
    event_hash,
    resolve_state_dir,
)

USDC = "USDC"


def usdc(text: str) -> Money:
    return Money.of(text, USDC)


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "j.db")


def test_open_dir_uses_wal_and_the_default_name(tmp_path: Path) -> None:
    j = Journal.open_dir(tmp_path / "state")
    assert j.path == tmp_path / "state" / "buyer_agent.db"
    assert j.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert j.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    full = Journal(tmp_path / "full.db", durability="full")
    assert full.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with pytest.raises(ValueError, match="durability"):
        Journal(tmp_path / "x.db", durability="fast")


def test_state_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resolve_state_dir(None) == Path("state")
    monkeypatch.setenv("BUYER_AGENT_STATE_DIR", str(tmp_path / "env"))
    assert resolve_state_dir(None) == tmp_path / "env"
    assert resolve_state_dir(tmp_path / "arg") == tmp_path / "arg"


def test_events_chain_and_update_the_order_row(journal: Journal) -> None:
    first = journal.create_order("o1", {"service_type": "compute"})
    assert (first.seq, first.prev_hash, first.src, first.dst) == (1, GENESIS_HASH, "created", "created")
    ev = journal.record(
        "o1",
        "intent:pair",
        "created",
        "created",
        {"idempotency_key": "k1", "price": Decimal("0.80")},
        context_patch={"pair_key": "k1"},
    )
    assert ev.seq == 2 and ev.prev_hash == first.hash
    # A Decimal is journaled as the exact number it is (never a float, never text).
    assert ev.payload["price"] == Decimal("0.80") and isinstance(ev.payload["price"], Decimal)
    stored = journal.events("o1")[1].payload["price"]
    assert stored == Decimal("0.80") and str(stored) == "0.80"
    ev3 = journal.record("o1", "pair", "created", "paired", {}, {"pair_key": None, "x": 1}, pairing_id="p1")
    row = journal.order("o1")
    assert row.state == "paired" and row.pairing_id == "p1" and dict(row.context) == {"x": 1}
    assert journal.verify("o1") == 3
    recomputed = event_hash(
        ev3.prev_hash,
        order_id="o1",
        seq=3,
        at=ev3.at,
        trigger="pair",
        src="created",
        dst="paired",
        payload={},
    )
    assert recomputed == ev3.hash


def test_a_stale_writer_is_refused_and_nothing_is_written(journal: Journal) -> None:
    journal.create_order("o1", {})
    with pytest.raises(JournalError, match="not paired"):
        journal.record("o1", "search", "paired", "searched", {})
    assert [e.seq for e in journal.events("o1")] == [1]
    assert journal.order("o1").state == "created"


def test_floats_are_refused_and_roll_back(journal: Journal) -> None:
    journal.create_order("o1", {})
    with pytest.raises(TypeError, match="float"):
        journal.record("o1", "pair", "created", "paired", {"amount": 0.8})
    assert journal.order("o1").state == "created"
    assert len(journal.events("o1")) == 1


def test_events_are_append_only_in_the_database(journal: Journal) -> None:
    journal.create_order("o1", {})
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        journal.db.execute("UPDATE events SET payload = '{}' WHERE order_id = 'o1'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        journal.db.execute("DELETE FROM events")


def test_tampering_is_detected_by_sequence(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    journal = Journal(path)
    journal.create_order("o1", {})
    journal.record("o1", "pair", "created", "paired", {"pairing": "p1"})
    journal.record("o1", "search", "paired", "searched", {"quotes": 3})
    journal.close()
    raw = sqlite3.connect(path)
    raw.execute("DROP TRIGGER events_no_update")
    raw.execute("UPDATE events SET payload = '{\"quotes\":4}' WHERE seq = 3")
    raw.commit()
    raw.close()
    with pytest.raises(JournalIntegrityError) as info:
        Journal(path).verify("o1")
    assert info.value.seq == 3


def test_ledger_commit_spend_release_and_daily_sum(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 1, 1, 23, 0, tzinfo=UTC))
    journal = Journal(tmp_path / "l.db", clock=clock)
    for oid in ("a", "b", "c"):
        journal.create_order(oid, {})
    commit = LedgerChange(LedgerStatus.COMMITTED, "p1", usdc("0.80"))
    journal.record("a", "order", "created", "created", {}, ledger=commit)
    journal.record(
        "b", "order", "created", "created", {}, ledger=LedgerChange(LedgerStatus.COMMITTED, "p1", usdc("1"))
    )
    journal.record("b", "fail", "created", "failed", {}, ledger=LedgerChange(LedgerStatus.RELEASED))
    journal.record("a", "paid", "created", "created", {}, ledger=LedgerChange(LedgerStatus.SPENT))
    assert journal.spent_today("p1", USDC, 6) == usdc("0.80")
    assert journal.ledger_entry("a") is not None and journal.ledger_entry("a").status is LedgerStatus.SPENT  # type: ignore[union-attr]
    # A new UTC day starts from zero.
    clock.now += timedelta(hours=2)
    journal.record(
        "c", "order", "created", "created", {}, ledger=LedgerChange(LedgerStatus.COMMITTED, "p1", usdc("2"))
    )
    assert journal.spent_today("p1", USDC, 6) == usdc("2")
    assert journal.spent_today("p1", USDC, 6, day=datetime(2026, 1, 1, tzinfo=UTC)) == usdc("0.80")
    with pytest.raises(JournalError, match="no ledger commitment"):
        journal.create_order("d", {})
        journal.record("d", "paid", "created", "created", {}, ledger=LedgerChange(LedgerStatus.SPENT))
    assert journal.order("d").state == "created" and len(journal.events("d")) == 1


def test_nonces_never_repeat_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    j = Journal(path)
    assert j.reserve("eip155:31337", "0xAbC", 5, 2) == 5
    assert j.reserve("eip155:31337", "0xabc", 5, 1) == 7
    j.close()
    j2 = Journal(path)
    assert j2.reserve("eip155:31337", "0xABC", 6, 1) == 8
    assert j2.reserve("eip155:31337", "0xABC", 20, 1) == 20  # the chain moved ahead of us
    assert j2.reserve("eip155:1", "0xABC", 0, 1) == 0


def test_nonces_across_processes_are_unique(tmp_path: Path) -> None:
    path = tmp_path / "np.db"
    Journal(path).close()
    code = (
        "import sys; from buyer_agent.journal import Journal\n"
        "j = Journal(sys.argv[1])\n"
        "print(' '.join(str(j.reserve('c', '0xa', 0, 1)) for _ in range(50)))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    got = [int(n) for p in procs for n in p.communicate(timeout=60)[0].split()]
    assert sorted(got) == list(range(150))


def test_leases_keep_a_second_driver_out(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 1, 1, tzinfo=UTC))
    j = Journal(tmp_path / "lease.db", clock=clock)
    j.create_order("o1", {})
    assert j.acquire_lease("o1", "host-x:1:a", 30)
    assert not j.acquire_lease("o1", "host-x:2:b", 30)
    assert j.acquire_lease("o1", "host-x:1:a", 30)  # renewal
    clock.now += timedelta(seconds=31)
    assert j.acquire_lease("o1", "host-x:2:b", 30)  # expired
    j.release_lease("o1", "host-x:2:b")
    assert j.acquire_lease("o1", "host-x:3:c", 30)


def test_a_lease_of_a_dead_local_process_is_taken_over(tmp_path: Path) -> None:
    from buyer_agent.journal import lease_owner_id

    j = Journal(tmp_path / "dead.db")
    j.create_order("o1", {})
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = lease_owner_id("x").split(":")[0] + f":{proc.pid}:x"
    assert j.acquire_lease("o1", dead, 300)
    assert j.acquire_lease("o1", lease_owner_id("me"), 30)


def test_meta_refuses_secret_names(journal: Journal) -> None:
    journal.set_meta("pairing_id:mach_1", "pair_1")
    assert journal.get_meta("pairing_id:mach_1") == "pair_1"
    journal.set_meta("pairing_id:mach_1", None)
    assert journal.get_meta("pairing_id:mach_1") is None
    for bad in ("pairing_token:m", "api_key", "private_key"):
        with pytest.raises(JournalError, match="never holds secrets"):
            journal.set_meta(bad, "x")
    # The qualifier after the name is data (a market URL may hold any word in its path).
    journal.set_meta("pairing_id:http://127.0.0.1:1/intent.token_swapped|mach_1|0xab", "pair_2")
    assert journal.get_meta("pairing_id:http://127.0.0.1:1/intent.token_swapped|mach_1|0xab") == "pair_2"


def test_orders_listing_and_in_memory(tmp_path: Path) -> None:
    j = Journal()
    j.create_order("a", {})
    j.create_order("b", {})
    j.record("b", "fail", "created", "failed", {})
    assert [o.order_id for o in j.orders()] == ["a", "b"]
    assert [o.order_id for o in j.orders(["failed"])] == ["b"]
    with pytest.raises(JournalError, match="already exists"):
        j.create_order("a", {})
    with pytest.raises(JournalError, match="no order"):
        j.order("zzz")
