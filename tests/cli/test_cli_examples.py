"""The examples end to end through the command line, on the embedded and on an external sandbox."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cli_support import cli, market_env, transfers_from

pytestmark = pytest.mark.chains


@pytest.mark.parametrize(
    ("example", "state", "code", "rail", "chain"),
    [
        ("task.yaml", "confirmed", 0, "wallet", "eip155:"),
        ("escrow.yaml", "confirmed", 0, "onchain-escrow", "eip155:"),
        ("solana.yaml", "confirmed", 0, "wallet", "solana:"),
        ("dispute.yaml", "refunded", 3, "onchain-escrow", "eip155:"),
    ],
)
def test_example_on_the_embedded_sandbox(
    example: str, state: str, code: int, rail: str, chain: str, tmp_path: Path
) -> None:
    proc = cli("run", f"examples/{example}", "--json", "--state-dir", str(tmp_path / "state"))
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    assert out["state"] == state
    for key in ("order_id", "quote", "candidates", "payment", "journal"):
        assert key in out
    assert set(out["quote"]) >= {"service_id", "quote_id", "price"}
    assert isinstance(out["quote"]["price"]["amount"], str)
    for cand in out["candidates"]:
        assert set(cand) >= {"service_id", "quote_id", "price", "score", "eligible", "reasons"}
    pay = out["payment"]
    assert pay["rail"] == rail and pay["chain"].startswith(chain)
    assert pay["amount"] == out["quote"]["price"]["amount"] and pay["currency"] == "USDC"
    assert pay["tx"]
    # The market's own view of the payment: verified (against the chain for EVM, the escrow deposit
    # for escrow), then released to the provider or refunded to the buyer.
    assert pay["status"] == ("refunded" if state == "refunded" else "released")
    assert pay["verification"] == {"wallet": "rpc" if chain == "eip155:" else "recorded"}.get(
        rail, "escrow-lock"
    )
    assert Path(out["journal"]).exists()
    # One progress line per state, with its timing, on stderr.
    assert f"→ {state}" in proc.stderr and "s]" in proc.stderr
    shown = json.loads(cli("show", out["order_id"], "--json", "--state-dir", str(tmp_path / "state")).stdout)
    assert shown["order"]["state"] == state
    assert any(pay["tx"] in step["tx"] for step in shown["timeline"])


# For each example: what cheapest picks, the quotes on its own rail it may choose between, the one
# over its 2.50 budget and the one the demo pairing's policy denies.
VARIETY = {
    "task.yaml": ("svc_hash_budget", {"svc_hash_budget", "svc_hash_fast"}, "svc_hash_premium",
                  "svc_hash_denied"),
    "escrow.yaml": ("svc_hash_escrow", {"svc_hash_escrow", "svc_hash_escrow_pro"}, "svc_hash_escrow_premium",
                    "svc_hash_escrow_denied"),
    "solana.yaml": ("svc_hash_sol", {"svc_hash_sol", "svc_hash_sol_fast"}, "svc_hash_sol_premium",
                    "svc_hash_sol_denied"),
    "dispute.yaml": ("svc_hash_faulty", {"svc_hash_faulty", "svc_hash_faulty_pro"}, "svc_hash_faulty_premium",
                     "svc_hash_faulty_denied"),
}  # fmt: skip


@pytest.mark.parametrize("example", sorted(VARIETY))
def test_each_example_has_quotes_to_choose_between(example: str, tmp_path: Path) -> None:
    chosen, eligible, over_budget, denied = VARIETY[example]
    proc = cli("run", f"examples/{example}", "--json", "--state-dir", str(tmp_path))
    # The example's outcome is unchanged: dispute.yaml still disputes and is refunded.
    assert proc.returncode == (3 if example == "dispute.yaml" else 0), proc.stderr
    out = json.loads(proc.stdout)
    assert out["quote"]["service_id"] == chosen
    seen = {c["service_id"]: c for c in out["candidates"]}
    ok = [c for c in out["candidates"] if c["eligible"]]
    assert {c["service_id"] for c in ok} == eligible
    # Several eligible quotes at different prices and different market scores.
    assert len({c["price"]["amount"] for c in ok}) == len(ok) >= 2
    market_scores = {r for c in ok for r in c["reasons"] if r.startswith("market score ")}
    assert len(market_scores) == len(ok), market_scores
    # Quotes on the example's own rail that no strategy may take, each for its one reason.
    assert seen[over_budget]["eligible"] is False
    assert seen[over_budget]["reasons"] == [
        f"price {seen[over_budget]['price']['amount']} USDC over order budget 2.50 USDC"
    ]
    assert seen[denied]["eligible"] is False
    assert seen[denied]["reasons"] == [f"service {denied} is denied by the policy"]
    # The denied one is cheaper than any eligible quote: only the policy keeps it out.
    assert Decimal(seen[denied]["price"]["amount"]) < min(Decimal(c["price"]["amount"]) for c in ok)


def test_default_demo_picks_the_cheapest_eligible_quote(tmp_path: Path) -> None:
    proc = cli("run", "examples/task.yaml", "--json", "--state-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["quote"]["service_id"] == "svc_hash_budget"
    assert out["quote"]["price"]["amount"] in ("0.8", "0.80")
    seen = {c["service_id"]: c for c in out["candidates"]}
    assert seen["svc_hash_denied"]["eligible"] is False and seen["svc_hash_denied"]["reasons"]
    assert seen["svc_hash_premium"]["eligible"] is False  # 4.00 is above the 2.50 budget


def test_run_against_an_external_sandbox(external: dict[str, Any], tmp_path: Path) -> None:
    from web3 import Web3

    buyer = external["wallets"]["evm"]["address"]
    before = transfers_from(external, buyer)
    proc = cli(
        "run",
        "examples/task.yaml",
        "--json",
        "--market",
        external["url"],
        "--state-dir",
        str(tmp_path),
        env=market_env(external),
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["state"] == "confirmed"
    # The payment is a mined, successful transaction on the sandbox's chain.
    w3 = Web3(Web3.HTTPProvider(external["evm"]["rpc_url"]))
    receipt = w3.eth.get_transaction_receipt(out["payment"]["tx"])
    assert receipt["status"] == 1
    assert transfers_from(external, buyer) == before + 1
    # The same example through PEAQOS_ORCHESTRATION_URL instead of --market.
    env = market_env(external)
    env["PEAQOS_ORCHESTRATION_URL"] = external["url"]
    proc = cli("run", "examples/escrow.yaml", "--json", "--state-dir", str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["state"] == "confirmed"


def test_price_example_keeps_the_markets_numbers_end_to_end(tmp_path: Path) -> None:
    # Issue 14, dialect 1: the feed's {"price": 54575.06, "volume": 1200} stays numbers through the
    # journal, the acceptance schema (type number / integer, minimum) and the JSON the CLI prints.
    # Before, the journal turned 54575.06 into the text "54575.06" and the schema disputed the order.
    state = str(tmp_path / "state")
    proc = cli("run", "examples/price.yaml", "--json", "--state-dir", state)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout, parse_float=Decimal)
    assert out["state"] == "confirmed" and out["quote"]["service_id"] == "svc_price_feed"
    result = out["outcome"]["result"]
    assert result["price"] == Decimal("54575.06") and isinstance(result["price"], Decimal)
    assert result["volume"] == 1200 and isinstance(result["volume"], int)
    assert isinstance(result["ts"], int) and result["symbol"] == "BTC-USD"
    assert '"price": 54575.06' in proc.stdout and '"volume": 1200' in proc.stdout
    # Our own money keeps its text form.
    assert out["payment"]["amount"] == "0.25" and out["payment"]["status"] == "released"

    shown = cli("show", out["order_id"], "--json", "--state-dir", state)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout, parse_float=Decimal)["order"]["outcome"]["result"] == result

    exported = cli("export", out["order_id"], "-o", str(tmp_path / "o.jsonl"), "--state-dir", state)
    assert exported.returncode == 0, exported.stderr
    text = (tmp_path / "o.jsonl").read_text()
    assert '"price":54575.06' in text and '"54575.06"' not in text  # exact decimal text in the journal
    replayed = cli("replay", str(tmp_path / "o.jsonl"), "--json")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert json.loads(replayed.stdout)["verified"] is True  # its hash chain re-hashes the numbers alike


def test_free_example_runs_order_execute_confirm_with_nothing_paid(tmp_path: Path) -> None:
    # The documented no-payment flow: no intent, no proof, nothing signed; the rail says so.
    state = str(tmp_path / "state")
    proc = cli("run", "examples/free.yaml", "--json", "--state-dir", state)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["state"] == "confirmed" and out["quote"]["service_id"] == "svc_hash_free"
    pay = out["payment"]
    assert pay["rail"] == "not-required" and pay["tx"] is None and pay["amount"] == "0.00"
    assert "ordered → executed" in proc.stderr and "paying" not in proc.stderr
    shown = json.loads(cli("show", out["order_id"], "--json", "--state-dir", state).stdout)
    triggers = [step["trigger"] for step in shown["timeline"]]
    assert (
        "execute_free" in triggers
        and "pay" not in triggers
        and "intent:create_payment_intent" not in triggers
    )
    human = cli("run", "examples/free.yaml", "--state-dir", state)
    assert human.returncode == 0 and "payment  none: the quote needs no payment" in human.stdout


def test_x402_example_shows_the_rail_the_nonce_and_the_settlement(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    proc = cli("run", "examples/x402.yaml", "--json", "--state-dir", state)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["state"] == "confirmed" and out["quote"]["service_id"] == "svc_hash_x402"
    pay = out["payment"]
    assert pay["rail"] == "x402" and pay["chain"].startswith("eip155:") and pay["amount"] == "0.75"
    assert pay["x402"]["nonce"].startswith("0x") and len(pay["x402"]["nonce"]) == 66
    assert pay["x402"]["reference"].startswith("x402:eip155:")
    assert pay["tx"] == pay["settlement_tx"] and pay["tx"].startswith("0x")
    assert pay["status"] == "released" and pay["verification"] == "recorded"
    shown = json.loads(cli("show", out["order_id"], "--json", "--state-dir", state).stdout)
    assert any(pay["tx"] in step["tx"] for step in shown["timeline"])
