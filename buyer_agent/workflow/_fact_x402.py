"""The x402 facts of an order, folded from its events: the signed authorization, its settlement.

``pay`` journals the authorization (before it leaves the process); ``note:authorization_replaced``
a new one, signed only once the old one provably could not settle (expired on chain, nonce unused),
after which the proof and the execution are asked for again under new keys; ``result:x402_proof``
the proof of a replacement; ``result:x402_settlement`` what the chain showed before confirming.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from buyer_agent.rails._x402_wire import Authorization

if TYPE_CHECKING:
    from buyer_agent.workflow._fold import FactsFolder

__all__ = ["X402_STEPS", "authorization_of"]


def authorization_of(value: Any) -> Authorization | None:
    """A journaled authorization, or None when it is absent or not whole (a hand-made journal)."""
    if not isinstance(value, Mapping):
        return None
    try:
        return Authorization.from_json(value)
    except (KeyError, TypeError, ValueError):
        return None


def _replaced(f: FactsFolder, p: Mapping[str, Any], at: str) -> None:
    f.authorization = authorization_of(p.get("authorization"))
    # The new authorization is proven and executed under new keys (new bodies).
    f.drop_key("submit_payment_proof")
    if f.state == "paid":
        f.drop_key("execute_market_order")


def _proof(f: FactsFolder, p: Mapping[str, Any], at: str) -> None:
    proof = p.get("proof")
    f.proof = dict(proof) if isinstance(proof, Mapping) else f.proof
    if "payment_status" in p:
        f.payment_status = None if p.get("payment_status") is None else str(p["payment_status"])


def _settlement(f: FactsFolder, p: Mapping[str, Any], at: str) -> None:
    if p.get("tx"):
        f.settlement = {"tx": str(p["tx"]), "block": int(p.get("block") or 0)}
        f.seen(p["tx"], "x402_settlement")


#: Trigger -> its fold step, merged into the fold's table.
X402_STEPS = {
    "note:authorization_replaced": _replaced,
    "result:x402_proof": _proof,
    "result:x402_settlement": _settlement,
}
