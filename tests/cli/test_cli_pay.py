"""The pre-paid flow: ``python -m buyer_agent pay ORDER_ID --tx HASH`` adopts a payment the operator made.

Against an external sandbox: an order is placed (to ``ordered``) through ``BuyerAgent``, the operator
pays it from the agent's wallet with a transaction of their own, and ``pay`` adopts it: the chain is
read, nothing is signed for the payment (the wallet's nonce moves once, for the operator's
transaction), the order goes on from the proof (or escrow lock) to ``confirmed``. A transaction that
pays something else is refused naming the field, journaled, and the order stays ``ordered``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from cli_support import cli, fund_wallets, market_env, transfers_from

from buyer_agent import BuyerAgent, Money
from buyer_agent.journal import Journal
from buyer_agent.workflow import OrderSpec, fold

pytestmark = pytest.mark.chains

ELSEWHERE = "0x000000000000000000000000000000000000bAd5"


def placed(info: dict[str, Any], key: str, state_dir: Path, rail: str = "wallet") -> tuple[str, Any]:
    """An order placed through BuyerAgent and left in ``ordered``; its id and facts."""
    spec = OrderSpec(
        service_type="compute.marketplace",
        operation="sha256",
        input={"data": "pre-paid"},
        budget=Money.parse("2.50 USDC"),
        rail=rail,
        chain="evm",
    )

    async def go() -> tuple[str, Any]:
        agent = BuyerAgent(
            info["url"],
            machine_id=info["machine_id"],
            api_key=info["api_key"],
            evm_key=key,
            evm_rpc=info["evm"]["rpc_url"],
            state_dir=state_dir,
        )
        async with agent:
            order_id = await agent.submit(spec)
            for step in (agent.pair, agent.search, agent.choose, agent.place_order):
                await step(order_id)
            assert agent.order(order_id).state.value == "ordered"
            return order_id, fold(agent.journal.events(order_id))

    return asyncio.run(go())


def send(info: dict[str, Any], key: str, calls: list[tuple[str, bytes]]) -> list[str]:
    """The operator's own transactions from the agent's wallet (``(to, data)`` each), mined; their hashes."""
    from eth_account import Account
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(info["evm"]["rpc_url"]))
    account = Account.from_key(key)
    nonce = w3.eth.get_transaction_count(account.address, "pending")
    hashes = []
    for to, data in calls:
        tx = {
            "to": Web3.to_checksum_address(to),
            "data": data,
            "value": 0,
            "gas": 200_000,
            "nonce": nonce,
            "chainId": w3.eth.chain_id,
            "maxFeePerGas": w3.eth.gas_price * 2 + 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
        sent = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
        assert w3.eth.wait_for_transaction_receipt(sent, timeout=60)["status"] == 1
        hashes.append(sent.to_0x_hex())
        nonce += 1
    return hashes


def transfer(to: str, amount: int) -> bytes:
    from eth_abi.abi import encode

    return bytes.fromhex("a9059cbb") + encode(["address", "uint256"], [to, amount])


def nonce_of(info: dict[str, Any], address: str) -> int:
    from web3 import Web3

    return int(Web3(Web3.HTTPProvider(info["evm"]["rpc_url"])).eth.get_transaction_count(address))


def pay(info: dict[str, Any], key: str, state_dir: Path, order_id: str, tx: str) -> Any:
    return cli(
        "pay",
        order_id,
        "--tx",
        tx,
        "--json",
        "--state-dir",
        str(state_dir),
        env=market_env(info, evm_key=key),
    )


def test_pay_adopts_the_operators_transfer_and_the_order_goes_on_to_confirmed(
    external: dict[str, Any], tmp_path: Path
) -> None:
    (address, key), *_ = fund_wallets(external, 1)
    order_id, facts = placed(external, key, tmp_path)
    price, payee = facts.choice.price.amount, facts.choice.payee
    token = external["evm"]["token_address"]

    # Refused, naming the field, and the order stays ordered: another payee, another amount, no such tx.
    (wrong_payee,) = send(external, key, [(token, transfer(ELSEWHERE, price))])
    (wrong_amount,) = send(external, key, [(token, transfer(payee, price - 1))])
    for tx, field in ((wrong_payee, "payee"), (wrong_amount, "amount"), ("0x" + "12" * 32, "transaction")):
        refused = pay(external, key, tmp_path, order_id, tx)
        assert refused.returncode == 1, refused.stderr
        assert f"{field} mismatch" in refused.stderr and "Traceback" not in refused.stderr
    journal = Journal(tmp_path / "buyer_agent.db")
    try:
        assert journal.order(order_id).state == "ordered"
        notes = [e.payload["field"] for e in journal.events(order_id) if e.trigger == "note:adoption_refused"]
        assert notes == ["payee", "amount", "transaction"]
    finally:
        journal.close()

    (paid,) = send(external, key, [(token, transfer(payee, price))])
    nonce = nonce_of(external, address)
    transfers = transfers_from(external, address)
    done = pay(external, key, tmp_path, order_id, paid)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["state"] == "confirmed" and out["payment"]["tx"] == paid
    assert out["payment"]["verification"] == "rpc" and out["payment"]["status"] == "released"
    # Nothing was signed for the payment: no transaction of the agent's, no second transfer.
    assert nonce_of(external, address) == nonce and transfers_from(external, address) == transfers
    events = Journal(tmp_path / "buyer_agent.db").events(order_id)
    pay_event = next(e for e in events if e.trigger == "pay")
    assert pay_event.payload["adopted"] == paid and pay_event.payload["txs"][0]["tx_id"] == paid
    assert not any("broadcast" in e.trigger for e in events)

    # One transfer pays one order: the same hash for a second order is refused.
    other_id, _ = placed(external, key, tmp_path)
    again = pay(external, key, tmp_path, other_id, paid)
    assert again.returncode == 1 and "transaction mismatch" in again.stderr and order_id in again.stderr


def test_pay_adopts_an_escrow_deposit_made_for_the_order(external: dict[str, Any], tmp_path: Path) -> None:
    from eth_abi.abi import encode
    from web3 import Web3

    (_, key), *_ = fund_wallets(external, 1)
    order_id, facts = placed(external, key, tmp_path, rail="onchain-escrow")
    price, payee = facts.choice.price.amount, facts.choice.payee
    token, escrow = external["evm"]["token_address"], external["evm"]["escrow_address"]
    order_key = Web3.keccak(text=str(facts.market_order_id))
    approve = bytes.fromhex("095ea7b3") + encode(["address", "uint256"], [escrow, price])
    deposit = Web3.keccak(text="deposit(bytes32,address,address,uint256)")[:4] + encode(
        ["bytes32", "address", "address", "uint256"], [order_key, payee, token, price]
    )
    _, deposited = send(external, key, [(token, approve), (escrow, deposit)])
    done = pay(external, key, tmp_path, order_id, deposited)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["state"] == "confirmed" and out["payment"]["verification"] == "escrow-lock"
    assert out["payment"]["tx"] == deposited


def test_pay_refuses_what_it_cannot_adopt(external: dict[str, Any], tmp_path: Path) -> None:
    (_, key), *_ = fund_wallets(external, 1)
    bad = cli("pay", "ord_x", "--tx", "0x12", "--state-dir", str(tmp_path))
    assert bad.returncode == 2 and "--tx must be" in bad.stderr
    order_id, _ = placed(external, key, tmp_path)
    env = market_env(external, evm_key=key)
    done = cli(
        "run", "examples/task.yaml", "--market", external["url"], "--state-dir", str(tmp_path), env=env
    )
    assert done.returncode == 0, done.stderr
    confirmed = Journal(tmp_path / "buyer_agent.db").orders(["confirmed"])[0].order_id
    late = pay(external, key, tmp_path, confirmed, "0x" + "ab" * 32)
    assert late.returncode == 1 and "it is confirmed" in late.stderr
    assert pay(external, key, tmp_path, order_id, "0x" + "ab" * 32).returncode == 1


def test_the_adopt_payment_tool_records_the_operators_payment(
    external: dict[str, Any], tmp_path: Path
) -> None:
    from dataclasses import replace

    from buyer_agent import load_task

    (address, key), *_ = fund_wallets(external, 1)
    task = load_task(Path(__file__).resolve().parents[2] / "examples" / "task.yaml", env={})

    async def go() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        agent = BuyerAgent(
            external["url"],
            machine_id=external["machine_id"],
            api_key=external["api_key"],
            evm_key=key,
            evm_rpc=external["evm"]["rpc_url"],
            state_dir=tmp_path,
            spec=replace(task.spec),
        )
        async with agent:
            found = await agent.call_tool("search_market", {})
            order_id = found["order_id"]
            await agent.call_tool("choose_quote", {"order_id": order_id})
            out.append(await agent.call_tool("place_order", {"order_id": order_id}))
            facts = fold(agent.journal.events(order_id))
            price, payee = facts.choice.price.amount, facts.choice.payee  # type: ignore[union-attr]
            (paid,) = send(external, key, [(external["evm"]["token_address"], transfer(payee, price))])
            out.append(await agent.call_tool("adopt_payment", {"order_id": order_id, "tx_hash": "0x12"}))
            steer = {"order_id": order_id, "tx_hash": paid, "amount": "0.01"}
            out.append(await agent.call_tool("adopt_payment", steer))
            out.append(
                await agent.call_tool("adopt_payment", {"order_id": order_id, "tx_hash": "0x" + "12" * 32})
            )
            out.append(await agent.call_tool("adopt_payment", {"order_id": order_id, "tx_hash": paid}))
            out.append(await agent.call_tool("execute_order", {"order_id": order_id}))
            out.append(await agent.call_tool("confirm_order", {"order_id": order_id}))
            out.append({"paid": paid})
        return out

    placed_view, malformed, steered, unknown, adopted, _, confirmed, sent = asyncio.run(go())
    # A person's action: never offered among the next tools.
    assert "adopt_payment" not in placed_view["next"] and placed_view["state"] == "ordered"
    assert malformed["error"]["code"] == "INVALID_ARGUMENTS"
    assert steered["error"]["code"] == "ARGUMENT_REFUSED"
    assert unknown["error"]["code"] == "PAYMENT_ERROR" and "transaction" in unknown["error"]["message"]
    assert adopted["state"] == "paid" and adopted["payment"]["tx"] == sent["paid"], adopted
    assert confirmed["state"] == "confirmed" and transfers_from(external, address) == 1
