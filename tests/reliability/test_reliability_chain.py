"""Chain faults: RPC down (at start, while paying), a dropped transaction, a revert, malformed RPC answers.

Orders run through the real CLI (forked by ``crash_worker.py``) against one served sandbox, their EVM
RPC through ``reliability_proxies.RpcProxy``, which can close its port (node down) and answer a send
with the hash while never forwarding it (dropped from the pool). Each order has its own fresh wallet,
so payments are counted from anvil's Transfer logs per wallet. Outcome: confirmed with exactly one
payment — directly, or after a clean error exit and a ``resume`` — or a clean failure with none.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability_proxies import RpcProxy
from reliability_support import (
    final_states,
    fork_cli,
    fund_wallets,
    make_orders,
    payments_by_sender,
    verify_journals,
    write_task,
)

pytestmark = pytest.mark.chains

SHORT_PAYMENT_TASK = """\
task: {service_type: compute.marketplace, task_type: hash, operation: sha256, input: {data: dropped}}
budget: "2.50 USDC"
payment: {rail: wallet, chain: evm}
acceptance: {outcome: completed}
deadlines: {quote: 60, order: 60, payment: 6, execution: 60, refund: 60}
"""


@pytest.fixture()
def rpc(served: dict[str, Any]) -> Iterator[RpcProxy]:
    proxy = RpcProxy(served["evm"]["rpc_url"])
    yield proxy
    proxy.close()


def _resume_until_done(info: dict[str, Any], orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return fork_cli(info, orders, verb="resume", hang_s=120.0)


def test_rpc_down_at_start_is_a_clean_failure_then_a_clean_run(
    served: dict[str, Any], rpc: RpcProxy, tmp_path: Path
) -> None:
    orders, (wallet,) = make_orders(served, tmp_path, 1, env={"BUYER_AGENT_EVM_RPC": rpc.url})
    rpc.stop()
    (down,) = fork_cli(served, orders, hang_s=120.0)
    assert down["final"]["code"] == 1 and "error:" in down["final"]["stderr"], down["final"]
    assert "Traceback" not in down["final"]["stderr"]
    assert payments_by_sender(served).get(wallet, 0) == 0
    assert final_states(down) in ([], ["created"], ["paired"], ["searched"], ["quoted"], ["ordered"]), down
    rpc.start()
    # The node is back: resuming finishes the same order (running the task again would be a new order).
    (again,) = _resume_until_done(served, orders) if final_states(down) else fork_cli(served, orders)
    assert final_states(again) == ["confirmed"], again["final"]["stderr"][-1500:]
    assert payments_by_sender(served).get(wallet, 0) == 1
    verify_journals(again)


def _when_state(db: Path, state: str, action: Any, timeout: float = 60.0) -> threading.Thread:
    """Run ``action`` as soon as the journal at ``db`` shows an order in ``state`` (polled every 5 ms)."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
                try:
                    rows = conn.execute("SELECT state FROM orders").fetchall()
                finally:
                    conn.close()
            except sqlite3.Error:
                rows = []
            if any(r[0] == state for r in rows):
                action()
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_rpc_down_while_paying_never_pays_twice(
    served: dict[str, Any], rpc: RpcProxy, tmp_path: Path
) -> None:
    orders, (wallet,) = make_orders(served, tmp_path, 1, env={"BUYER_AGENT_EVM_RPC": rpc.url})

    def outage() -> None:
        rpc.stop()
        time.sleep(3.0)
        rpc.start()

    watcher = _when_state(Path(orders[0]["state_dir"]) / "buyer_agent.db", "paying", outage)
    (first,) = fork_cli(served, orders, hang_s=120.0)
    watcher.join(timeout=30)
    assert "Traceback" not in first["final"]["stderr"]
    assert first["final"]["code"] in (0, 1), first["final"]
    if first["final"]["code"] != 0:
        assert "error:" in first["final"]["stderr"]
        (first,) = _resume_until_done(served, orders)
    assert final_states(first) == ["confirmed"], first["final"]["stderr"][-1500:]
    assert payments_by_sender(served).get(wallet, 0) == 1
    verify_journals(first)


