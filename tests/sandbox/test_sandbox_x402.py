"""The sandbox as an x402 settlement point, over real HTTP on a real chain: the challenge, every refusal,
and a settlement that happens exactly once (also when the market lost its record of it).

Authorizations are signed here with eth-account, independently of the x402 package (which the SDK
test drives), so a payload can be bent one field at a time.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sandbox_kit import Market, Pairing, evm_wallet, started_sandbox
from web3 import Web3

from buyer_agent.sandbox import Sandbox
from buyer_agent.sandbox.chains import Authorization

pytestmark = pytest.mark.chains

SERVICE, PRICE = "svc_hash_x402", 750_000
TRANSFER = "0x" + Web3.keccak(text="Transfer(address,address,uint256)").hex()
USED = "0x" + Web3.keccak(text="AuthorizationUsed(address,bytes32)").hex()


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    yield from started_sandbox()


@pytest.fixture(scope="module")
def market(box: Sandbox) -> Iterator[Market]:
    m = Market(box)
    yield m
    m.close()


def challenge(payment: dict[str, Any]) -> dict[str, Any]:
    encoded = payment["rail"]["metadata"]["paymentRequest"]["paymentRequired"]
    decoded: dict[str, Any] = json.loads(base64.b64decode(encoded))
    return decoded


def sign(
    account: LocalAccount, payment: dict[str, Any], *, signer: LocalAccount | None = None, **change: Any
) -> tuple[str, dict[str, Any]]:
    """The base64 PAYMENT-SIGNATURE value for ``payment``'s challenge; ``change`` bends fields."""
    accepted = dict(challenge(payment)["accepts"][0])
    now = int(time.time())
    auth = {
        "from": account.address,
        "to": accepted["payTo"],
        "value": accepted["amount"],
        "validAfter": "0",
        "validBefore": str(now + 120),
        "nonce": "0x" + secrets.token_bytes(32).hex(),
    }
    auth.update({k: v for k, v in change.items() if k in auth})
    accepted.update(change.get("accepted", {}))
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "TransferWithAuthorization": [
                {"name": n, "type": t}
                for n, t in (
                    ("from", "address"),
                    ("to", "address"),
                    ("value", "uint256"),
                    ("validAfter", "uint256"),
                    ("validBefore", "uint256"),
                    ("nonce", "bytes32"),
                )
            ],
        },
        "primaryType": "TransferWithAuthorization",
        "domain": {
            "name": "USD Coin",
            "version": "2",
            "chainId": int(accepted["network"].split(":")[1]),
            "verifyingContract": accepted["asset"],
        },
        "message": {**auth, "value": int(auth["value"]), "validAfter": int(auth["validAfter"]),
                    "validBefore": int(auth["validBefore"]), "nonce": bytes.fromhex(auth["nonce"][2:])},
    }  # fmt: skip
    signature = (signer or account).sign_typed_data(full_message=typed).signature.to_0x_hex()
    payload = {
        "x402Version": change.get("x402Version", 2),
        "accepted": accepted,
        "payload": {"signature": signature, "authorization": auth},
    }
    return base64.b64encode(json.dumps(payload).encode()).decode(), auth


def x402_order(market: Market, pairing: Pairing, data: str = "x402") -> tuple[dict[str, Any], dict[str, Any]]:
    order = market.order(pairing, SERVICE, data=data)
    return order, market.intent(pairing, order["id"])


def prove(market: Market, pairing: Pairing, order_id: str, header: str) -> Any:
    body = {"payment": {"paymentSignature": header}}
    return market.agent(pairing, "POST", f"/market/orders/{order_id}/payment-proof", body)


def execute(market: Market, pairing: Pairing, order_id: str, header: str | None) -> Any:
    body = {} if header is None else {"payment": {"paymentSignature": header}}
    return market.agent(pairing, "POST", f"/market/orders/{order_id}/execute", body)


def refused(r: Any, reason: str, field: str | None = None) -> None:
    assert r.status_code == 402, r.text
    error = r.json()["error"]
    assert error["code"] == "PAYMENT_AUTHORIZATION_INVALID" and error["details"]["reason"] == reason, r.text
    if field is not None:
        assert error["details"]["field"] == field


def logs_since(box: Sandbox, block: int) -> list[list[str]]:
    if box.evm.w3.eth.block_number < block:
        return []
    logs = box.evm.w3.eth.get_logs({"address": box.evm.x402_token_address, "fromBlock": block})
    return [["0x" + bytes(t).hex() for t in log["topics"]] for log in logs]


