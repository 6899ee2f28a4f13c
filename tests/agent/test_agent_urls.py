"""Market URLs in one spelling: resume and stored pairings find their market however its URL is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from buyer_agent import BuyerAgent
from buyer_agent._money import Money
from buyer_agent._urls import normalise_market_url, same_market
from buyer_agent.workflow import OrderSpec


@pytest.mark.parametrize(
    ("written", "normal"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("HTTP://LocalHost:8080/", "http://127.0.0.1:8080"),
        ("http://localhost:80/api/", "http://127.0.0.1/api"),
        ("https://Market.Example:443/", "https://market.example"),
        ("https://market.example:8443/v", "https://market.example:8443/v"),
        ("http://[::1]:9/", "http://[::1]:9"),
        ("embedded-sandbox", "embedded-sandbox"),
    ],
)
def test_one_spelling(written: str, normal: str) -> None:
    assert normalise_market_url(written) == normal


def test_other_ports_are_other_markets() -> None:
    assert same_market("http://localhost:8080/", "http://127.0.0.1:8080")
    assert not same_market("http://127.0.0.1:8080", "http://127.0.0.1:8081")
    assert not same_market("http://127.0.0.1:8080", "https://127.0.0.1:8080")


def test_resumable_matches_the_recorded_market_in_normal_form(tmp_path: Path) -> None:
    agent = BuyerAgent("http://localhost:8080/", state_dir=tmp_path)
    spec = OrderSpec(service_type="s", budget=Money.parse("1 USDC"))
    for order_id, market in (
        ("ord_same", "http://127.0.0.1:8080"),
        ("ord_other", "http://127.0.0.1:9090"),
        ("ord_embedded", "embedded-sandbox"),
    ):
        agent.journal.create_order(order_id, spec.to_json(), context={}, payload={})
        agent.journal.set_meta(f"order_market:{order_id}", market)
    try:
        assert agent.resumable() == (["ord_same"], ["ord_other", "ord_embedded"])
    finally:
        agent.journal.close()
