"""The x402 rail's steps: the intent's challenge, the proof (recorded), and the settlement at execute.

The sandbox is its own x402 facilitator: at execute it submits the buyer's EIP-3009 authorization
with ``transferWithAuthorization`` from a facilitator account of its own (which pays the gas), once.
A repeated execute finds the settlement recorded; after a crash between the settlement and its
record, the token's ``AuthorizationUsed`` event for the nonce is found on chain and adopted, so an
authorization is never settled twice and never lost.
"""

from __future__ import annotations

import logging
from typing import Any

from web3 import Web3

from buyer_agent._errors import RailError, TransactionRevertedError
from buyer_agent.sandbox.chains import Authorization
from buyer_agent.sandbox.market._context import Answer, MarketContext
from buyer_agent.sandbox.market._errors import ApiError, invalid
from buyer_agent.sandbox.market._orders import public, touch
from buyer_agent.sandbox.market._wire import iso, opt_object, opt_str
from buyer_agent.sandbox.market._x402 import (
    HEADER_NAME,
    Challenge,
    check_authorization,
    decode_payload,
    payment_reference,
    refused,
)

__all__ = ["AUTHORIZATION_USED_TOPIC", "challenge_of", "intent_metadata", "record_proof", "settle"]

_log = logging.getLogger(__name__)
AUTHORIZATION_USED_TOPIC = "0x" + Web3.keccak(text="AuthorizationUsed(address,bytes32)").hex()
_TRANSFER_TOPIC = "0x" + Web3.keccak(text="Transfer(address,address,uint256)").hex()


def _resource(ctx: MarketContext, order_id: str) -> str:
    base = str(ctx.public_info.get("url") or "http://127.0.0.1")
    return f"{base}/api/v1/market/orders/{order_id}/execute"


def intent_metadata(
    ctx: MarketContext, order: dict[str, Any], rail: dict[str, Any], raw: int
) -> dict[str, Any]:
    """The challenge part of an x402 intent's ``rail.metadata`` (and its resource, kept privately)."""
    challenge = Challenge(
        network=rail["chain"],
        asset=rail["tokenAddress"],
        pay_to=rail["payeeAddress"],
        amount=raw,
        resource=_resource(ctx, order["id"]),
    )
    return challenge.metadata()


def challenge_of(ctx: MarketContext, payment: dict[str, Any]) -> Challenge:
    """The challenge a payment's intent carries."""
    rail = payment["rail"]
    return Challenge(
        network=rail["chain"],
        asset=rail["tokenAddress"],
        pay_to=rail["payeeAddress"],
        amount=int(payment["_rawAmount"]),
        resource=_resource(ctx, payment["orderId"]),
    )


def _header(body: dict[str, Any], where: str) -> str | None:
    payment = opt_object(body, "payment")
    if payment is None:
        return None
    header = payment.get("paymentSignature")
    if not isinstance(header, str) or not header.strip():
        raise invalid(where, "required non-empty string (the base64 PAYMENT-SIGNATURE value)")
    return header


def _key(chain: str, auth: Authorization) -> str:
    return f"x402:{chain}:{auth.from_address.lower()}:0x{auth.nonce.hex()}"