def test_a_dropped_transaction_is_reconciled_and_paid_once(
    served: dict[str, Any], rpc: RpcProxy, tmp_path: Path
) -> None:
    orders, (wallet,) = make_orders(served, tmp_path, 1, env={"BUYER_AGENT_EVM_RPC": rpc.url})
    Path(orders[0]["task"]).write_text(SHORT_PAYMENT_TASK, encoding="utf-8")
    rpc.drop_sends = 1
    (first,) = fork_cli(served, orders, hang_s=120.0)
    assert len(rpc.dropped) == 1
    assert "Traceback" not in first["final"]["stderr"]
    if first["final"]["code"] != 0:
        # The payment deadline passed with the transaction nowhere: a clear error, then resume re-sends it.
        assert "error:" in first["final"]["stderr"]
        (first,) = _resume_until_done(served, orders)
    assert final_states(first) == ["confirmed"], first["final"]["stderr"][-1500:]
    assert payments_by_sender(served).get(wallet, 0) == 1
    verify_journals(first)


def _empty_usdc(served: dict[str, Any], address: str) -> None:
    """Set the wallet's test-USDC balance to 0 in the token's storage (no transaction, no Transfer log)."""
    from eth_abi.abi import encode
    from eth_utils.crypto import keccak
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(served["evm"]["rpc_url"]))
    slot = keccak(encode(["address", "uint256"], [address, 1]))  # TestToken: balanceOf is slot 1
    token = Web3.to_checksum_address(served["evm"]["token_address"])
    answer = w3.provider.make_request("anvil_setStorageAt", [token, "0x" + slot.hex(), "0x" + "00" * 32])  # type: ignore[arg-type]
    assert "error" not in answer, answer
    held = w3.eth.call({"to": token, "data": "0x70a08231" + address.lower()[2:].rjust(64, "0")})
    assert int.from_bytes(held, "big") == 0


def test_a_reverted_payment_fails_clearly_and_moves_no_money(served: dict[str, Any], tmp_path: Path) -> None:
    # The balances are read before signing, so a wallet without USDC never sends a transfer (see
    # tests/agent/test_agent_funds.py). A payment can still revert when the USDC leaves the wallet
    # after that check: the run stops right after journaling the signed transfer, the balance is
    # emptied, and resume broadcasts the journaled bytes, which are mined and revert.
    ((address, key),) = fund_wallets(served, 1, usdc=1_000_000)  # 1 USDC covers the 0.80 quote
    state_dir = tmp_path / "revert"
    state_dir.mkdir()
    order = {
        "state_dir": str(state_dir),
        "key": key,
        "task": str(write_task(state_dir / "t.yaml")),
        "env": {"BUYER_AGENT_CRASH_AFTER": "pay"},
    }
    (stopped,) = fork_cli(served, [order], hang_s=120.0)
    assert stopped["final"]["code"] == -9, stopped["final"]  # killed itself after journaling the transfer
    _empty_usdc(served, address)
    order["env"] = {}
    (report,) = _resume_until_done(served, [order])
    final = report["final"]
    assert final["code"] == 1 and "Traceback" not in final["stderr"]
    # The order's error names the transaction and why the token refused it, not only that it reverted.
    assert "reverted: ERC20: insufficient balance" in final["stderr"], final["stderr"]
    assert final_states(report) == ["failed"]
    from buyer_agent.journal import Journal

    journal = Journal.open_dir(state_dir)
    try:
        (rec,) = journal.orders()
        assert rec.context["error"]["code"] == "TRANSACTION_REVERTED"
        assert rec.context["error"]["message"].endswith("reverted: ERC20: insufficient balance")
        failed = journal.events(rec.order_id)[-1]
        assert failed.trigger == "fail" and failed.payload["reason"] == "ERC20: insufficient balance"
    finally:
        journal.close()
    assert payments_by_sender(served).get(address.lower(), 0) == 0
    (again,) = _resume_until_done(served, [order])  # nothing left to do, and nothing paid on resume
    assert again["final"]["code"] == 0
    assert payments_by_sender(served).get(address.lower(), 0) == 0
    verify_journals(report)


