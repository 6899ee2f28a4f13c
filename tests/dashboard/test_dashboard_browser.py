"""The dashboard in a real headless Chromium, over orders run on the served sandbox (one made hostile).

Three orders are run through the command line first: a confirmed one bought from a market that
names its service ``<script>…`` (a rewriting proxy in front of the sandbox), a disputed one that
the market refunds (``examples/dispute.yaml``), and one held in ``awaiting_approval``. ``ui`` then
serves the state directory and Chromium reads the pages; a fourth order run while the page is open
must appear without a reload. Screenshots go to the test's tmp path; ``UPDATE_DOCS_SCREENSHOT=1``
also writes the refunded order's page to ``docs/dashboard.png`` for the README.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import (
    CHROMIUM,
    HOSTILE,
    ROOT,
    HostileMarket,
    chromium,
    cli,
    market_env,
    networks_file,
    run_orders,
    served,
)

from buyer_agent.journal import Journal

pytestmark = [
    pytest.mark.chains,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/setup)"
    ),
]

EXPLORER = "https://explorer.example/tx/{tx}"


@dataclass
class Stage:
    state_dir: Path
    url: str
    env: dict[str, str]
    market: str
    orders: dict[str, str]
    shots: Path


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    root = tmp_path_factory.mktemp("dashboard")
    state_dir = root / "state"
    with served("sandbox", "--state-dir", str(root / "sandbox")) as (info, _):
        proxy = HostileMarket(info["url"])
        try:
            env = market_env(info)
            orders = run_orders(info, proxy.address, state_dir, root)
            networks = networks_file(info, root / "networks.yaml", EXPLORER)
            ui_env = {**env, "BUYER_AGENT_NETWORKS": str(networks)}
            with served("ui", "--state-dir", str(state_dir), "--port", "0", env=ui_env) as (ui, _):
                shots = root / "screenshots"
                shots.mkdir()
                yield Stage(state_dir, ui["url"], env, proxy.address, orders, shots)
        finally:
            proxy.close()


@pytest.fixture(scope="module")
def browser(stage: Stage) -> Iterator[Any]:
    with chromium() as context:
        yield context


def _shot(page: Any, stage: Stage, name: str) -> Path:
    path = stage.shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def _events(stage: Stage, order_id: str) -> int:
    journal = Journal.open_dir(stage.state_dir)
    try:
        return len(journal.events(order_id))
    finally:
        journal.close()


def test_the_orders_list_shows_each_order_newest_first_and_a_hostile_service_name_as_text(
    stage: Stage, browser: Any
) -> None:
    page = browser.new_page()
    page.goto(stage.url)
    rows = page.locator("#live tr[data-order]")
    assert rows.count() == 3
    # Newest first: the held order was run last.
    ids = [rows.nth(i).get_attribute("data-order") for i in range(3)]
    assert ids == [stage.orders["awaiting_approval"], stage.orders["refunded"], stage.orders["confirmed"]]
    confirmed = page.locator(f'tr[data-order="{stage.orders["confirmed"]}"]')
    # The market's markup is shown as the text it is: no script ran, no element was made of it.
    assert confirmed.locator("td.service").inner_text() == HOSTILE
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#live script, #live img").count() == 0
    assert confirmed.locator(".state").inner_text() == "confirmed"
    assert page.locator(f'tr[data-order="{stage.orders["refunded"]}"] .state').inner_text() == "refunded"
    held = page.locator(f'tr[data-order="{stage.orders["awaiting_approval"]}"] .state')
    assert held.inner_text() == "awaiting_approval" and "running" in (held.get_attribute("class") or "")
    assert "1 running" in page.locator("#order-count").inner_text()
    _shot(page, stage, "orders")
    # Filter by state (the form applies on change), then by a day with no orders.
    page.select_option("#filter-state", "refunded")
    page.wait_for_url("**state=refunded**")
    assert page.locator("#live tr[data-order]").count() == 1
    page.goto(stage.url + "?day=2001-01-01")
    assert page.locator("#live tr[data-order]").count() == 0
    page.close()


def test_a_confirmed_order_shows_its_timeline_the_choice_against_the_candidates_and_the_payment(
    stage: Stage, browser: Any
) -> None:
    page = browser.new_page()
    page.goto(f"{stage.url}orders/{stage.orders['confirmed']}")
    assert page.locator("#order-state").inner_text() == "confirmed"
    # Every journal event, with its hash.
    timeline = page.locator("#timeline tbody tr")
    assert timeline.count() == _events(stage, stage.orders["confirmed"])
    assert len(timeline.first.locator("code.hash").get_attribute("title") or "") > 64
    # The chosen quote against the others, with the strategy's reasons (market text as text).
    assert page.locator("#chosen-service").inner_text() == HOSTILE
    assert page.locator("#decision-reason").inner_text()
    chosen = page.locator("#candidates tr.chosen")
    assert chosen.count() == 1 and chosen.locator("td.service").inner_text() == HOSTILE
    assert page.locator("#candidates tbody tr").count() > 1
    assert page.locator("#candidates td.reasons .reason").count() > 0
    # The payment, linked to the explorer of the chain's profile.
    payment = page.locator("#payment")
    assert "0.80 USDC" in payment.inner_text()
    tx = payment.locator("code.tx").first.inner_text()
    assert tx.startswith("0x")
    link = payment.locator("a.explorer").first
    assert link.get_attribute("href") == EXPLORER.replace("{tx}", tx)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#live script, #live img").count() == 0
    _shot(page, stage, "order-confirmed")
    page.close()


def test_a_refunded_order_shows_its_dispute_and_the_evidence_sent(stage: Stage, browser: Any) -> None:
    page = browser.new_page()
    order_id = stage.orders["refunded"]
    page.goto(f"{stage.url}orders/{order_id}")
    assert page.locator("#order-state").inner_text() == "refunded"
    assert "acceptance" in page.locator("#dispute-reason").inner_text()
    evidence = json.loads(page.locator("#evidence").inner_text())
    assert evidence["order_id"] == order_id
    assert evidence["journal"]["dispute"]["hash"]  # bound to the journal
    assert page.locator("#acceptance").inner_text()
    path = _shot(page, stage, "order-refunded")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":  # the README's picture
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(path, ROOT / "docs" / "dashboard.png")
    page.close()


def test_a_running_order_shows_where_it_stands(stage: Stage, browser: Any) -> None:
    page = browser.new_page()
    page.goto(f"{stage.url}orders/{stage.orders['awaiting_approval']}")
    state = page.locator("#order-state")
    assert state.inner_text() == "awaiting_approval" and "running" in (state.get_attribute("class") or "")
    assert page.locator("#candidates tr.chosen").count() == 1
    assert page.locator("#payment").count() == 0  # nothing paid while it waits
    _shot(page, stage, "order-running")
    page.close()


def test_spend_is_charted_against_the_daily_limit_and_the_machine_drawn_on_the_server(
    stage: Stage, browser: Any
) -> None:
    page = browser.new_page()
    page.goto(stage.url + "spend")
    chart = page.locator("figure.spend svg.chart").first
    assert "daily limit" in chart.inner_html()
    assert chart.locator("rect.bar-spent, rect.bar-committed").count() >= 1
    _shot(page, stage, "spend")
    page.goto(stage.url + "machine")
    diagram = page.locator("#diagram svg")
    text = diagram.text_content() or ""
    for state in ("created", "awaiting_approval", "escrow_locked", "confirmed", "refunded"):
        assert state in text
    _shot(page, stage, "machine")
    page.close()


def test_a_new_order_appears_without_a_reload(stage: Stage, browser: Any) -> None:
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
    page.wait_for_selector(f'#live tr[data-order="{new_id}"][data-state="confirmed"]', timeout=30_000)
    assert page.evaluate("window.__same_page") is True  # the page was not reloaded
    assert page.locator("#live tr[data-order]").count() == before + 1
    assert page.locator("#live tr[data-order]").first.get_attribute("data-order") == new_id
    _shot(page, stage, "orders-live")
    page.close()


def _get(url: str, *, method: str = "GET", host: str | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, method=method, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers.items()), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read().decode()


def test_the_server_answers_reads_for_loopback_hosts_only(stage: Stage) -> None:
    status, headers, _ = _get(stage.url)
    assert status == 200
    # Only the page's own script and style may run, whatever a market manages to put in a page.
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    # A page on another site reaching this port through a rebound DNS name is refused.
    assert _get(stage.url, host="evil.example")[0] == 421
    assert _get(stage.url, method="POST")[0] == 405
    assert _get(stage.url + "orders/ord_nope")[0] == 404
    assert _get(stage.url + "?state=bogus")[0] == 400
    assert _get(stage.url + "?day=yesterday")[0] == 400
