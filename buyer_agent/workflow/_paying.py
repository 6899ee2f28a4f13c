"""The paying steps: payment intent, token and payee checks, sign, broadcast, reconcile, proof.

Never pay twice: the signed transactions are journaled (``pay``) before anything is broadcast; a
resumed order asks the chain what became of them and re-signs only a transaction the chain proves
DROPPED. An outcome still unknown at the deadline stops the order with the transaction named.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from buyer_agent._errors import OrchestrationApiError, PaymentMismatchError
from buyer_agent.journal import LedgerChange, LedgerStatus
from buyer_agent.journal._canonical import format_at
from buyer_agent.networks import check_token
from buyer_agent.rails._base import (
    PaymentRequest,
    Rail,
    SignedTx,
    TxStatus,
    check_funds,
    is_escrow,
    payer_address,
    revert_reason,
)
from buyer_agent.workflow._effects import Effects, OrderRun, tx_json
from buyer_agent.workflow._payment_facts import check_intent, intent_facts, intent_rail_type, request_json

__all__ = ["Paying"]


class Paying:
    """``ordered → paying → paid``: intent, checks, sign and journal, broadcast, reconcile, prove."""

    def __init__(self, fx: Effects) -> None:
        self.fx = fx
        self.env = fx.env

    async def checked_intent(self, run: OrderRun, rail: Rail) -> dict[str, Any] | None:
        """The market's payment intent (asked for once), checked against the quote and the pinned token.

        Returns the intent's journaled form, or None after failing the order (``UNKNOWN_TOKEN``,
        ``PAYMENT_MISMATCH`` naming the field): nothing is signed either way.
        """
        spec, f = run.spec, run.folder
        assert f.choice is not None and f.market_order_id is not None
        choice = f.choice.to_json()
        price = f.choice.price
        assert price is not None
        rail_type, chain = f.choice.rail, str(f.choice.chain)
        market_order_id = f.market_order_id
        payer = payer_address(rail)
        if f.intent is None:
            # As the official client asks: wdk-usdt-transfer where the quote's wallet rail lists it.
            rail_opts = {"type": intent_rail_type(rail_type, f.choice.supported_rails), "chain": chain}
            if payer:
                rail_opts["payer_address"] = payer
            market = self.env.market
            resp = await self.fx.write(
                run,
                "create_payment_intent",
                lambda t, key: market.create_payment_intent(
                    market_order_id, {"rail": rail_opts}, t, options={"idempotency_key": key}
                ),
                deadline=self.env.clock() + timedelta(seconds=spec.deadlines.order),
            )
            made = intent_facts(resp.item)
            await self.fx.note(run, "result:create_payment_intent", {"intent": made}, {"intent": made})
        assert f.intent is not None
        intent = f.intent.to_json()
        refusal = check_token(intent, choice, price, spec.tokens, self.env.networks)
        if refusal is not None:
            await self.fx.fail(run, refusal.code, refusal.message, payload=refusal.payload)
            return None
        mismatch = check_intent(intent, choice, price)
        if mismatch is not None:
            await self.mismatch(run, mismatch)
            return None
        return intent

    async def mismatch(self, run: OrderRun, mismatch: PaymentMismatchError) -> None:
        """Fail the order ``PAYMENT_MISMATCH`` naming the field, what was agreed and what was asked."""
        await self.fx.fail(
            run,
            "PAYMENT_MISMATCH",
            str(mismatch),
            payload={
                "field": mismatch.field,
                "expected": str(mismatch.expected),
                "actual": str(mismatch.actual),
            },
        )

    async def pay(self, run: OrderRun) -> None:
        """``ordered → paying``: ask for the payment intent, check it, sign, journal the signed bytes."""
        f = run.folder
        assert f.choice is not None
        rail = self.env.rail(f.choice.rail, str(f.choice.chain))
        intent = await self.checked_intent(run, rail)
        if intent is None:
            return
        request = self.request_for(run, rail, intent)
        # The balances first: a payment the wallet cannot cover fails here, before any signature.
        await check_funds(rail, request)
        txs = await rail.prepare(request)
        await self.journal_payment(run, rail, request, intent, txs)
        # Signed here and not sent yet: the first broadcast needs no look at the chain before it.
        run.unsent.update(tx.tx_id for tx in txs)

    def request_for(self, run: OrderRun, rail: Rail, intent: dict[str, Any]) -> PaymentRequest:
        """What to pay, from the checked intent and the quote (never from anything else)."""
        spec, f = run.spec, run.folder
        assert f.choice is not None and f.market_order_id is not None and f.choice.price is not None
        choice = f.choice.to_json()
        rail_type, chain = f.choice.rail, str(f.choice.chain)
        payer = payer_address(rail)
        irail = intent.get("rail") or {}
        return PaymentRequest(
            order_id=f.market_order_id,
            rail_type=rail_type,
            chain=chain,
            token=str(
                irail.get("token_address")
                or irail.get("token_mint")
                or choice.get("token_address")
                or choice.get("token_mint")
            ),
            payer=str(payer or irail.get("payer_address")),
            payee=str(irail.get("payee_address") or irail.get("wallet_address") or choice.get("payee")),
            amount=f.choice.price,
            escrow_address=irail.get("escrow_address") if is_escrow(rail_type) else None,
            fee_cap_wei=spec.fee_cap_wei,
        )

    async def journal_payment(
        self,
        run: OrderRun,
        rail: Rail,
        request: PaymentRequest,
        intent: dict[str, Any],
        txs: Sequence[SignedTx],
        **extra: Any,
    ) -> None:
        """``ordered → paying`` with the payment's transactions journaled (before any is broadcast)."""
        assert run.folder.choice is not None
        req_json = request_json(request)
        await self.fx.fire(
            run,
            "pay",
            request=request,
            rails=self.env.rails,
            intent=intent,
            quote=run.folder.choice.to_json(),
            payload={"request": req_json, "txs": tx_json(txs), "rail": rail.name, **extra},
            context={
                "request": req_json,
                "txs": tx_json(txs),
                "payment_started_at": format_at(self.env.clock()),
            },
        )

    async def settle(self, run: OrderRun) -> None:
        """``paying → paid``: every payment transaction confirmed and verified; the proof accepted."""
        spec, f = run.spec, run.folder
        request = f.request
        assert request is not None and f.market_order_id is not None
        rail = self.env.rail(request.rail_type, request.chain)
        deadline = run.deadline(f.payment_started_at, spec.deadlines.payment, self.env.clock())
        statuses = await self.confirm_txs(run, rail, "payment", deadline)
        if statuses is None:
            return
        txs = list(f.txs or ())
        market_order_id = f.market_order_id
        try:
            await rail.verify(request, txs)
        except PaymentMismatchError as exc:
            await self.fx.fire(
                run,
                "fail",
                payload={"code": "PAYMENT_MISMATCH", "message": str(exc)},
                context={"error": {"code": "PAYMENT_MISMATCH", "message": str(exc)}},
                ledger=LedgerChange(LedgerStatus.SPENT),
            )
            return
        paid_tx = txs[-1].tx_id
        if is_escrow(request.rail_type):
            await self.fx.fire(
                run,
                "paid",
                statuses=statuses,
                txs=txs,
                payload={"tx": paid_tx, "txs": [t.tx_id for t in txs]},
                context={"paid_tx": paid_tx, "paid_at": format_at(self.env.clock())},
                ledger=LedgerChange(LedgerStatus.SPENT),
            )
            return
        proof = rail.proof(request, txs)
        market = self.env.market
        try:
            async with self.fx.sub_step(run, "prove"):
                resp = await self.fx.write(
                    run,
                    "submit_payment_proof",
                    lambda t, key: market.submit_payment_proof(
                        market_order_id, proof, t, options={"idempotency_key": key}
                    ),
                    deadline=deadline,
                    extra={"tx": paid_tx},
                    reconcile=self.fx.reads.proof(market_order_id, paid_tx),
                )
        except OrchestrationApiError as exc:
            if exc.retryable:
                raise
            await self.fx.fire(
                run,
                "fail",
                payload={"code": exc.code, "message": exc.message, "tx": paid_tx},
                context={
                    "error": {
                        "code": exc.code,
                        "message": f"the market refused the payment proof: {exc.message}",
                    },
                    "paid_tx": paid_tx,
                },
                ledger=LedgerChange(LedgerStatus.SPENT),
            )
            return
        status = resp.item.status
        await self.fx.fire(
            run,
            "paid",
            statuses=statuses,
            txs=txs,
            payload={"tx": paid_tx, "proof": proof, "payment_status": status},
            context={
                "paid_tx": paid_tx,
                "proof": proof,
                "paid_at": format_at(self.env.clock()),
                "payment_status": status,
            },
            ledger=LedgerChange(LedgerStatus.SPENT),
        )

    async def confirm_txs(
        self, run: OrderRun, rail: Rail, what: str, deadline: datetime
    ) -> list[TxStatus] | None:
        """Bring the journaled ``what`` transactions (``payment`` or ``release``) to CONFIRMED.

        Never signs anew unless a transaction is provably DROPPED. Returns their statuses once all
        are confirmed, or None after recording a failure; raises ``Stop`` while the outcome is still
        unknown after the deadline.
        """
        f = run.folder
        while True:
            txs: Sequence[SignedTx] = (f.release_txs if what == "release" else f.txs) or ()
            statuses: list[TxStatus] = []
            redo = False
            for tx in txs:
                if tx.tx_id in run.unsent:
                    status = TxStatus.PENDING  # signed by this run and never sent: nothing to ask
                else:
                    status = await rail.status(tx)
                if status is TxStatus.CONFIRMED:
                    statuses.append(status)
                    continue
                if status is TxStatus.REVERTED:
                    await self._reverted(run, tx, what, await revert_reason(rail, tx))
                    return None
                if status is TxStatus.DROPPED:
                    await self._reprepare(run, rail, tx, what)
                    redo = True
                    break
                async with self.fx.sub_step(run, "broadcast"):
                    await self.fx.note(
                        run, f"intent:broadcast_{what}", {"tx_id": tx.tx_id, "purpose": tx.purpose}
                    )
                    await rail.broadcast(tx)
                    run.unsent.discard(tx.tx_id)
                    remaining = (deadline - self.env.clock()).total_seconds()
                    status = await rail.wait(tx, max(remaining, 0.5))
                    await self.fx.note(
                        run, f"result:broadcast_{what}", {"tx_id": tx.tx_id, "status": status.value}
                    )
                if status is TxStatus.CONFIRMED:
                    statuses.append(status)
                    continue
                if status is TxStatus.REVERTED:
                    await self._reverted(run, tx, what, await revert_reason(rail, tx))
                    return None
                if status is TxStatus.PENDING and self.env.clock() >= deadline:
                    await self.fx.stop_with(
                        run,
                        "PAYMENT_OUTCOME_UNKNOWN",
                        f"the {what} transaction {tx.tx_id} is still pending after the deadline; "
                        "it was not re-signed. Resume later to reconcile it",
                        tx_id=tx.tx_id,
                    )
                redo = True
                break
            if not redo:
                return statuses

    async def _reverted(self, run: OrderRun, tx: SignedTx, what: str, reason: str | None) -> None:
        """The transaction was mined and reverted: no transfer happened; fail with its id and reason."""
        await self.fx.fail(
            run,
            "TRANSACTION_REVERTED",
            f"the {what} transaction {tx.tx_id} reverted" + (f": {reason}" if reason else ""),
            payload={"tx_id": tx.tx_id, **({"reason": reason} if reason else {})},
        )

    async def _reprepare(self, run: OrderRun, rail: Rail, dropped: SignedTx, what: str) -> None:
        """The chain proves ``dropped`` never happened: sign the same payment again, journaled first."""
        request = run.folder.request
        assert request is not None
        if what == "release":
            txs = await rail.prepare_release(request)
        else:
            txs = await rail.prepare(request)
        key = "release_txs" if what == "release" else "txs"
        await self.fx.note(
            run,
            f"note:{what}_dropped",
            {"dropped": dropped.tx_id, "txs": tx_json(txs)},
            {key: tx_json(txs)},
        )
        run.unsent.update(tx.tx_id for tx in txs)