def record_proof(
    ctx: MarketContext, order: dict[str, Any], payment: dict[str, Any], body: dict[str, Any]
) -> Answer:
    """``payment-proof {payment: {paymentSignature}, paymentReference?, metadata?}`` for an x402 intent.

    The authorization is checked as at execute (signature, requirements, window; nonce unused and
    balance on chain) so a bad one is refused now, not after the order looks paid. Recorded:
    payment → ``held``, order → ``ready``. The same authorization again returns the payment; a
    different one replaces the recorded one only once that one has expired unsettled.

    Raises:
        ApiError: ``VALIDATION_ERROR``, ``PAYMENT_AUTHORIZATION_INVALID``, ``PAYMENT_PROOF_REUSED``,
            ``ORDER_CLOSED``.
    """
    header = _header(body, "payment.paymentSignature")
    if header is None:
        raise invalid("payment", "an x402 payment is proven with {payment: {paymentSignature}}")
    reference = opt_str(body, "paymentReference")
    client_meta = opt_object(body, "metadata") or {}
    rail = payment["rail"]
    network = client_meta.get("network")
    if network is not None and network != rail["chain"]:
        raise invalid("metadata.network", f"the payment is on {rail['chain']}")
    if (payment.get("_x402") or {}).get("header") == header:
        return 200, {"item": public(payment)}  # the same proof again, even once it can no longer settle
    challenge = challenge_of(ctx, payment)
    auth = check_authorization(
        decode_payload(header, "payment.paymentSignature"), challenge, rail["payerAddress"], ctx.clock()
    )
    key = _key(rail["chain"], auth)
    if payment["status"] != "intent_created":
        if payment["_proofKey"] == key:
            return 200, {"item": public(payment)}
        if not _replaceable(ctx, order, payment):
            raise ApiError(409, "ORDER_CLOSED", f"payment is already {payment['status']}")
    _check_chain(ctx, auth)
    owner = ctx.store.get("used_proofs", key)
    if owner is not None and owner["paymentId"] != payment["id"]:
        raise ApiError(
            409,
            "PAYMENT_PROOF_REUSED",
            "this authorization already proves another payment",
            {"paymentId": owner["paymentId"]},
        )
    ctx.store.put("used_proofs", key, {"paymentId": payment["id"]})
    proof = {
        "chain": rail["chain"],
        "token": rail["token"],
        "transactionHash": None,
        "payerAddress": auth.from_address,
        "verifiedAt": None,
        "verificationMode": "recorded",
        "metadata": {
            **client_meta,
            "network": rail["chain"],
            "headerName": HEADER_NAME,
            "paymentReference": reference or payment_reference(rail["chain"], header),
            "nonce": "0x" + auth.nonce.hex(),
            "validBefore": str(auth.valid_before),
        },
    }
    payment["_x402"] = {"header": header}
    touch(ctx, payment, status="held", proof=proof, _proofKey=key)
    if order["status"] in ("created", "payment_pending"):
        touch(ctx, order, status="ready")
    ctx.store.audit_event(
        "market.payment.proof-recorded",
        "market-payment",
        payment["id"],
        {
            "orderId": order["id"],
            "verificationMode": "recorded",
            "rail": "x402",
            "nonce": proof["metadata"]["nonce"],
        },
    )
    return 200, {"item": public(payment)}


def _replaceable(ctx: MarketContext, order: dict[str, Any], payment: dict[str, Any]) -> bool:
    """A held, unsettled authorization that has expired may give way to a new one."""
    if (
        payment["status"] != "held"
        or order["status"] != "ready"
        or payment.get("_x402", {}).get("settlement")
    ):
        return False
    valid_before = int(payment["proof"]["metadata"]["validBefore"])
    return valid_before <= int(ctx.clock().timestamp())


def _chain(ctx: MarketContext) -> Any:
    if ctx.evm is None:
        raise ApiError(409, "PAYMENT_RPC_REQUIRED", "no EVM RPC configured in this sandbox")
    return ctx.evm.chain


def _read(what: str, thunk: Any) -> Any:
    try:
        return thunk()
    except Exception as exc:
        raise ApiError(502, "PAYMENT_RPC_ERROR", f"{what} failed at the chain RPC") from exc


def _check_chain(ctx: MarketContext, auth: Authorization) -> None:
    """The nonce is unused and the payer holds the amount (else the settlement could not happen)."""
    chain = _chain(ctx)
    if _read("authorizationState", lambda: chain.authorization_used(auth.from_address, auth.nonce)):
        raise refused(
            "invalid_exact_evm_nonce_already_used",
            "this authorization's nonce is already used on chain",
            "payload.authorization.nonce",
        )
    if _read("balanceOf", lambda: chain.x402_balance(auth.from_address)) < auth.value:
        raise refused(
            "invalid_exact_evm_insufficient_balance",
            "the payer's balance does not cover the authorization",
            "payload.authorization.value",
        )


