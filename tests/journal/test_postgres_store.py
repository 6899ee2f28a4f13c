"""What only the PostgreSQL store has to show: the database itself refuses bad writes, migrations are
safe at once, intents commit durably even where synchronous_commit is off, the server's clock rules
leases, claims skip locked rows, and no password reaches a label, a repr or an error.

Everything runs against a real server (``postgres_url``: a fresh database on the session's cluster).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buyer_agent import JournalError
from buyer_agent.journal import GENESIS_HASH, event_hash
from buyer_agent.journal._canonical import chain_hash, encode_clean
from buyer_agent.journal._open import display_url
from buyer_agent.journal._pg_schema import MIGRATIONS
from buyer_agent.journal._postgres import PostgresStore
from buyer_agent.testing._postgres import PostgresServer

T = TypeVar("T")


def arun(body: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(body())  # type: ignore[arg-type]


def sql(url: str, query: str, args: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query.encode(), args)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []


def test_migrations_are_versioned_and_safe_when_processes_start_at_once(postgres_url: str) -> None:
    async def body() -> None:
        stores = await asyncio.gather(*(PostgresStore.open(postgres_url) for _ in range(4)))
        for store in stores:
            await store.aclose()
        again = await PostgresStore.open(postgres_url)  # nothing pending: opens as it is
        await again.aclose()

    arun(body)
    assert sql(postgres_url, "SELECT version, name FROM buyer_agent.migrations") == [
        (m.version, m.name) for m in MIGRATIONS
    ]
    sql(postgres_url, "INSERT INTO buyer_agent.migrations (version, name) VALUES (99, 'from the future')")
    with pytest.raises(JournalError, match="version 99, newer"):
        arun(lambda: PostgresStore.open(postgres_url))


def test_the_database_refuses_events_off_the_head_edits_and_deletions(postgres_url: str) -> None:
    async def body() -> None:
        store = await PostgresStore.open(postgres_url)
        await store.create_order("o1", {})
        await store.record("o1", "pair", "created", "paired", {})
        await store.aclose()

    arun(body)
    head = sql(postgres_url, "SELECT seq, hash FROM buyer_agent.events WHERE order_id = 'o1' ORDER BY seq")
    first, last = head[0][1], head[-1][1]
    at = "2026-01-01T00:00:00.000000Z"

    def insert(seq: int, src: str, prev: str, digest: str | None = None) -> None:
        digest = digest or event_hash(
            prev, order_id="o1", seq=seq, at=at, trigger="x", src=src, dst=src, payload={}
        )
        sql(
            postgres_url,
            "INSERT INTO buyer_agent.events (order_id, seq, at, trigger, src, dst, payload, prev_hash, hash) "
            "VALUES ('o1', %s, %s, 'x', %s, %s, '{}', %s, %s)",
            [seq, at, src, src, prev, digest],
        )

    for seq, src, prev in [(3, "created", last), (2, "paired", first), (3, "paired", first)]:
        with pytest.raises(psycopg.Error, match="stale writer"):
            insert(seq, src, prev)
    with pytest.raises(psycopg.Error, match="hash does not match"):
        insert(3, "paired", last, digest="f" * 64)
    for statement in (
        "UPDATE buyer_agent.events SET payload = '{\"x\":1}' WHERE order_id = 'o1'",
        "DELETE FROM buyer_agent.events WHERE order_id = 'o1'",
        "TRUNCATE buyer_agent.events CASCADE",
    ):
        with pytest.raises(psycopg.Error, match="append-only"):
            sql(postgres_url, statement)
    insert(3, "paired", last)  # at the head, with its true hash: accepted, and the row moved with it
    assert sql(postgres_url, "SELECT state, last_seq FROM buyer_agent.orders") == [("paired", 3)]


printable = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40) | printable,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(printable, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order_id=printable, trigger=printable, src=printable, dst=printable, at=printable, payload=json_values)
def test_the_servers_hash_is_the_python_hash_byte_for_byte(
    postgres_url: str, order_id: str, trigger: str, src: str, dst: str, at: str, payload: Any
) -> None:
    text = encode_clean({"v": payload})
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        if not conn.execute(b"SELECT 1 FROM pg_proc WHERE proname = 'event_hash'").fetchone():
            arun(lambda: _migrate_only(postgres_url))
        row = conn.execute(
            b"SELECT buyer_agent.event_hash(%s, %s, %s, %s, %s, %s, %s, %s)",
            [GENESIS_HASH, order_id, 12, at, trigger, src, dst, text],
        ).fetchone()
    assert row is not None
    assert row[0] == chain_hash(GENESIS_HASH, order_id, 12, at, trigger, src, dst, text)


async def _migrate_only(url: str) -> None:
    await (await PostgresStore.open(url)).aclose()


def test_an_intent_commits_durably_where_synchronous_commit_is_off() -> None:
    # A server whose commits are asynchronous (synchronous_commit=off) and that names a standby that
    # never comes: a commit made with synchronous_commit=on waits for that standby ("SyncRep"), one
    # made with it off returns at once. So a waiting intent shows it was committed synchronously.
    with PostgresServer(settings=["synchronous_commit=off", "synchronous_standby_names=nobody"]) as server:
        url = server.create_database()

        async def body() -> None:
            store = await PostgresStore.open(url)
            try:
                await store.create_order("o1", {})
                await store.record("o1", "note:cheap", "created", "created", {})  # asynchronous: returns
                intent = asyncio.create_task(store.record("o1", "intent:pay", "created", "created", {}))
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as watch:
                    waiting = None
                    for _ in range(600):
                        cur = await watch.execute(
                            b"SELECT pid, query FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
                        )
                        waiting = await cur.fetchone()
                        if waiting is not None or intent.done():
                            break
                        await asyncio.sleep(0.05)
                    assert waiting is not None and "record_event" in waiting[1], intent
                    # Stop it waiting for the standby: it is already flushed here, so it completes.
                    await watch.execute(b"SELECT pg_cancel_backend(%s)", [waiting[0]])
                await intent
                assert [e.trigger for e in await store.events("o1")] == ["submit", "note:cheap", "intent:pay"]
            finally:
                await store.aclose()

        arun(body)


def test_leases_expire_by_the_servers_clock(postgres_url: str) -> None:
    async def body() -> None:
        store = await PostgresStore.open(postgres_url)  # no time shift: the server's clock alone
        try:
            await store.create_order("o1", {})
            first = await store.acquire_lease("o1", "host:1:a", 0.3)
            assert first is not None
            for _ in range(200):
                second = await store.acquire_lease("o1", "host:2:b", 30)
                if second is not None:
                    break
                await asyncio.sleep(0.05)
            assert second is not None and second.epoch == first.epoch + 1
            # Taken only once the server's clock had passed the first lease's end.
            row = sql(postgres_url, "SELECT %s::timestamptz - interval '30 seconds' >= %s::timestamptz",
                      [second.until, first.until])  # fmt: skip
            assert row == [(True,)]
        finally:
            await store.aclose()

    arun(body)


def test_claim_skips_rows_another_transaction_holds(postgres_url: str) -> None:
    async def body() -> None:
        store = await PostgresStore.open(postgres_url)
        try:
            for i in range(3):
                await store.create_order(f"o{i}", {})
            async with await psycopg.AsyncConnection.connect(postgres_url) as other:
                await other.execute(b"SELECT 1 FROM buyer_agent.orders WHERE order_id = 'o0' FOR UPDATE")
                # Held by an open transaction: a plain FOR UPDATE would wait here until it ends.
                got = await asyncio.wait_for(store.claim(["created"], "me:1:w", 30, limit=5), timeout=30)
                assert [lease.order_id for lease in got] == ["o1", "o2"]
                await other.rollback()
            assert [lease.order_id for lease in await store.claim(["created"], "me:1:w", 30, limit=5)] == [
                "o0"
            ]
        finally:
            await store.aclose()

    arun(body)


def test_no_password_in_labels_reprs_or_errors(postgres_server: PostgresServer, postgres_url: str) -> None:
    password = postgres_server.password
    assert password in postgres_url
    assert password not in display_url(postgres_url)
    in_query = (
        f"postgresql://127.0.0.1:{postgres_server.port}/x?user=postgres&password={password}&sslmode=disable"
    )
    assert (
        display_url(in_query)
        == f"postgresql://127.0.0.1:{postgres_server.port}/x?user=postgres&sslmode=disable"
    )

    async def body() -> None:
        store = await PostgresStore.open(postgres_url)
        assert password not in store.label and password not in repr(store)
        await store.aclose()

    arun(body)
    wrong = postgres_url.replace(password, "hunter2-wrong")
    with pytest.raises(JournalError) as info:
        arun(lambda: PostgresStore.open(wrong, timeout=5))
    assert "password authentication failed" in str(info.value) and "hunter2" not in str(info.value)
    with pytest.raises(JournalError) as info:
        arun(lambda: PostgresStore.open(postgres_url.rsplit("/", 1)[0] + "/no_such_db", timeout=5))
    assert "no_such_db" in str(info.value) and password not in str(info.value)


def test_a_database_that_is_not_utf8_is_refused(postgres_server: PostgresServer) -> None:
    sql(postgres_server.url, "CREATE DATABASE latin ENCODING 'LATIN1' TEMPLATE template0")
    with pytest.raises(JournalError, match="not UTF8"):
        arun(lambda: PostgresStore.open(postgres_server.database_url("latin")))


def test_the_store_goes_on_after_the_server_restarts() -> None:
    # Connections cut by a restart fail once, as a retryable JournalError; the pool then reconnects.
    with PostgresServer() as server:
        url = server.create_database()

        async def body() -> None:
            store = await PostgresStore.open(url, max_connections=2)
            try:
                await store.create_order("o1", {})
                server.restart()
                failures = []
                for _ in range(5):
                    try:
                        assert await store.has_order("o1")
                        break
                    except JournalError as exc:
                        failures.append(exc)
                else:
                    raise AssertionError(failures)
                assert all(exc.retryable for exc in failures) and len(failures) <= 2
                await store.record("o1", "pair", "created", "paired", {})
                assert [e.seq for e in await store.events("o1")] == [1, 2]
            finally:
                await store.aclose()

        arun(body)
