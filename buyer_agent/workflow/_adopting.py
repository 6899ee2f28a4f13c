"""The pre-paid flow: adopt a payment the operator already made for an order in ``ordered``.

``pay ORDER_ID --tx HASH`` (or ``BuyerAgent.adopt_payment``): the payment intent is asked for and
checked as for any payment (token pinned, amount, payee), then the chain is read, not written: the
transaction must be mined at the chain's depth, sent by the payer, and move exactly the agreed amount
of that token to the payee (or into the escrow for this order). It is journaled as the order's payment
(``pay``, with ``adopted``) and the order goes on from there as any other: proof (or escrow lock),
execute, confirm. Nothing is signed for the payment. A transaction that is not this payment is
refused naming the field, journaled as ``note:adoption_refused``, and the order stays in ``ordered``.
"""

from __future__ import annotations

from typing import Any

from buyer_agent._errors import PaymentMismatchError, RailError
from buyer_agent.workflow._effects import Effects, OrderRun
from buyer_agent.workflow._paying import Paying

__all__ = ["Adopting"]


class Adopting:
    """``ordered → paying`` with a transaction made elsewhere; :class:`Paying` takes it from there."""

    def __init__(self, fx: Effects, paying: Paying) -> None:
        self.fx = fx
        self.env = fx.env
        self._paying = paying

    async def adopt(self, run: OrderRun, tx_id: str) -> None:
        """Journal ``tx_id`` as the order's payment once the chain shows it pays the order exactly.

        Raises:
            PaymentMismatchError: it pays something else (``field`` named); the order stays ``ordered``.
            RailError: the order's rail cannot adopt a payment, or the node cannot be read.
        """
        f = run.folder
        assert f.choice is not None
        rail = self.env.rail(f.choice.rail, str(f.choice.chain))
        adopt = getattr(rail, "adopt", None)
        if adopt is None:
            raise RailError(
                f"the {rail.name} rail cannot adopt a payment made elsewhere; pay it with pay_order"
            )
        used = await self._already_paid(run, tx_id)
        if used is not None:
            await self._refused(
                run, tx_id, PaymentMismatchError("transaction", "unused", f"the payment of {used}")
            )
        intent = await self._paying.checked_intent(run, rail)
        if intent is None:
            return  # the intent itself was refused (token, amount, payee): the order failed, named
        request = self._paying.request_for(run, rail, intent)
        try:
            txs = await adopt(request, tx_id)
        except PaymentMismatchError as exc:
            await self._refused(run, tx_id, exc)
        await self._paying.journal_payment(run, rail, request, intent, txs, adopted=tx_id)

    async def _refused(self, run: OrderRun, tx_id: str, exc: PaymentMismatchError) -> None:
        await self.fx.note(
            run,
            "note:adoption_refused",
            {"tx": tx_id, "field": exc.field, "expected": str(exc.expected), "actual": str(exc.actual)},
        )
        raise exc

    async def _already_paid(self, run: OrderRun, tx_id: str) -> str | None:
        """Another order of this journal whose payment is ``tx_id`` (one transfer pays one order)."""
        wanted = tx_id.lower()
        for record in await self.env.store.orders():
            if record.order_id == run.order_id:
                continue
            ctx: dict[str, Any] = dict(record.context or {})
            known = [str(t.get("tx_id", "")).lower() for t in ctx.get("txs") or () if isinstance(t, dict)]
            if wanted in known or str(ctx.get("paid_tx") or "").lower() == wanted:
                return record.order_id
        return None
