"""The workers of one agent share one pairing session through the store, its token sealed there.

The market keeps one session per pairing (a rotation ends the token before it), so workers that
rotated on their own would lock one another out. Against the served sandbox: the second worker
adopts the first's session instead of pairing; a worker whose token was rejected adopts the one
another worker rotated to instead of rotating again; what the store holds opens only with the
agent's key and holds no token in the clear.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fleet_support import fund_wallets

from buyer_agent import Money, Secret
from buyer_agent.fleet import Sealer, StorePairingShare
from buyer_agent.journal import Journal, SqliteStore
from buyer_agent.market import AsyncMarketClient
from buyer_agent.signers import LocalEvmSigner
from buyer_agent.workflow import PairingSession

pytestmark = pytest.mark.chains


def _rotations(info: dict[str, Any]) -> int:
    page = httpx.get(
        f"{info['url']}/api/v1/audit-events",
        params={"type": "agent-pairing.session-rotated", "limit": 500},
        headers={"x-api-key": info["api_key"]},
    ).json()
    return len(page["items"])


def test_a_sealed_value_opens_only_with_its_key_and_binding() -> None:
    key_a, key_b = LocalEvmSigner(Secret("0x" + "11" * 32)), LocalEvmSigner(Secret("0x" + "22" * 32))

    async def go() -> None:
        a = await Sealer.for_signer(key_a, "ctx")
        again = await Sealer.for_signer(key_a, "ctx")  # another worker holding the same key
        b = await Sealer.for_signer(key_b, "ctx")
        sealed = a.seal(Secret("eyJ.secret.token"), "bound")
        assert "eyJ" not in sealed and "secret" not in sealed
        opened = again.open(sealed, "bound")
        assert opened is not None and opened.reveal() == "eyJ.secret.token"
        assert b.open(sealed, "bound") is None  # another agent's key
        assert a.open(sealed, "other") is None  # moved to another record
        assert a.open(sealed[:-4] + "AAAA", "bound") is None  # damaged
        assert a.open("not base64!", "bound") is None
        assert "secure" in repr(a)

    asyncio.run(go())


def test_workers_share_one_session_and_a_rejection_adopts_the_rotated_one(
    served: dict[str, Any], tmp_path: Path
) -> None:
    [(address, key)] = fund_wallets(served, 1, usdc=0)
    journal = Journal(tmp_path / "fleet.db")
    store = SqliteStore(journal)

    async def go() -> None:
        async with (
            AsyncMarketClient(served["url"], api_key=served["api_key"]) as one,
            AsyncMarketClient(served["url"], api_key=served["api_key"]) as two,
        ):

            def worker(market: AsyncMarketClient) -> PairingSession:
                signer = LocalEvmSigner(Secret(key))
                share = StorePairingShare(
                    store, signer, market_url=served["url"], machine_id=served["machine_id"]
                )
                return PairingSession.with_platform_key(
                    market,
                    machine_id=served["machine_id"],
                    agent_key=signer,
                    delegation_policy={
                        "daily_spend_limit": "7",
                        "per_transaction_limit": "5",
                        "currency": "USDC",
                    },
                    market_url=served["url"],
                    share=share,
                )

            a, b = worker(one), worker(two)
            rotated = _rotations(served)
            token_a = await a.token()
            token_b = await b.token()
            # The second worker adopted the first's session: one pairing, one token, its policy known.
            assert token_b.reveal() == token_a.reveal() and a.pairing_id == b.pairing_id
            policy = b.policy()
            assert policy is not None and policy.daily_spend_limit is not None
            assert policy == a.policy() and policy.daily_spend_limit == Money.parse("7 USDC")
            assert _rotations(served) == rotated
            # The market rejects a's token (as after a policy change): a rotates, once, for everyone.
            await a.refresh("AGENT_AUTH_INVALID", token_a)
            new = await a.token()
            assert new.reveal() != token_a.reveal() and _rotations(served) == rotated + 1
            # b's old token is dead now; b adopts the rotated session instead of rotating again.
            await b.refresh("AGENT_AUTH_INVALID", token_b)
            assert (await b.token()).reveal() == new.reveal() and _rotations(served) == rotated + 1
            # And it works at the market.
            await one.search_market({"service_type": "compute.marketplace"}, await b.token())

    try:
        asyncio.run(go())
        stored = dict(asyncio.run(store.meta_items()))
        record = next(v for k, v in stored.items() if k.startswith("fleet_pairing:"))
        assert address.lower() in next(k for k in stored if k.startswith("fleet_pairing:"))
        assert "eyJ" not in json.dumps(stored)  # no token in the clear: sealed
        assert set(json.loads(record)) == {"pairing_id", "expires_at", "policy", "sealed_session"}
        assert not any(k.startswith("fleet_pairing_lock:") for k in stored)  # the renewal lock went back
    finally:
        journal.close()