def settle(ctx: MarketContext, order: dict[str, Any], payment: dict[str, Any], body: dict[str, Any]) -> None:
    """Settle the recorded authorization on chain before an x402 order executes (exactly once).

    Raises:
        ApiError: ``PAYMENT_REQUIRED`` (402) without the signature or before a proof;
            ``VALIDATION_ERROR`` for another signature than the recorded one;
            ``PAYMENT_AUTHORIZATION_INVALID`` (402) for one that can no longer settle;
            ``PAYMENT_TX_FAILED`` (402) when the settlement reverts; ``PAYMENT_RPC_ERROR`` (502).
    """
    header = _header(body, "payment.paymentSignature")
    if header is None:
        raise ApiError(402, "PAYMENT_REQUIRED", "an x402 order executes with {payment: {paymentSignature}}")
    state = payment.get("_x402")
    if payment["status"] != "held" or not state:
        raise ApiError(402, "PAYMENT_REQUIRED", "record the x402 payment with payment-proof before execute")
    if header != state["header"]:
        raise invalid("payment.paymentSignature", "not the authorization recorded by payment-proof")
    if state.get("settlement"):
        return
    rail = payment["rail"]
    challenge = challenge_of(ctx, payment)
    payload = decode_payload(header, "payment.paymentSignature")
    chain = _chain(ctx)
    nonce = bytes.fromhex(str(payment["proof"]["metadata"]["nonce"])[2:])
    payer = str(payment["proof"]["payerAddress"])
    if _read("authorizationState", lambda: chain.authorization_used(payer, nonce)):
        # Settled before a crash lost the record, or spent elsewhere: only the former is adopted.
        tx = _find_settlement(chain, payer, nonce, challenge)
        if tx is None:
            raise refused(
                "invalid_exact_evm_nonce_already_used",
                "this authorization's nonce was used on chain by another transfer",
                "payload.authorization.nonce",
            )
    else:
        auth = check_authorization(payload, challenge, rail["payerAddress"], ctx.clock())
        _check_chain(ctx, auth)
        tx = _submit(ctx, chain, auth)
    moment = iso(ctx.clock())
    state["settlement"] = tx
    proof = payment["proof"]
    proof["transactionHash"] = tx
    proof["verifiedAt"] = moment
    proof["metadata"]["paymentSettlement"] = {
        "status": "settled",
        "response": {"success": True, "transaction": tx, "network": rail["chain"], "payer": payer},
        "payerAddress": payer,
    }
    touch(ctx, payment)
    ctx.store.audit_event(
        "market.payment.settled",
        "market-payment",
        payment["id"],
        {"orderId": order["id"], "transaction": tx, "rail": "x402"},
        actor="system:machine-markets",
    )


def _submit(ctx: MarketContext, chain: Any, auth: Authorization) -> str:
    if ctx.x402_facilitator is None:
        raise ApiError(409, "PAYMENT_RPC_REQUIRED", "no x402 facilitator configured in this sandbox")
    try:
        tx = str(chain.transfer_with_authorization(ctx.x402_facilitator, auth))
    except TransactionRevertedError as exc:
        raise ApiError(
            402, "PAYMENT_TX_FAILED", "the settlement reverted on chain", {"reason": "transaction_failed"}
        ) from exc
    except RailError as exc:
        if "would revert" in str(exc):
            raise refused(
                "invalid_exact_evm_transaction_simulation_failed", f"the token refuses it: {exc}"
            ) from exc
        raise ApiError(502, "PAYMENT_RPC_ERROR", "submitting the settlement failed at the chain RPC") from exc
    _log.info("x402 settlement %s: %s -> %s, %d", tx, auth.from_address, auth.to, auth.value)
    return tx


def _find_settlement(chain: Any, payer: str, nonce: bytes, challenge: Challenge) -> str | None:
    """The transaction that used (payer, nonce) and paid the challenge exactly, if there is one."""
    topics = [AUTHORIZATION_USED_TOPIC, "0x" + bytes(12).hex() + payer[2:].lower(), "0x" + nonce.hex()]
    token = Web3.to_checksum_address(challenge.asset)
    logs = _read(
        "eth_getLogs", lambda: chain.w3.eth.get_logs({"address": token, "topics": topics, "fromBlock": 0})
    )
    for log in logs:
        tx = log["transactionHash"].to_0x_hex()
        receipt = _read("eth_getTransactionReceipt", lambda tx=tx: chain.w3.eth.get_transaction_receipt(tx))
        for entry in receipt["logs"]:
            t = ["0x" + bytes(x).hex() for x in entry["topics"]]
            if (
                str(entry["address"]).lower() == token.lower()
                and len(t) == 3
                and t[0] == _TRANSFER_TOPIC
                and t[1][-40:] == payer[2:].lower()
                and t[2][-40:] == challenge.pay_to[2:].lower()
                and int.from_bytes(bytes(entry["data"]), "big") == challenge.amount
            ):
                return str(tx)
    return None