def test_the_intent_carries_the_challenge_where_the_official_client_reads_it(market: Market) -> None:
    pairing = market.pair()
    order, payment = x402_order(market, pairing)
    assert order["payment"]["defaultRail"] == "x402" and order["payment"]["supportedRails"] == ["x402"]
    rail = payment["rail"]
    assert rail["type"] == "x402" and rail["tokenAddress"] == market.info["evm"]["x402_token_address"]
    required = challenge(payment)
    assert required["x402Version"] == 2 and required["resource"]["url"].endswith(f"/{order['id']}/execute")
    (accepted,) = required["accepts"]
    assert accepted == {
        "scheme": "exact",
        "network": market.info["evm"]["chain"],
        "amount": str(PRICE),
        "asset": market.info["evm"]["x402_token_address"],
        "payTo": rail["payeeAddress"],
        "maxTimeoutSeconds": 300,
        "extra": {"name": "USD Coin", "version": "2"},
    }


def test_every_bad_authorization_is_refused_with_its_x402_reason_and_nothing_is_recorded(
    market: Market,
) -> None:
    pairing = market.pair()
    order, payment = x402_order(market, pairing)
    buyer, stranger = market.buyer, Account.create()
    now = int(time.time())
    a = "payload.authorization."
    before, after = (
        "invalid_exact_evm_payload_authorization_valid_before",
        "invalid_exact_evm_payload_authorization_valid_after",
    )
    cases = [
        (sign(buyer, payment, to=buyer.address), "invalid_exact_evm_payload_recipient_mismatch", a + "to"),
        (sign(buyer, payment, value=str(PRICE - 1)), "invalid_exact_evm_payload_authorization_value_mismatch",
         a + "value"),
        (sign(buyer, payment, signer=stranger), "invalid_exact_evm_payload_signature", "payload.signature"),
        (sign(stranger, payment), "invalid_exact_evm_payload_payer_mismatch", a + "from"),
        (sign(buyer, payment, validBefore=str(now - 1)), before, a + "validBefore"),
        (sign(buyer, payment, validBefore=str(now + 3)), before, a + "validBefore"),
        (sign(buyer, payment, validBefore=str(now + 3600)), before, a + "validBefore"),
        (sign(buyer, payment, validAfter=str(now + 60)), after, a + "validAfter"),
        (sign(buyer, payment, accepted={"asset": market.info["evm"]["token_address"]}),
         "invalid_payment_requirements", "accepted.asset"),
        (sign(buyer, payment, accepted={"network": "eip155:8453"}), "network_mismatch", "accepted.network"),
        (sign(buyer, payment, accepted={"scheme": "upto"}), "unsupported_scheme", "accepted.scheme"),
        (sign(buyer, payment, x402Version=1), "invalid_x402_version", "x402Version"),
    ]  # fmt: skip
    for (header, _auth), reason, field in cases:
        refused(prove(market, pairing, order["id"], header), reason, field)
    for bad in ("not base64!", base64.b64encode(b"[1, 2]").decode()):
        r = prove(market, pairing, order["id"], bad)
        assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "payment.paymentSignature"
    # A transfer proof is not how an x402 payment is proven.
    r = market.agent(
        pairing, "POST", f"/market/orders/{order['id']}/payment-proof", {"verificationMode": "recorded"}
    )
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "payment"
    assert (
        market.http.get(f"/market/orders/{order['id']}/payment").json()["item"]["status"] == "intent_created"
    )
    # Nothing is held, so nothing runs.
    assert execute(market, pairing, order["id"], cases[0][0][0]).status_code == 402