def test_a_nonce_reserved_by_a_killed_process_never_blocks_the_wallet(
    served: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the crash suite: a SIGKILL between reserving a nonce and journaling the signed
    # transaction leaves that nonce unused, and every later payment of the wallet waited behind it.
    import asyncio

    from buyer_agent._money import Money
    from buyer_agent.rails import EvmRail, _evm
    from buyer_agent.rails._base import PaymentRequest, TxStatus
    from buyer_agent.rails._nonces import MemoryNonceStore

    monkeypatch.setattr(_evm, "GAP_AFTER_S", 0.5)
    ((address, key),) = fund_wallets(served, 1)
    before = payments_by_sender(served).get(address.lower(), 0)

    async def go() -> tuple[TxStatus, int, int]:
        rail = EvmRail(
            served["evm"]["rpc_url"], key, chain=served["evm"]["chain"], nonce_store=MemoryNonceStore()
        )
        request = PaymentRequest(
            order_id="ord_gap",
            rail_type="wallet",
            chain=served["evm"]["chain"],
            token=served["evm"]["token_address"],
            payer=address,
            payee="0x000000000000000000000000000000000000dEaD",
            amount=Money(100, 6, "USDC"),
            escrow_address=None,
            fee_cap_wei=None,
        )
        try:
            lost = await rail.prepare(request)  # reserved, signed, never journaled nor sent: the crash
            (tx,) = await rail.prepare(request)
            await rail.broadcast(tx)
            return await rail.wait(tx, 30), int(lost[0].meta["nonce"]), int(tx.meta["nonce"])
        finally:
            await rail.aclose()

    status, lost_nonce, nonce = asyncio.run(go())
    assert (lost_nonce, nonce) == (0, 1)
    assert status is TxStatus.CONFIRMED
    assert payments_by_sender(served).get(address.lower(), 0) == before + 1  # the filler moved no token


GARBAGE = {
    "not JSON": ("*", b"<html>502</html>"),
    "truncated": ("*", b'{"jsonrpc":"2.0","id":$ID,"resu'),
    "receipt of wrong types": (
        "eth_getTransactionReceipt",
        b'{"jsonrpc":"2.0","id":$ID,"result":{"status":["x"],"blockNumber":{},"logs":"none"}}',
    ),
    "huge nonce": ("eth_getTransactionCount", b'{"jsonrpc":"2.0","id":$ID,"result":"0x' + b"f" * 80 + b'"}'),
    "missing result": ("eth_getBlockByNumber", b'{"jsonrpc":"2.0","id":$ID}'),
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_malformed_rpc_answers_end_cleanly_then_resume_pays_once(
    served: dict[str, Any], rpc: RpcProxy, tmp_path: Path, case: str
) -> None:
    orders, (wallet,) = make_orders(served, tmp_path, 1, env={"BUYER_AGENT_EVM_RPC": rpc.url})

    def garble() -> None:
        rpc.garbage = GARBAGE[case]

    watcher = _when_state(Path(orders[0]["state_dir"]) / "buyer_agent.db", "ordered", garble)
    (first,) = fork_cli(served, orders, hang_s=150.0)
    watcher.join(timeout=30)
    final = first["final"]
    assert "Traceback" not in final["stderr"] and not final["hung"], final
    assert final["code"] in (0, 1), final
    if final["code"] != 0:
        assert "error:" in final["stderr"]
    verify_journals(first)
    assert payments_by_sender(served).get(wallet, 0) <= 1
    rpc.garbage = None
    (done,) = _resume_until_done(served, orders)
    verify_journals(done)
    if final_states(done) == ["failed"]:
        # Refused before any money moved (the order never got past signing): failed, nothing paid.
        assert payments_by_sender(served).get(wallet, 0) == 0
        assert final["code"] == 1
    else:
        assert final_states(done) == ["confirmed"], done["final"]["stderr"][-1500:]
        assert payments_by_sender(served).get(wallet, 0) == 1
