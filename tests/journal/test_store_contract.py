"""The OrderStore contract: one suite, run against every store (SQLite on disk, PostgreSQL on a real server).

Each test drives a real store through the async protocol and asserts an invariant the store itself
must enforce: appends only at the head, the row moving with its event, leases with a rising epoch
that fence a lost driver's writes, the daily limit checked inside the commitment's own transaction,
nonces that never repeat, no secret in meta. The race tests open two stores on one database (two
processes' worth of connections) and drive them from two threads at once.

Time: the suite moves a hand :class:`Clock`. SQLite's journal takes it as its clock. PostgreSQL's
store lives on the server's clock; its test mode adds the hand clock's movement to the server's
``now()`` in the store's own SQL (``time_shift``), so leases still expire and days still turn on the
server, by the server's arithmetic.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from buyer_agent import BudgetExceeded, JournalError, LeaseLost
from buyer_agent._money import Money
from buyer_agent.journal import (
    GENESIS_HASH,
    Journal,
    LedgerChange,
    LedgerStatus,
    OrderStore,
    SqliteStore,
    SwappableMeta,
    event_hash,
)

T = TypeVar("T")


class Clock:
    """A clock the test moves by hand (the store's notion of now, for leases and days)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


StoreFactory = Callable[[Clock], Awaitable[OrderStore]]


def _sqlite_factory(tmp_path: Path) -> StoreFactory:
    async def make(clock: Clock) -> OrderStore:
        return SqliteStore(Journal(tmp_path / "contract.db", clock=clock))

    return make


def _postgres_factory(url: str) -> StoreFactory:
    async def make(clock: Clock) -> OrderStore:
        from buyer_agent.journal._postgres import PostgresStore

        # The store's time is the server's now() plus this: the hand clock's start, then its moves.
        origin = datetime.now(UTC)
        return await PostgresStore.open(url, time_shift=lambda: clock.now - origin)

    return make


#: Every store under contract; a store that cannot run here (no server) skips with the reason.
STORES = ["sqlite", "postgresql"]


@pytest.fixture(params=STORES)
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    if request.param == "sqlite":
        yield _sqlite_factory(tmp_path)
    elif request.param == "postgresql":
        yield _postgres_factory(request.getfixturevalue("postgres_url"))
    else:  # pragma: no cover - a store added to STORES without a factory
        raise AssertionError(request.param)


def run(factory: StoreFactory, body: Callable[[OrderStore, Clock], Awaitable[T]]) -> T:
    """Open a store with a hand clock, run ``body`` on it, close it."""

    async def main() -> T:
        clock = Clock()
        store = await factory(clock)
        try:
            return await body(store, clock)
        finally:
            await store.aclose()

    return asyncio.run(main())


def run_apart(factory: StoreFactory, bodies: Sequence[Callable[[OrderStore], Awaitable[T]]]) -> list[T]:
    """Run each body on a store of its own (one database), each in its own thread and event loop, at once.

    A barrier lines the bodies up after their stores are open, so they really overlap.
    """
    clock = Clock()
    barrier = threading.Barrier(len(bodies))
    results: list[Any] = [None] * len(bodies)

    def worker(i: int) -> None:
        async def main() -> T:
            store = await factory(clock)
            try:
                barrier.wait(timeout=60)
                return await bodies[i](store)
            finally:
                await store.aclose()

        try:
            results[i] = asyncio.run(main())
        except BaseException as exc:  # handed to the test thread below
            barrier.abort()
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:  # the first real failure, not the barrier it broke for the others
        raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
    return results


USDC = (6, "USDC")


def usdc(amount: int) -> Money:
    return Money(amount, *USDC)


async def _new(store: OrderStore, order_id: str = "ord_1") -> None:
    await store.create_order(order_id, {"task": {"service_type": "x"}}, context={"machine_id": "m"})


def test_a_new_order_starts_created_at_the_genesis_of_its_chain(factory: StoreFactory) -> None:
    async def body(store: OrderStore, _clock: Clock) -> None:
        ev = await store.create_order(
            "ord_1", {"a": 1}, context={"machine_id": "m"}, payload={"spec": {"a": 1}}
        )
        assert (ev.seq, ev.src, ev.dst, ev.prev_hash) == (1, "created", "created", GENESIS_HASH)
        rec = await store.order("ord_1")
        assert rec.state == "created" and rec.context == {"machine_id": "m"} and rec.spec == {"a": 1}
        assert await store.has_order("ord_1") and not await store.has_order("ord_2")
        with pytest.raises(JournalError, match="already exists"):
            await store.create_order("ord_1", {})
        with pytest.raises(JournalError, match="no order"):
            await store.order("ord_2")

    run(factory, body)


def test_an_event_moves_the_row_with_it_and_links_to_the_previous_one(factory: StoreFactory) -> None:
    async def body(store: OrderStore, _clock: Clock) -> None:
        await _new(store)
        first = (await store.events("ord_1"))[0]
        ev = await store.record(
            "ord_1", "pair", "created", "paired", {"pairing_id": "p1", "note": "ünïcode ✓"},
            {"pairing_id": "p1", "n": 125}, pairing_id="p1",
        )  # fmt: skip
        assert (ev.seq, ev.prev_hash) == (2, first.hash)
        rec = await store.order("ord_1")
        assert rec.state == "paired" and rec.pairing_id == "p1"
        assert rec.context == {"machine_id": "m", "pairing_id": "p1", "n": 125}
        await store.record("ord_1", "note:x", "paired", "paired", {}, {"n": None}, market_order_id="mo_1")
        rec = await store.order("ord_1")
        assert "n" not in rec.context and rec.market_order_id == "mo_1"
        events = await store.events("ord_1")
        assert [e.seq for e in events] == [1, 2, 3]
        assert events[1].payload == {"pairing_id": "p1", "note": "ünïcode ✓"}

    run(factory, body)


def test_an_event_from_another_state_is_refused_and_nothing_moves(factory: StoreFactory) -> None:
    async def body(store: OrderStore, _clock: Clock) -> None:
        await _new(store)
        with pytest.raises(JournalError):
            await store.record("ord_1", "search", "paired", "searched", {})
        rec = await store.order("ord_1")
        assert rec.state == "created" and len(await store.events("ord_1")) == 1

    run(factory, body)


def test_listing_orders_by_state_oldest_first(factory: StoreFactory) -> None:
    async def body(store: OrderStore, clock: Clock) -> None:
        for i in range(3):
            await _new(store, f"ord_{i}")
            clock.advance(1)
        await store.record("ord_1", "pair", "created", "paired", {})
        assert [o.order_id for o in await store.orders()] == ["ord_0", "ord_1", "ord_2"]
        assert [o.order_id for o in await store.orders(["created"])] == ["ord_0", "ord_2"]
        assert await store.orders([]) == []

    run(factory, body)


def test_a_lease_is_exclusive_until_it_expires_and_its_epoch_rises_with_each_new_owner(
    factory: StoreFactory,
) -> None:
    async def body(store: OrderStore, clock: Clock) -> None:
        await _new(store)
        a = await store.acquire_lease("ord_1", "host:1:a", 30)
        assert a is not None and a.owner == "host:1:a"
        assert await store.acquire_lease("ord_1", "host:2:b", 30) is None
        renewed = await store.acquire_lease("ord_1", "host:1:a", 30)
        assert renewed is not None and renewed.epoch == a.epoch  # a renewal keeps the tenure
        clock.advance(31)
        b = await store.acquire_lease("ord_1", "host:2:b", 30)
        assert b is not None and b.epoch > a.epoch
        await store.release_lease("ord_1", "host:1:a")  # not the holder: nothing happens
        assert await store.acquire_lease("ord_1", "host:3:c", 30) is None
        await store.release_lease("ord_1", "host:2:b")
        c = await store.acquire_lease("ord_1", "host:3:c", 30)
        assert c is not None and c.epoch > b.epoch

    run(factory, body)


def test_a_driver_that_lost_its_lease_cannot_append(factory: StoreFactory) -> None:
    async def body(store: OrderStore, clock: Clock) -> None:
        await _new(store)
        old = await store.acquire_lease("ord_1", "host:1:a", 30)
        assert old is not None
        await store.record("ord_1", "pair", "created", "paired", {}, lease=old)
        clock.advance(31)  # paused past its lease; another driver takes the order over
        new = await store.acquire_lease("ord_1", "host:2:b", 30)
        assert new is not None
        with pytest.raises(LeaseLost):
            await store.record("ord_1", "note:late", "paired", "paired", {}, lease=old)
        await store.record("ord_1", "note:mine", "paired", "paired", {}, lease=new)
        assert [e.trigger for e in await store.events("ord_1")] == ["submit", "pair", "note:mine"]
        clock.advance(31)  # expired and nobody took it: still no write under it
        with pytest.raises(LeaseLost):
            await store.record("ord_1", "note:expired", "paired", "paired", {}, lease=new)

    run(factory, body)


def test_claim_leases_free_orders_in_the_given_states_oldest_first(factory: StoreFactory) -> None:
    async def body(store: OrderStore, clock: Clock) -> None:
        for i in range(4):
            await _new(store, f"ord_{i}")
            clock.advance(1)
        await store.record("ord_3", "fail", "created", "failed", {})
        assert await store.acquire_lease("ord_0", "other:1:x", 30) is not None
        got = await store.claim(["created"], "me:1:w", 30, limit=1)
        assert [g.order_id for g in got] == ["ord_1"]
        got = await store.claim(["created"], "me:1:w", 30, limit=10)
        assert [g.order_id for g in got] == ["ord_2"]
        assert await store.claim(["created"], "them:1:z", 30, limit=10) == []
        clock.advance(31)
        assert sorted(g.order_id for g in await store.claim(["created"], "them:1:z", 30, limit=10)) == [
            "ord_0", "ord_1", "ord_2",
        ]  # fmt: skip

    run(factory, body)


def test_the_daily_limit_is_checked_inside_the_commitment(factory: StoreFactory) -> None:
    async def body(store: OrderStore, clock: Clock) -> None:
        limit = usdc(5_000_000)
        for i in range(3):
            await _new(store, f"ord_{i}")
            await store.record(f"ord_{i}", "pair", "created", "paired", {})
        commit = LedgerChange(LedgerStatus.COMMITTED, "p1", usdc(2_000_000), daily_limit=limit)
        await store.record("ord_0", "note:a", "paired", "paired", {}, ledger=commit)
        await store.record("ord_1", "note:a", "paired", "paired", {}, ledger=commit)
        with pytest.raises(BudgetExceeded, match="daily limit"):
            await store.record("ord_2", "note:a", "paired", "paired", {}, ledger=commit)
        assert await store.ledger_entry("ord_2") is None
        assert [e.trigger for e in await store.events("ord_2")] == ["submit", "pair"]  # nothing half-written
        # Re-committing the same order (a fallback quote) replaces its own reservation.
        await store.record("ord_1", "note:b", "paired", "paired", {}, ledger=commit)
        # Released money no longer counts; spent money does.
        released, spent = LedgerChange(LedgerStatus.RELEASED), LedgerChange(LedgerStatus.SPENT)
        await store.record("ord_1", "note:c", "paired", "paired", {}, ledger=released)
        await store.record("ord_0", "note:c", "paired", "paired", {}, ledger=spent)
        await store.record("ord_2", "note:d", "paired", "paired", {}, ledger=commit)
        assert await store.spent_today("p1", "USDC", 6) == usdc(4_000_000)
        clock.advance(24 * 3600)  # a new UTC day
        assert await store.spent_today("p1", "USDC", 6) == usdc(0)
        entries = await store.ledger_entries("p1")
        assert {e.order_id: e.status for e in entries} == {
            "ord_0": LedgerStatus.SPENT, "ord_1": LedgerStatus.RELEASED, "ord_2": LedgerStatus.COMMITTED,
        }  # fmt: skip

    run(factory, body)


def test_the_days_spend_is_exact_past_64_bit_integers(factory: StoreFactory) -> None:
    """18-decimal tokens: amounts of 19+ digits, and sums of 18-digit ones past 2**63, count exactly."""

    def eth(base_units: int) -> Money:
        return Money(base_units, 18, "ETH")

    async def body(store: OrderStore, _clock: Clock) -> None:
        long = [5 * 10**18, 123_456_789 * 10**18 + 1]  # 19 digits and more
        small = [9 * 10**17, 9 * 10**17] + [10**18 - 1] * 9  # 18 digits or fewer, summing past 2**63
        assert sum(small) > 2**63
        for i, amount in enumerate(long + small):
            await _new(store, f"ord_{i}")
            commit = LedgerChange(LedgerStatus.COMMITTED, "p1", eth(amount), daily_limit=eth(10**30))
            await store.record(f"ord_{i}", "note:c", "created", "created", {}, ledger=commit)
        assert await store.spent_today("p1", "ETH", 18) == eth(sum(long + small))
        for i in range(len(long)):
            released = LedgerChange(LedgerStatus.RELEASED)
            await store.record(f"ord_{i}", "note:r", "created", "created", {}, ledger=released)
        assert await store.spent_today("p1", "ETH", 18) == eth(sum(small))
        # The limit check sums the same way: one wei past the limit is refused.
        await _new(store, "ord_x")
        over = LedgerChange(LedgerStatus.COMMITTED, "p1", eth(2), daily_limit=eth(sum(small) + 1))
        with pytest.raises(BudgetExceeded, match="daily limit"):
            await store.record("ord_x", "note:c", "created", "created", {}, ledger=over)
        fits = LedgerChange(LedgerStatus.COMMITTED, "p1", eth(1), daily_limit=eth(sum(small) + 1))
        await store.record("ord_x", "note:c", "created", "created", {}, ledger=fits)

    run(factory, body)


def test_concurrent_commitments_never_exceed_the_daily_limit(factory: StoreFactory) -> None:
    async def body(store: OrderStore, _clock: Clock) -> list[Any]:
        for i in range(8):
            await _new(store, f"ord_{i}")
        commit = LedgerChange(LedgerStatus.COMMITTED, "p1", usdc(1_000_000), daily_limit=usdc(3_000_000))
        results = await asyncio.gather(
            *(store.record(f"ord_{i}", "note:c", "created", "created", {}, ledger=commit) for i in range(8)),
            return_exceptions=True,
        )
        assert await store.spent_today("p1", "USDC", 6) == usdc(3_000_000)
        return results

    results = run(factory, body)
    assert sum(1 for r in results if isinstance(r, BudgetExceeded)) == 5
    assert not [r for r in results if isinstance(r, Exception) and not isinstance(r, BudgetExceeded)]


def test_nonces_are_reserved_once_and_follow_the_chain(factory: StoreFactory) -> None:
    async def body(store: OrderStore, _clock: Clock) -> None:
        assert await store.reserve("eip155:1", "0xAbC", 5, 2) == 5
        assert await store.reserve("eip155:1", "0xabc", 5, 1) == 7  # the address in any case
        assert await store.reserve("eip155:1", "0xabc", 20, 1) == 20  # the chain moved past us
        assert await store.reserve("eip155:2", "0xabc", 0, 1) == 0
        firsts = await asyncio.gather(*(store.reserve("eip155:3", "0xdef", 0, 1) for _ in range(20)))
        assert sorted(firsts) == list(range(20))
        with pytest.raises(ValueError):
            await store.reserve("eip155:1", "0xabc", 0, 0)

    run(factory, body)


def test_meta_holds_values_but_never_a_secret_name(factory: StoreFactory) -> None:
    async def body(store: OrderStore, _clock: Clock) -> None:
        await store.set_meta("pairing_id:http://m/token_path|mach|0xab", "pair_1")
        assert await store.get_meta("pairing_id:http://m/token_path|mach|0xab") == "pair_1"
        await store.set_meta("pairing_id:http://m/token_path|mach|0xab", None)
        assert await store.get_meta("pairing_id:http://m/token_path|mach|0xab") is None
        for bad in ("pairing_token:m", "api_key", "private_key"):
            with pytest.raises(JournalError, match="never holds secrets"):
                await store.set_meta(bad, "x")

    run(factory, body)


def test_the_store_says_where_it_is_without_secrets(factory: StoreFactory) -> None:
    async def body(store: OrderStore, _clock: Clock) -> None:
        assert isinstance(store, OrderStore)
        assert store.label and "password" not in store.label.lower()
        assert store.label in repr(store)

    run(factory, body)


def test_every_event_hashes_as_the_python_chain_says(factory: StoreFactory) -> None:
    # The hash is part of the file format: any store's events verify with the one Python encoder.
    async def body(store: OrderStore, _clock: Clock) -> None:
        await store.create_order("ord_ü", {"n": "✓"}, context={"k": "v"})
        odd = {"quote": '"\\/', "controls": "\b\f\n\r\t\x01\x1f\x7f", "wide": "€😀\u2028", "n": 10**30}
        await store.record("ord_ü", 'note:weird "name"\n', "created", "created", odd, {"odd": odd})
        await store.record("ord_ü", "pair", "created", "paired", {"list": [1, "2", None, True, {}]})
        events = await store.events("ord_ü")
        prev = GENESIS_HASH
        for ev in events:
            assert ev.prev_hash == prev
            assert ev.hash == event_hash(
                prev, order_id=ev.order_id, seq=ev.seq, at=ev.at, trigger=ev.trigger, src=ev.src, dst=ev.dst,
                payload=ev.payload,
            )  # fmt: skip
            prev = ev.hash
        assert events[1].payload == odd and (await store.order("ord_ü")).context["odd"] == odd

    run(factory, body)


def test_a_writer_holding_a_stale_view_is_refused_by_the_store(factory: StoreFactory) -> None:
    async def setup(store: OrderStore, _clock: Clock) -> None:
        await _new(store)

    run(factory, setup)

    async def writer(store: OrderStore) -> str:
        try:  # both writers saw the order in "created"; only one may move it on
            await store.record("ord_1", "pair", "created", "paired", {"by": id(store)})
        except JournalError:
            return "refused"
        return "written"

    assert sorted(run_apart(factory, [writer, writer])) == ["refused", "written"]

    async def check(store: OrderStore, _clock: Clock) -> None:
        assert [e.trigger for e in await store.events("ord_1")] == ["submit", "pair"]
        assert (await store.order("ord_1")).state == "paired"

    run(factory, check)


def test_two_stores_racing_claim_never_lease_an_order_twice(factory: StoreFactory) -> None:
    async def setup(store: OrderStore, clock: Clock) -> None:
        for i in range(30):
            await _new(store, f"ord_{i:02}")
            clock.advance(0.001)

    run(factory, setup)

    def claimer(name: str) -> Callable[[OrderStore], Awaitable[list[str]]]:
        async def body(store: OrderStore) -> list[str]:
            got: list[str] = []
            while batch := await store.claim(["created"], f"{name}:1:w", 30, limit=3):
                got += [lease.order_id for lease in batch]
            return got

        return body

    a, b = run_apart(factory, [claimer("a"), claimer("b")])
    assert not set(a) & set(b)
    assert sorted(a + b) == [f"ord_{i:02}" for i in range(30)]


def test_two_stores_racing_commitments_never_exceed_the_daily_limit(factory: StoreFactory) -> None:
    async def setup(store: OrderStore, _clock: Clock) -> None:
        for i in range(12):
            await _new(store, f"ord_{i:02}")

    run(factory, setup)
    commit = LedgerChange(LedgerStatus.COMMITTED, "p1", usdc(1_000_000), daily_limit=usdc(5_000_000))

    def committer(ids: range) -> Callable[[OrderStore], Awaitable[list[str]]]:
        async def body(store: OrderStore) -> list[str]:
            outcomes = []
            for i in ids:
                try:
                    await store.record(f"ord_{i:02}", "note:c", "created", "created", {}, ledger=commit)
                    outcomes.append("committed")
                except BudgetExceeded:
                    outcomes.append("refused")
            return outcomes

        return body

    a, b = run_apart(factory, [committer(range(0, 12, 2)), committer(range(1, 12, 2))])
    assert sorted(a + b).count("committed") == 5 and (a + b).count("refused") == 7

    async def check(store: OrderStore, _clock: Clock) -> None:
        assert await store.spent_today("p1", "USDC", 6) == usdc(5_000_000)
        assert len(await store.ledger_entries("p1")) == 5

    run(factory, check)


def test_two_stores_reserving_nonces_at_once_never_share_one(factory: StoreFactory) -> None:
    # No setup: the two stores also open (and migrate) the new database at the same moment.
    async def reserver(store: OrderStore) -> list[int]:
        return [await store.reserve("eip155:7", "0xabc", 0, 1) for _ in range(25)]

    a, b = run_apart(factory, [reserver, reserver])
    assert sorted(a + b) == list(range(50))


def test_a_meta_swap_happens_only_over_the_value_the_writer_expects(factory: StoreFactory) -> None:
    async def body(store: OrderStore, _clock: Clock) -> None:
        assert isinstance(store, SwappableMeta)
        key = "fleet_lock:http://m|mach|0xab"
        assert await store.swap_meta(key, None, None)  # absent, as expected
        assert await store.swap_meta(key, None, "a")
        assert not await store.swap_meta(key, None, "b")  # taken: the second taker loses
        assert not await store.swap_meta(key, "x", "b") and await store.get_meta(key) == "a"
        assert not await store.swap_meta(key, None, None)
        assert await store.swap_meta(key, "a", "b") and await store.get_meta(key) == "b"
        assert not await store.swap_meta(key, "a", None)  # a stale holder cannot delete it
        assert await store.swap_meta(key, "b", None) and await store.get_meta(key) is None
        with pytest.raises(JournalError, match="never holds secrets"):
            await store.swap_meta("pairing_token:m", None, "x")

    run(factory, body)


def test_two_stores_racing_for_one_meta_swap_let_exactly_one_win(factory: StoreFactory) -> None:
    # A lock taken through the store: of two takers at once, one gets it, each round.
    def taker(name: str) -> Callable[[OrderStore], Awaitable[list[int]]]:
        async def take(store: OrderStore) -> list[int]:
            assert isinstance(store, SwappableMeta)
            return [i for i in range(20) if await store.swap_meta(f"fleet_lock:{i}", None, name)]

        return take

    a, b = run_apart(factory, [taker("a"), taker("b")])
    assert sorted(a + b) == list(range(20))


def test_bad_ledger_changes_and_context_keys_are_refused_with_nothing_written(factory: StoreFactory) -> None:
    async def body(store: OrderStore, _clock: Clock) -> None:
        await _new(store)
        for kwargs in (
            {"ledger": LedgerChange(LedgerStatus.SPENT)},  # nothing committed to spend
            {"ledger": LedgerChange(LedgerStatus.COMMITTED, "p1")},  # a commitment without an amount
            {"context_patch": {"bad key!": 1}},
        ):
            with pytest.raises(JournalError):
                await store.record("ord_1", "note:x", "created", "created", {}, **kwargs)  # type: ignore[arg-type]
        assert [e.trigger for e in await store.events("ord_1")] == ["submit"]
        assert await store.ledger_entry("ord_1") is None
        assert (await store.order("ord_1")).context == {"machine_id": "m"}
        # Releasing what was never committed is no error and changes nothing.
        await store.record(
            "ord_1", "note:r", "created", "created", {}, ledger=LedgerChange(LedgerStatus.RELEASED)
        )
        assert await store.ledger_entry("ord_1") is None

    run(factory, body)


def test_an_owner_retaking_its_expired_lease_starts_a_new_epoch(factory: StoreFactory) -> None:
    async def body(store: OrderStore, clock: Clock) -> None:
        await _new(store)
        first = await store.acquire_lease("ord_1", "host:1:a", 30)
        assert first is not None
        clock.advance(31)
        again = await store.acquire_lease("ord_1", "host:1:a", 30)
        assert again is not None and again.epoch == first.epoch + 1
        with pytest.raises(LeaseLost):  # a write still holding the old tenure is fenced off
            await store.record("ord_1", "note:old", "created", "created", {}, lease=first)
        await store.record("ord_1", "note:new", "created", "created", {}, lease=again)
        rec = await store.order("ord_1")
        assert (rec.lease_owner, rec.lease_epoch, rec.lease_until) == ("host:1:a", again.epoch, again.until)

    run(factory, body)
