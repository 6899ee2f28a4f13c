"""``ui --store postgresql://…``: the dashboard over a fleet's PostgreSQL store, in a real headless Chromium.

The same three orders as the SQLite pages (a confirmed one from a market naming its service
``<script>…``, a refunded one, one held for approval) are run into a state directory and moved into
a database of a real PostgreSQL server with ``store copy``; ``ui --store URL`` serves that database.
A fourth order copied in while the page is open must appear without a reload.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import (
    CHROMIUM,
    HOSTILE,
    HostileMarket,
    chromium,
    cli,
    market_env,
    networks_file,
    run_orders,
    served,
)

from buyer_agent.journal import Journal
from buyer_agent.testing import PostgresServer

pytestmark = [
    pytest.mark.chains,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/setup)"
    ),
]

EXPLORER = "https://explorer.example/tx/{tx}"


@dataclass
class PgStage:
    state_dir: Path
    database: str
    url: str
    env: dict[str, str]
    market: str
    orders: dict[str, str]
    shots: Path


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer) -> Iterator[PgStage]:
    root = tmp_path_factory.mktemp("dashboard-pg")
    state_dir = root / "state"
    with served("sandbox", "--state-dir", str(root / "sandbox")) as (info, _):
        proxy = HostileMarket(info["url"])
        try:
            env = market_env(info)
            orders = run_orders(info, proxy.address, state_dir, root)
            database = postgres_server.create_database()
            moved = cli("store", "copy", "--from", str(state_dir), "--to", database, env=env)
            assert moved.returncode == 0, moved.stderr
            networks = networks_file(info, root / "networks.yaml", EXPLORER)
            # No state directory at all where the ui runs: the orders come from the database only.
            ui_env = {
                **env,
                "BUYER_AGENT_NETWORKS": str(networks),
                "BUYER_AGENT_STATE_DIR": str(root / "none"),
            }
            with served("ui", "--store", database, "--port", "0", env=ui_env) as (ui, _):
                shots = root / "screenshots"
                shots.mkdir()
                yield PgStage(state_dir, database, ui["url"], env, proxy.address, orders, shots)
        finally:
            proxy.close()


@pytest.fixture(scope="module")
def browser(stage: PgStage) -> Iterator[Any]:
    with chromium() as context:
        yield context


def _events(stage: PgStage, order_id: str) -> int:
    journal = Journal.open_dir(stage.state_dir)
    try:
        return len(journal.events(order_id))
    finally:
        journal.close()


def _password(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


def test_the_orders_of_a_postgresql_store_are_listed_newest_first_with_market_text_as_text(
    stage: PgStage, browser: Any
) -> None:
    page = browser.new_page()
    page.goto(stage.url)
    rows = page.locator("#live tr[data-order]")
    ids = [rows.nth(i).get_attribute("data-order") for i in range(rows.count())]
    assert ids == [stage.orders["awaiting_approval"], stage.orders["refunded"], stage.orders["confirmed"]]
    confirmed = page.locator(f'tr[data-order="{stage.orders["confirmed"]}"]')
    assert confirmed.locator("td.service").inner_text() == HOSTILE
    assert page.evaluate("window.__pwned") is None and page.locator("#live script, #live img").count() == 0
    assert page.locator(f'tr[data-order="{stage.orders["refunded"]}"] .state').inner_text() == "refunded"
    assert "1 running" in page.locator("#order-count").inner_text()
    # The page says where the orders live: the database, never its password.
    text = page.locator("body").inner_text()
    assert "postgresql://" in text and _password(stage.database) not in page.content()
    page.screenshot(path=str(stage.shots / "pg-orders.png"), full_page=True)
    page.close()


def test_an_order_read_from_postgresql_shows_its_timeline_choice_payment_and_dispute(
    stage: PgStage, browser: Any
) -> None:
    page = browser.new_page()
    page.goto(f"{stage.url}orders/{stage.orders['confirmed']}")
    assert page.locator("#order-state").inner_text() == "confirmed"
    # Every event the database holds, each with the hash it was chained with in SQLite.
    assert page.locator("#timeline tbody tr").count() == _events(stage, stage.orders["confirmed"])
    assert len(page.locator("#timeline code.hash").first.get_attribute("title") or "") > 64
    assert page.locator("#candidates tr.chosen td.service").inner_text() == HOSTILE
    tx = page.locator("#payment code.tx").first.inner_text()
    assert page.locator("#payment a.explorer").first.get_attribute("href") == EXPLORER.replace("{tx}", tx)
    assert page.evaluate("window.__pwned") is None
    page.screenshot(path=str(stage.shots / "pg-order-confirmed.png"), full_page=True)
    page.goto(f"{stage.url}orders/{stage.orders['refunded']}")
    assert page.locator("#order-state").inner_text() == "refunded"
    evidence = json.loads(page.locator("#evidence").inner_text())
    assert evidence["order_id"] == stage.orders["refunded"] and evidence["journal"]["dispute"]["hash"]
    page.goto(f"{stage.url}orders/{stage.orders['awaiting_approval']}")
    state = page.locator("#order-state")
    assert state.inner_text() == "awaiting_approval" and "running" in (state.get_attribute("class") or "")
    page.goto(stage.url + "spend")
    chart = page.locator("figure.spend svg.chart").first
    assert "daily limit" in chart.inner_html()  # the ledger came along with the orders
    assert chart.locator("rect.bar-spent, rect.bar-committed").count() >= 1
    page.screenshot(path=str(stage.shots / "pg-spend.png"), full_page=True)
    page.close()


def test_an_order_that_reaches_the_database_appears_without_a_reload(stage: PgStage, browser: Any) -> None:
    page = browser.new_page()
    page.goto(stage.url)
    page.wait_for_selector("#live[data-connected=yes]")
    page.evaluate("window.__same_page = true")
    before = page.locator("#live tr[data-order]").count()
    proc = cli(
        "run", "examples/task.yaml", "--json", "--market", stage.market, "--state-dir", str(stage.state_dir),
        env=stage.env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    new_id = json.loads(proc.stdout)["order_id"]
    moved = cli("store", "copy", "--from", str(stage.state_dir), "--to", stage.database, env=stage.env)
    assert moved.returncode == 0, moved.stderr
    page.wait_for_selector(f'#live tr[data-order="{new_id}"][data-state="confirmed"]', timeout=30_000)
    assert page.evaluate("window.__same_page") is True
    assert page.locator("#live tr[data-order]").count() == before + 1
    page.close()


def test_ui_refuses_a_store_and_a_state_dir_together_and_names_a_store_with_no_journal(
    tmp_path: Path,
) -> None:
    both = cli("ui", "--store", str(tmp_path), "--state-dir", str(tmp_path), "--port", "0")
    assert both.returncode == 2 and "--store" in both.stderr
    empty = cli("ui", "--store", str(tmp_path), "--port", "0")
    assert empty.returncode == 1 and f"no journal in {tmp_path}" in empty.stderr
    assert "Traceback" not in both.stderr + empty.stderr
