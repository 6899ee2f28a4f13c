"""AnvilNode: a real anvil on a free loopback port, its test controls, state across restarts, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from buyer_agent._errors import RailError
from buyer_agent.sandbox.chains import AnvilNode, EvmChain, EvmWallet, anvil_available, find_anvil

pytestmark = pytest.mark.skipif(not anvil_available(), reason="anvil not installed (scripts/setup)")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilNode]:
    with AnvilNode(accounts=2) as started:
        yield started


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """True once ``pid`` no longer runs (exited, or a zombie waiting for its reaper)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        if "\nState:\tZ" in status:
            return True
        time.sleep(0.02)
    return False


def test_node_listens_on_loopback_with_chain_31337_and_funded_accounts(node: AnvilNode) -> None:
    assert node.rpc_url.startswith("http://127.0.0.1:") and node.port > 0
    assert node.rpc("eth_chainId") == hex(31337)
    assert (node.chain_id, node.caip2) == (31337, "eip155:31337")
    assert len(node.accounts) == 2
    for account in node.accounts:
        assert Account.from_key(account.private_key.reveal()).address == account.address
        assert int(node.rpc("eth_getBalance", [account.address, "latest"]), 16) > 0
        assert "0x" not in repr(account.private_key)
    assert repr(node).startswith("AnvilNode(rpc_url=")


def test_automine_off_leaves_a_transaction_pending_and_drop_removes_it(node: AnvilNode) -> None:
    chain = EvmChain.setup(node)
    buyer = chain.new_wallet(usdc=1_000)
    node.set_automine(False)
    try:
        signed = Account.sign_transaction(
            {
                "to": chain.token_address,
                "data": chain.token.encode_abi("transfer", args=[EvmWallet.create().address, 10]),
                "gas": 100_000,
                "maxFeePerGas": 10**10,
                "maxPriorityFeePerGas": 1,
                "nonce": 0,
                "chainId": 31337,
            },
            buyer.private_key.reveal(),
        )
        tx_hash = node.rpc("eth_sendRawTransaction", [signed.raw_transaction.to_0x_hex()])
        assert node.rpc("eth_getTransactionReceipt", [tx_hash]) is None
        node.drop_transaction(tx_hash)
        node.mine()
        assert node.rpc("eth_getTransactionReceipt", [tx_hash]) is None
        assert node.rpc("eth_getTransactionByHash", [tx_hash]) is None
        assert chain.usdc_balance(buyer.address) == 1_000
    finally:
        node.set_automine(True)


def test_rpc_errors_are_rail_errors(node: AnvilNode) -> None:
    with pytest.raises(RailError, match="anvil no_such_method"):
        node.rpc("no_such_method")


def test_state_dir_keeps_chain_state_and_contracts_across_restarts(tmp_path: Path) -> None:
    with AnvilNode(state_dir=tmp_path, accounts=1) as first:
        chain = EvmChain.setup(first)
        wallet = chain.new_wallet(usdc=777)
        before = chain.contracts
    assert (tmp_path / "anvil-state.json").is_file()
    with AnvilNode(state_dir=tmp_path, accounts=1) as second:
        again = EvmChain.setup(second)
        assert again.contracts == before
        assert again.usdc_balance(wallet.address) == 777


def test_stop_ends_the_process_and_is_idempotent() -> None:
    started = AnvilNode(accounts=1).start()
    pid = started.pid
    assert pid is not None and started.running
    started.stop()
    started.stop()
    assert _gone(pid) and not started.running
    with pytest.raises(RailError):
        started.rpc("eth_chainId")


def test_a_missing_binary_names_scripts_setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BUYER_AGENT_ANVIL", str(tmp_path / "no-anvil"))
    assert find_anvil() is None
    with pytest.raises(RailError, match="scripts/setup"):
        AnvilNode().start()


_CHILD = """
import os, sys, time
from buyer_agent.sandbox.chains import AnvilNode
node = AnvilNode(accounts=1).start()
print(node.pid, flush=True)
if sys.argv[1] == "exit":
    sys.exit(0)  # no stop(): the finalizer must end anvil
time.sleep(60)
"""


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_no_anvil_outlives_its_python_process(how: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, how], stdout=subprocess.PIPE, cwd=REPO, env=os.environ.copy()
    )
    assert child.stdout is not None
    pid = int(child.stdout.readline())
    if how == "sigkill":
        child.send_signal(signal.SIGKILL)
    child.wait(30)
    child.stdout.close()
    assert _gone(pid), f"anvil {pid} outlived its parent ({how})"


def test_a_node_started_from_a_short_lived_thread_outlives_that_thread() -> None:
    # PR_SET_PDEATHSIG fires when the forking *thread* ends; anvil must survive its starter thread.
    started: list[AnvilNode] = []
    thread = threading.Thread(target=lambda: started.append(AnvilNode(accounts=1).start()))
    thread.start()
    thread.join(30)
    (node,) = started
    try:
        time.sleep(0.2)
        assert node.running
        assert node.rpc("eth_chainId") == hex(31337)
    finally:
        node.stop()


def test_a_dead_node_gives_rail_errors_not_foreign_ones() -> None:
    node = AnvilNode(accounts=1).start()
    chain = EvmChain.setup(node)
    wallet = EvmWallet.create()
    node.stop()
    with pytest.raises(RailError):
        chain.usdc_balance(wallet.address)
    with pytest.raises(RailError):
        chain.mint(wallet.address, 1)
    with pytest.raises(RailError):
        chain.fund(wallet.address)