def test_the_authorization_is_settled_once_at_execute(box: Sandbox, market: Market) -> None:
    pairing = market.pair()
    order, payment = x402_order(market, pairing, data="once")
    header, auth = sign(market.buyer, payment)
    held = prove(market, pairing, order["id"], header)
    assert held.status_code == 200, held.text
    item = held.json()["item"]
    assert item["status"] == "held" and item["proof"]["verificationMode"] == "recorded"
    assert item["proof"]["metadata"]["nonce"] == auth["nonce"] and item["proof"]["transactionHash"] is None
    assert prove(market, pairing, order["id"], header).json()["item"]["id"] == item["id"]  # the same again
    other, _ = sign(market.buyer, payment)
    r = prove(market, pairing, order["id"], other)  # a second, live authorization for a held payment
    assert r.status_code == 409 and r.json()["error"]["code"] == "ORDER_CLOSED"

    block = box.evm.w3.eth.block_number + 1
    r = execute(market, pairing, order["id"], None)
    assert r.status_code == 402 and r.json()["error"]["code"] == "PAYMENT_REQUIRED"
    r = execute(market, pairing, order["id"], other)
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "payment.paymentSignature"
    assert logs_since(box, block) == []  # refusals settle nothing

    first = execute(market, pairing, order["id"], header)
    assert first.status_code == 200, first.text
    again = execute(market, pairing, order["id"], header)
    assert again.json()["execution"] == first.json()["execution"]
    topics = logs_since(box, block)
    assert [t[0] for t in topics].count(TRANSFER) == 1 and [t for t in topics if t[0] == USED] == [
        [USED, "0x" + "0" * 24 + market.buyer.address[2:].lower(), auth["nonce"]]
    ]
    settled = market.http.get(f"/market/orders/{order['id']}/payment").json()["item"]
    assert settled["proof"]["metadata"]["paymentSettlement"]["status"] == "settled"
    events = market.http.get("/audit-events", params={"resourceId": settled["id"]}).json()["items"]
    assert [e["type"] for e in events].count("market.payment.settled") == 1

    # The same authorization cannot prove another order: on chain its nonce is spent.
    order2, _ = x402_order(market, pairing, data="twice")
    refused(prove(market, pairing, order2["id"], header), "invalid_exact_evm_nonce_already_used")


def test_one_authorization_cannot_prove_two_orders(market: Market) -> None:
    pairing = market.pair()
    order, payment = x402_order(market, pairing, data="a")
    order2, _ = x402_order(market, pairing, data="b")
    header, _auth = sign(market.buyer, payment)
    assert prove(market, pairing, order["id"], header).status_code == 200
    r = prove(market, pairing, order2["id"], header)
    assert r.status_code == 409 and r.json()["error"]["code"] == "PAYMENT_PROOF_REUSED"


def test_a_settlement_the_market_lost_track_of_is_found_on_chain_not_repeated(
    box: Sandbox, market: Market
) -> None:
    # As after a crash between the settlement and its record: the authorization is already used.
    pairing = market.pair()
    order, payment = x402_order(market, pairing, data="crash")
    header, auth = sign(market.buyer, payment)
    assert prove(market, pairing, order["id"], header).status_code == 200
    payload = json.loads(base64.b64decode(header))["payload"]
    signature = bytes.fromhex(payload["signature"][2:])
    block = box.evm.w3.eth.block_number + 1
    mined = box.evm.transfer_with_authorization(
        evm_wallet(market.buyer),
        Authorization(
            auth["from"],
            auth["to"],
            PRICE,
            0,
            int(auth["validBefore"]),
            bytes.fromhex(auth["nonce"][2:]),
            signature,
        ),
    )
    r = execute(market, pairing, order["id"], header)
    assert r.status_code == 200, r.text
    assert [t[0] for t in logs_since(box, block)].count(TRANSFER) == 1  # the one settlement, adopted
    proof = market.http.get(f"/market/orders/{order['id']}/payment").json()["item"]["proof"]
    assert proof["transactionHash"] == mined


def test_an_expired_unsettled_authorization_gives_way_to_a_new_one(box: Sandbox, market: Market) -> None:
    pairing = market.pair()
    order, payment = x402_order(market, pairing, data="renew")
    old, _ = sign(market.buyer, payment)
    assert prove(market, pairing, order["id"], old).status_code == 200
    ctx = box.market.ctx
    real = ctx.clock
    later = real() + timedelta(seconds=400)  # the market's clock: the old authorization has expired
    ctx.clock = lambda: later
    try:
        new, auth = sign(market.buyer, payment, validBefore=str(int(later.timestamp()) + 120))
        r = prove(market, pairing, order["id"], new)
        assert r.status_code == 200, r.text
        assert r.json()["item"]["proof"]["metadata"]["nonce"] == auth["nonce"]
        r = execute(market, pairing, order["id"], old)
        assert r.status_code == 400  # the replaced authorization is not the one that settles
        assert execute(market, pairing, order["id"], new).status_code == 200
    finally:
        ctx.clock = real
    assert box.evm.authorization_used(market.buyer.address, bytes.fromhex(auth["nonce"][2:]))
