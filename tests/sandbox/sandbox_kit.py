"""Test helpers for the sandbox market: a platform/agent HTTP client, pairing, orders, and on-chain sends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from buyer_agent.sandbox import Sandbox
from buyer_agent.sandbox.chains import EvmWallet, SolanaWallet, anvil_available


def started_sandbox(**kwargs: Any) -> Iterator[Sandbox]:
    """A started sandbox for a module fixture; stopped afterwards."""
    if not anvil_available():
        pytest.skip("anvil is not installed (run scripts/setup)")
    box = Sandbox(**kwargs)
    box.start()
    try:
        yield box
    finally:
        box.stop()


@dataclass(frozen=True)
class Pairing:
    """A created pairing: its id, its session token and the agent's key."""

    id: str
    token: str
    account: LocalAccount


class Market:
    """Plain httpx against the sandbox: platform calls carry the API key, agent calls the token."""

    def __init__(self, box: Sandbox) -> None:
        self.box = box
        self.info = box.info.to_json()
        self.machine_id = str(self.info["machine_id"])
        self.http = httpx.Client(
            base_url=self.info["url"] + "/api/v1", headers={"x-api-key": self.info["api_key"]}, timeout=30
        )

    def close(self) -> None:
        self.http.close()

    @property
    def buyer(self) -> LocalAccount:
        account: LocalAccount = Account.from_key(self.info["wallets"]["evm"]["private_key"])
        return account

    def challenge(self, account: LocalAccount) -> dict[str, Any]:
        r = self.http.post(
            f"/machines/{self.machine_id}/agent-pairings/challenges",
            json={"agentAddress": account.address, "agentProvider": "pytest", "agentRole": "buyer"},
        )
        assert r.status_code == 200, r.text
        item: dict[str, Any] = r.json()["item"]
        return item

    @staticmethod
    def sign(account: LocalAccount, message: str) -> str:
        return account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()

    def create_pairing(
        self, account: LocalAccount | None = None, policy: dict[str, Any] | None = None
    ) -> httpx.Response:
        account = account or self.buyer
        ch = self.challenge(account)
        body: dict[str, Any] = {
            "agentAddress": account.address,
            "agentProvider": "pytest",
            "agentRole": "buyer",
            "agentProof": {"challengeId": ch["challengeId"], "signature": self.sign(account, ch["message"])},
        }
        if policy is not None:
            body["delegationPolicy"] = policy
        return self.http.post(f"/machines/{self.machine_id}/agent-pairings", json=body)

    def pair(self, account: LocalAccount | None = None, policy: dict[str, Any] | None = None) -> Pairing:
        r = self.create_pairing(account, policy)
        assert r.status_code == 200, r.text
        item = r.json()["item"]
        return Pairing(item["id"], item["pairingToken"], account or self.buyer)

    def agent(self, pairing: Pairing, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        headers = {"x-agent-pairing-token": pairing.token, **kw.pop("headers", {})}
        return self.http.request(method, path, json=body, headers=headers, **kw)

    def quote(self, pairing: Pairing, service_id: str, **search: Any) -> dict[str, Any]:
        body = {
            "machineId": self.machine_id,
            "agentPairingId": pairing.id,
            "serviceType": "compute.marketplace",
        }
        r = self.agent(pairing, "POST", "/market/search", {**body, **search})
        assert r.status_code == 200, r.text
        quotes = [q for q in r.json()["item"]["quotes"] if q["serviceId"] == service_id]
        assert quotes, f"{service_id} not quoted"
        quote: dict[str, Any] = quotes[0]
        return quote

    def create_order(
        self, pairing: Pairing, service_id: str, data: str = "hello", **search: Any
    ) -> httpx.Response:
        quote = self.quote(pairing, service_id, **search)
        body = {
            "machineId": self.machine_id,
            "agentPairingId": pairing.id,
            "serviceId": service_id,
            "quoteId": quote["id"],
            "input": {"data": data},
        }
        return self.agent(pairing, "POST", "/market/orders", body)

    def order(self, pairing: Pairing, service_id: str, data: str = "hello", **search: Any) -> dict[str, Any]:
        r = self.create_order(pairing, service_id, data, **search)
        assert r.status_code == 200, r.text
        item: dict[str, Any] = r.json()["item"]
        return item

    def intent(self, pairing: Pairing, order_id: str, rail: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.agent(pairing, "POST", f"/market/orders/{order_id}/payment-intent", {"rail": rail or {}})
        assert r.status_code == 200, r.text
        item: dict[str, Any] = r.json()["item"]
        return item

    def evm_proof(self, payment: dict[str, Any], tx: str, **override: Any) -> dict[str, Any]:
        rail = payment["rail"]
        return {
            "verificationMode": "rpc",
            "chain": rail["chain"],
            "token": "USDC",
            "tokenAddress": rail["tokenAddress"],
            "payerAddress": rail["payerAddress"],
            "payeeAddress": rail["payeeAddress"],
            "amount": str(payment["amount"]),
            "tokenDecimals": 6,
            "rawAmount": rail["metadata"]["rawAmount"],
            "transactionHash": tx,
            **override,
        }

    def wait_for(self, check: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.05)


def evm_wallet(account: LocalAccount) -> EvmWallet:
    return EvmWallet.from_key(account.key.to_0x_hex())


def send_spl(rpc_url: str, sender_secret: str, mint: str, to_owner: str, raw: int, decimals: int = 6) -> str:
    """TransferChecked through the Solana RPC with the real AsyncClient; returns the confirmed signature."""
    from solana.rpc.async_api import AsyncClient
    from solana.rpc.commitment import Confirmed
    from solders.keypair import Keypair
    from solders.message import Message
    from solders.pubkey import Pubkey
    from solders.transaction import Transaction
    from spl.token.constants import TOKEN_PROGRAM_ID
    from spl.token.instructions import (
        create_idempotent_associated_token_account,
        get_associated_token_address,
        transfer_checked,
    )
    from spl.token.models import TransferCheckedParams

    payer = Keypair.from_base58_string(sender_secret)
    mint_key = Pubkey.from_string(mint)
    recipient = Pubkey.from_string(to_owner)

    async def go() -> str:
        async with AsyncClient(rpc_url) as client:
            blockhash = (await client.get_latest_blockhash()).value.blockhash
            ixs = [
                create_idempotent_associated_token_account(payer.pubkey(), recipient, mint_key),
                transfer_checked(
                    TransferCheckedParams(
                        program_id=TOKEN_PROGRAM_ID,
                        source=get_associated_token_address(payer.pubkey(), mint_key),
                        mint=mint_key,
                        dest=get_associated_token_address(recipient, mint_key),
                        owner=payer.pubkey(),
                        amount=raw,
                        decimals=decimals,
                    )
                ),
            ]
            tx = Transaction([payer], Message.new_with_blockhash(ixs, payer.pubkey(), blockhash), blockhash)
            sig = (await client.send_transaction(tx)).value
            await client.confirm_transaction(sig, commitment=Confirmed)
            return str(sig)

    return asyncio.run(go())


__all__ = ["Market", "Pairing", "SolanaWallet", "evm_wallet", "send_spl", "started_sandbox"]
