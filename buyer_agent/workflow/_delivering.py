"""The delivering steps: escrow lock, execute, accept, confirm, release, dispute, refund."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

from buyer_agent._errors import OrchestrationApiError
from buyer_agent.journal._canonical import format_at
from buyer_agent.market import HandoffExecution
from buyer_agent.rails._base import is_escrow
from buyer_agent.workflow._acceptance import check_acceptance
from buyer_agent.workflow._effects import Effects, OrderRun, Stop
from buyer_agent.workflow._evidence import dispute_evidence
from buyer_agent.workflow._fact_quotes import NOT_REQUIRED
from buyer_agent.workflow._paying import Paying
from buyer_agent.workflow._states import OrderState

__all__ = ["Delivering"]

S = OrderState


class Delivering:
    """``paid → (escrow_locked) → executed → confirmed``, or ``disputed → refunded``."""

    def __init__(self, fx: Effects, paying: Paying) -> None:
        self.fx = fx
        self.env = fx.env
        self._paying = paying

    def _escrow(self, run: OrderRun) -> bool:
        request = run.folder.request
        return request is not None and is_escrow(request.rail_type)

    async def execute_free(self, run: OrderRun) -> None:
        """``ordered → executed`` for a quote that needs no payment: nothing is asked for, signed or paid.

        A market order that asks for a payment after all (``payment.required``, another rail, an
        amount) is refused first: ``PRICE_CHANGED`` naming the field, and nothing is paid.
        """
        said = run.folder.market_order_payment or {}
        changed: tuple[str, Any] | None = None
        if said.get("required") is not False:
            changed = ("payment.required", said.get("required"))
        elif said.get("default_rail") not in (None, "", NOT_REQUIRED):
            changed = ("payment.defaultRail", said.get("default_rail"))
        elif said.get("amount") is not None and Decimal(str(said["amount"])) != 0:
            changed = ("amount", said["amount"])
        if changed is not None:
            await self._price_changed(run, *changed)
            return
        await self._execute(run)

    async def _price_changed(self, run: OrderRun, field: str, value: Any) -> None:
        """The quote said free and the market now asks for a payment: refuse, journaled, nothing paid."""
        await self.fx.fail(
            run,
            "PRICE_CHANGED",
            f"the quote needs no payment but the market order's {field} is {value!r}; nothing was paid",
            payload={"field": field, "quoted": "free", "market": value},
        )

    async def execute(self, run: OrderRun) -> None:
        """From ``paid``: lock the escrow first on escrow rails; then have the market run the service."""
        if run.state is S.PAID and self._escrow(run):
            await self.lock_escrow(run)
            return
        await self._execute(run)

    async def lock_escrow(self, run: OrderRun) -> None:
        """``paid → escrow_locked``: tell the market where the deposit is."""
        f, spec = run.folder, run.spec
        request = f.request
        assert request is not None and f.market_order_id is not None
        rail = self.env.rail(request.rail_type, request.chain)
        proof = rail.escrow_proof(request, list(f.txs or ()))
        body = {
            "transaction_hash": proof.transaction_hash,
            "chain": proof.chain,
            "escrow_address": proof.escrow_address,
        }
        market_order_id, market = f.market_order_id, self.env.market
        async with self.fx.sub_step(run, "escrow_lock"):
            resp = await self.fx.write(
                run,
                "lock_escrow_payment",
                lambda t, key: market.lock_escrow_payment(
                    market_order_id, body, t, options={"idempotency_key": key}
                ),
                deadline=self.env.clock() + timedelta(seconds=spec.deadlines.payment),
                extra=body,
                reconcile=self.fx.reads.escrow_lock(market_order_id, proof.transaction_hash),
            )
        status = resp.item.status
        await self.fx.fire(
            run,
            "lock_escrow",
            payload={**body, "payment_status": status},
            context={"proof": body, "payment_status": status},
        )

    async def _execute(self, run: OrderRun) -> None:
        f, spec = run.folder, run.spec
        assert f.market_order_id is not None
        now = self.env.clock()
        deadline = run.deadline(f.paid_at, spec.deadlines.execution, now)
        late = f"execution did not complete within {spec.deadlines.execution:g} s"
        if now >= deadline:
            await self.dispute(run, late)
            return
        market_order_id, market = f.market_order_id, self.env.market
        free = run.state is S.ORDERED
        body: dict[str, Any] = {"input": dict(spec.input)}
        if f.authorization is not None:
            # x402: the market settles the recorded authorization as it executes (the same header).
            body["payment"] = {"payment_signature": f.authorization.header}
        try:
            # A service that has not answered by the execution deadline is disputed, not waited for.
            resp = await self.fx.write(
                run,
                "execute_market_order",
                lambda t, key: market.execute_market_order(
                    market_order_id, body, t, options={"idempotency_key": key}
                ),
                deadline=deadline,
                timeout=(deadline - self.env.clock()).total_seconds(),
                # After a lost answer: the outcome the market shows is adopted; never run twice.
                reconcile=self.fx.reads.execution(market_order_id),
            )
        except TimeoutError:
            await self.dispute(run, late)
            return
        except OrchestrationApiError as exc:
            if exc.retryable:
                raise
            if free and exc.code == "PAYMENT_REQUIRED":
                await self._price_changed(run, "execute", f"{exc.code}: {exc.message}")
                return
            await self.dispute(run, f"execution failed: {exc.code}: {exc.message}")
            return
        execution = resp.execution
        if isinstance(execution, HandoffExecution):
            h = execution.handoff
            handoff = {"label": h.label, "url": h.url, "notes": list(h.notes) if h.notes else None}
            await self.fx.fire(run, "hand_off", payload={"handoff": handoff}, context={"handoff": handoff})
            return
        o = execution.outcome
        outcome = {"status": o.status, "result": o.result, "error_message": o.error_message, "id": o.id}
        trigger = "execute_free" if free else "execute"
        await self.fx.fire(run, trigger, payload={"outcome": outcome}, context={"outcome": outcome})

    async def confirm(self, run: OrderRun) -> None:
        """From ``executed``: check acceptance; confirm (and release the escrow) or dispute."""
        f, spec = run.folder, run.spec
        reason = f.acceptance_failure
        if reason is None and not f.accepted:
            outcome = f.outcome.to_json() if f.outcome is not None else {}
            reason = check_acceptance(spec.acceptance, outcome)
            if reason is not None:
                await self.fx.note(
                    run,
                    "result:acceptance",
                    {"accepted": False, "reason": reason},
                    {"acceptance_failure": reason},
                )
            else:
                await self.fx.note(run, "result:acceptance", {"accepted": True}, {"accepted": True})
        if reason is not None:
            await self.dispute(run, f"delivery failed acceptance: {reason}")
            return
        await self._confirm(run)

    async def _confirm(self, run: OrderRun) -> None:
        f, spec = run.folder, run.spec
        assert f.market_order_id is not None
        market_order_id, market, request = f.market_order_id, self.env.market, f.request
        if not f.market_confirmed:
            resp = await self.fx.write(
                run,
                "confirm_market_order",
                lambda t, key: market.confirm_market_order(
                    market_order_id, t, options={"idempotency_key": key}
                ),
                deadline=self.env.clock() + timedelta(seconds=spec.deadlines.order),
                reconcile=self.fx.reads.confirmation(market_order_id),
            )
            status = resp.payment.status if resp.payment is not None else None
            await self.fx.note(
                run,
                "result:confirm_market_order",
                {"payment_status": status},
                {"market_confirmed": True, "payment_status": status},
            )
        if request is None:
            # The no-payment flow: nothing is held, so nothing is released.
            status = f.payment_status
            await self.fx.fire(
                run,
                "confirm",
                payload={"payment": "none", **({"payment_status": status} if status else {})},
                context={"payment_status": status} if status else None,
            )
            return
        if not is_escrow(request.rail_type):
            status = f.payment_status
            if status == "release_pending":
                # As documented: confirm leaves a held payment release_pending and the buyer's
                # payment/release closes it; a direct transfer has nothing to move on chain.
                async with self.fx.sub_step(run, "release"):
                    released = await self.fx.write(
                        run,
                        "release_payment",
                        lambda t, key: market.release_payment(
                            market_order_id, None, t, options={"idempotency_key": key}
                        ),
                        deadline=self.env.clock() + timedelta(seconds=spec.deadlines.order),
                        reconcile=self.fx.reads.release(market_order_id),
                    )
                status = released.item.status
            # A market that settles at confirm (older behaviour) answered released: nothing to release.
            await self.fx.fire(
                run,
                "confirm",
                payload={"payment": "released", **({"payment_status": status} if status else {})},
                context={"payment_status": status} if status else None,
            )
            return
        rail = self.env.rail(request.rail_type, request.chain)
        if not f.release_txs:
            txs = await rail.prepare_release(request)
            await self.fx.note(
                run,
                "note:release_signed",
                {"txs": [t.to_json() for t in txs]},
                {
                    "release_txs": [t.to_json() for t in txs],
                    "release_started_at": format_at(self.env.clock()),
                },
            )
            run.unsent.update(t.tx_id for t in txs)
        deadline = run.deadline(f.release_started_at, spec.deadlines.payment, self.env.clock())
        async with self.fx.sub_step(run, "release"):
            if await self._paying.confirm_txs(run, rail, "release", deadline) is None:
                return
            assert f.release_txs
            release_tx = f.release_txs[-1].tx_id
            resp2 = await self.fx.write(
                run,
                "release_payment",
                lambda t, key: market.release_payment(
                    market_order_id, {"transaction_hash": release_tx}, t, options={"idempotency_key": key}
                ),
                deadline=deadline,
                extra={"tx": release_tx},
                reconcile=self.fx.reads.release(market_order_id),
            )
        status = resp2.item.status
        await self.fx.fire(
            run,
            "confirm",
            payload={"release_tx": release_tx, "payment_status": status},
            context={"release_tx": release_tx, "payment_status": status},
        )

    async def dispute(self, run: OrderRun, reason: str) -> None:
        """``executed|paid|escrow_locked → disputed`` with the evidence bound to the journal."""
        f, spec = run.folder, run.spec
        assert f.market_order_id is not None
        market_order_id, market = f.market_order_id, self.env.market
        context = run.facts().to_context()
        context["market_order_id"] = market_order_id
        evidence = dispute_evidence(await self.env.store.events(run.order_id), context, reason)
        resp = await self.fx.write(
            run,
            "dispute_market_order",
            lambda t, key: market.dispute_market_order(
                market_order_id, {"reason": reason, "evidence": evidence}, t, options={"idempotency_key": key}
            ),
            deadline=self.env.clock() + timedelta(seconds=spec.deadlines.order),
            extra={"reason": reason},
            reconcile=self.fx.reads.dispute(market_order_id, reason, evidence),
        )
        # A dispute adopted after a lost answer has the id its audit event named (else none).
        dispute_id = resp.dispute.id or None
        await self.fx.fire(
            run,
            "dispute",
            payload={"reason": reason, "evidence": evidence, "dispute_id": dispute_id},
            context={
                "dispute": {"reason": reason, "id": dispute_id},
                "disputed_at": format_at(self.env.clock()),
                "error": {"code": "DISPUTED", "message": reason},
            },
        )

    async def refund(self, run: OrderRun) -> None:
        """``disputed → refunded`` once the market says so; past the refund deadline, stop and say so."""
        f, spec = run.folder, run.spec
        assert f.market_order_id is not None
        deadline = run.deadline(f.disputed_at, spec.deadlines.refund, self.env.clock())
        while True:
            payment = (await self.env.market.get_market_payment(f.market_order_id)).item
            status = payment.status if payment is not None else None
            if status == "refunded":
                await self.fx.fire(
                    run, "refund", payload={"payment_status": status}, context={"payment_status": status}
                )
                return
            if self.env.clock() >= deadline:
                await self.fx.stop_with(
                    run,
                    "REFUND_TIMEOUT",
                    f"no refund within {spec.deadlines.refund:g} s (payment is {status}); resume later",
                )
                raise Stop  # pragma: no cover - stop_with raises
            await asyncio.sleep(self.env.poll)
