"""The x402 steps: sign an authorization locally, prove it, execute (the market settles), find the settlement.

The flow of the orders reference (§4.8): intent → read the ``PAYMENT-REQUIRED`` challenge → sign an
EIP-3009 ``TransferWithAuthorization`` (through the agent's signer) → ``payment-proof {payment:
{paymentSignature}, paymentReference, metadata}`` → ``execute {payment: {paymentSignature}}`` → read the
settlement from the chain → confirm (and release).

Exactly once: the signed authorization (never the key) is journaled with ``pay`` before it leaves the
process, and every later step sends that same header. A new authorization is signed only when the
old one provably cannot settle: the chain's head is past its ``validBefore`` and its nonce is unused
(``authorizationState``). Before confirming, the chain must show the settlement (the nonce's
``AuthorizationUsed`` and, in the same transaction, the exact ``Transfer`` payer → payee); without it
the order is disputed with that evidence.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, cast

from buyer_agent._errors import OrchestrationApiError, PaymentMismatchError, UnsupportedRailError
from buyer_agent.journal import LedgerChange, LedgerStatus
from buyer_agent.journal._canonical import format_at
from buyer_agent.rails._base import PaymentRequest, check_funds
from buyer_agent.rails._x402 import X402_RAIL, X402Rail, challenge_mismatch
from buyer_agent.rails._x402_wire import (
    HEADER_NAME,
    MIN_VALIDITY_S,
    Authorization,
    Challenge,
    ChallengeError,
    read_challenge,
)
from buyer_agent.workflow._delivering import Delivering
from buyer_agent.workflow._effects import Effects, OrderRun
from buyer_agent.workflow._paying import Paying
from buyer_agent.workflow._payment_facts import request_json
from buyer_agent.workflow._states import OrderState

__all__ = ["X402Steps"]

S = OrderState
#: Seconds of validity, beyond the facilitator's minimum, an authorization must have left to be sent.
_MARGIN_S = 2
#: Seconds past ``validBefore`` (by the local clock) to wait for the chain's head to pass it too.
_CHAIN_WAIT_S = 30


class X402Steps:
    """``ordered → paying → paid → executed → confirmed`` on rail ``x402``."""

    def __init__(self, fx: Effects, paying: Paying, delivering: Delivering) -> None:
        self.fx = fx
        self.env = fx.env
        self._paying = paying
        self._delivering = delivering

    def _rail(self, chain: str) -> X402Rail:
        rail = self.env.rail(X402_RAIL, chain)
        if not callable(getattr(rail, "authorize", None)):
            raise UnsupportedRailError(X402_RAIL, chain, [f"{rail.name} (signs no x402 authorization)"])
        return cast(X402Rail, rail)

    def _challenge(self, run: OrderRun, chain: str) -> Challenge:
        intent = run.folder.intent
        text = intent.challenge if intent is not None else None
        return read_challenge({"paymentRequired": text} if text else {}, chain)

    def _valid_before(self, run: OrderRun, challenge: Challenge, now: datetime, anchor: str | None) -> int:
        """The challenge's window, but never past the order's payment deadline."""
        spec = run.spec
        deadline = run.deadline(anchor, spec.deadlines.payment, now)
        window = challenge.requirements.max_timeout_s or int(spec.deadlines.payment)
        return min(int(now.timestamp()) + window, int(deadline.timestamp()))

    # --- ordered → paying ------------------------------------------------------------------------

    async def pay(self, run: OrderRun) -> None:
        """Intent, challenge and checks, funds, then sign; journaled before it leaves the process."""
        f = run.folder
        assert f.choice is not None and f.market_order_id is not None and f.choice.price is not None
        chain = str(f.choice.chain)
        rail = self._rail(chain)
        intent = await self._paying.checked_intent(run, rail)
        if intent is None:
            return
        irail = intent.get("rail") or {}
        if irail.get("type") not in (None, X402_RAIL):
            await self._paying.mismatch(run, PaymentMismatchError("rail.type", X402_RAIL, irail.get("type")))
            return
        try:
            challenge = self._challenge(run, chain)
        except ChallengeError as exc:
            await self.fx.fail(
                run,
                "X402_CHALLENGE_INVALID",
                f"the market's x402 challenge cannot be paid: {exc}; nothing was signed",
                payload={"field": exc.field},
            )
            return
        choice, price = f.choice, f.choice.price
        request = PaymentRequest(
            order_id=f.market_order_id,
            rail_type=X402_RAIL,
            chain=chain,
            token=str(irail.get("token_address") or choice.token_address),
            payer=rail.address,
            payee=str(irail.get("payee_address") or irail.get("wallet_address") or choice.payee),
            amount=price,
        )
        mismatch = challenge_mismatch(request, challenge.requirements)
        if mismatch is not None:
            await self._paying.mismatch(run, mismatch)
            return
        now = self.env.clock()
        valid_before = self._valid_before(run, challenge, now, f.payment_started_at)
        if valid_before - int(now.timestamp()) <= MIN_VALIDITY_S + _MARGIN_S:
            # The market needs MIN_VALIDITY_S left at proof and at execute: a shorter window is born dead.
            await self.fx.fail(
                run,
                "X402_WINDOW_TOO_SHORT",
                f"the payment deadline leaves the authorization {valid_before - int(now.timestamp())} s, "
                f"not more than the {MIN_VALIDITY_S + _MARGIN_S} s the market needs; nothing was signed",
                payload={"field": "deadlines.payment"},
            )
            return
        # The balance first: an authorization the wallet cannot cover is never signed.
        await check_funds(rail, request)
        auth = await rail.authorize(request, challenge, now=int(now.timestamp()), valid_before=valid_before)
        req_json = request_json(request)
        await self.fx.fire(
            run,
            "pay",
            request=request,
            rails=self.env.rails,
            intent=intent,
            quote=choice.to_json(),
            payload={"request": req_json, "txs": [], "rail": rail.name, "authorization": auth.to_json()},
            context={
                "request": req_json,
                "txs": [],
                "payment_started_at": format_at(now),
                "authorization": auth.to_json(),
            },
        )

    # --- paying → paid ----------------------------------------------------------------------------

    async def prove(self, run: OrderRun) -> None:
        """``payment-proof`` with the journaled authorization; the market holds the payment after it."""
        await self.renewed(run)
        f = run.folder
        auth = f.authorization
        assert auth is not None
        try:
            status = await self._submit(run, auth)
        except OrchestrationApiError as exc:
            if exc.retryable:
                raise
            # The market has seen the header and could settle it until validBefore: the budget
            # stays committed (not released) while the order fails.
            await self.fx.fire(
                run,
                "fail",
                payload={"code": exc.code, "message": exc.message, "nonce": auth.nonce},
                context={
                    "error": {
                        "code": exc.code,
                        "message": f"the market refused the x402 payment proof: {exc.message}",
                    }
                },
            )
            return
        proof = _proof(auth)
        await self.fx.fire(
            run,
            "paid",
            payment_status=status,
            payload={"proof": proof, "payment_status": status, "nonce": auth.nonce},
            context={"proof": proof, "paid_at": format_at(self.env.clock()), "payment_status": status},
            ledger=LedgerChange(LedgerStatus.SPENT),
        )

    async def _submit(self, run: OrderRun, auth: Authorization) -> str | None:
        f, spec = run.folder, run.spec
        assert f.market_order_id is not None
        market_order_id, market = f.market_order_id, self.env.market
        body = {
            "payment": {"payment_signature": auth.header},
            "payment_reference": auth.reference,
            "metadata": {
                "header_name": HEADER_NAME,
                "network": auth.network,
                "asset": auth.asset,
                "amount": str(auth.value),
            },
        }
        async with self.fx.sub_step(run, "prove"):
            resp = await self.fx.write(
                run,
                "submit_payment_proof",
                lambda t, key: market.submit_payment_proof(
                    market_order_id, body, t, options={"idempotency_key": key}
                ),
                deadline=self.env.clock() + timedelta(seconds=spec.deadlines.payment),
                extra={"nonce": auth.nonce},
                reconcile=self.fx.reads.authorization(market_order_id, auth.nonce),
            )
        return resp.item.status

    # --- paid → executed ----------------------------------------------------------------------------

    async def execute(self, run: OrderRun) -> None:
        """Execute with the authorization's header (the market settles it); a dead one is replaced first."""
        if await self.renewed(run):
            auth = run.folder.authorization
            assert auth is not None
            status = await self._submit(run, auth)
            proof = _proof(auth)
            await self.fx.note(
                run,
                "result:x402_proof",
                {"proof": proof, "payment_status": status, "nonce": auth.nonce},
                {"proof": proof, "payment_status": status},
            )
            return  # the drive loop runs this step again, now with the new header
        await self._delivering.execute(run)

    async def renewed(self, run: OrderRun) -> bool:
        """Replace the journaled authorization when it provably cannot settle; True when it did.

        An authorization with time enough left is kept. One about to expire is kept too when its
        nonce is used on chain (it settled). Otherwise the chain's head must pass its ``validBefore``
        (waited for); only then, nonce still unused, is the same payment signed again and journaled.

        Raises:
            Stop: the chain's head did not pass ``validBefore`` in time (resume later; nothing signed).
        """
        f = run.folder
        auth, request = f.authorization, f.request
        assert auth is not None and request is not None
        left = auth.valid_before - int(self.env.clock().timestamp())
        if left > MIN_VALIDITY_S + _MARGIN_S:
            return False
        rail = self._rail(auth.network)
        state = await rail.state(auth)
        give_up = self.env.clock() + timedelta(seconds=max(left, 0) + _CHAIN_WAIT_S)
        while not state.used and not state.expired(auth.valid_before):
            if self.env.clock() >= give_up:
                await self.fx.stop_with(
                    run,
                    "X402_AUTHORIZATION_OPEN",
                    f"the x402 authorization {auth.nonce} is valid until {auth.valid_before} and the "
                    f"chain's head (time {state.chain_time}) has not passed it; it was not replaced. "
                    "Resume later",
                    nonce=auth.nonce,
                )
            await asyncio.sleep(self.env.poll)
            state = await rail.state(auth)
        if state.used:
            return False  # settled (or settling): never sign a second one
        now = self.env.clock()
        challenge = self._challenge(run, auth.network)
        new = await rail.authorize(
            request,
            challenge,
            now=int(now.timestamp()),
            valid_before=self._valid_before(run, challenge, now, None),
        )
        context: dict[str, Any] = {"authorization": new.to_json(), "proof_key": None}
        if run.state is S.PAID:
            context["execute_key"] = None
        await self.fx.note(
            run,
            "note:authorization_replaced",
            {
                "replaced": auth.nonce,
                "authorization": new.to_json(),
                "chain_time": state.chain_time,
                "block": state.block,
            },
            context,
        )
        return True

    # --- executed → confirmed ------------------------------------------------------------------------

    async def confirm(self, run: OrderRun) -> None:
        """Find the settlement on chain (or dispute without it), then accept and confirm as any order."""
        if run.folder.settlement is None and not await self._settled(run):
            return
        await self._delivering.confirm(run)

    async def _settled(self, run: OrderRun) -> bool:
        f, spec = run.folder, run.spec
        auth = f.authorization
        assert auth is not None
        rail = self._rail(auth.network)
        # The market settles as it executes: what is left to wait for is the chain's depth.
        deadline = self.env.clock() + timedelta(seconds=spec.deadlines.execution)
        while True:
            found = await rail.settlement(auth)
            if found is not None and found.final:
                await self.fx.note(
                    run,
                    "result:x402_settlement",
                    {**found.to_json(), "nonce": auth.nonce},
                    {"settlement": found.to_json()},
                )
                return True
            if self.env.clock() >= deadline:
                break
            await asyncio.sleep(self.env.poll)
        if found is not None:
            await self.fx.stop_with(
                run,
                "PAYMENT_OUTCOME_UNKNOWN",
                f"the x402 settlement {found.tx} is not at the chain's depth yet; resume later",
                tx_id=found.tx,
            )
        state = await rail.state(auth)
        await self.fx.note(
            run,
            "result:x402_settlement",
            {"found": False, "nonce": auth.nonce, "authorization_used": state.used, "block": state.block},
        )
        used = "used, by no transfer of this payment" if state.used else "unused"
        await self._delivering.dispute(
            run,
            f"no settlement on chain for the x402 authorization {auth.nonce} (authorizationState: {used}, "
            f"block {state.block})",
        )
        return False


def _proof(auth: Authorization) -> dict[str, Any]:
    """What the order keeps of an x402 proof (the header itself is in the authorization)."""
    return {
        "verification_mode": "recorded",
        "payment_reference": auth.reference,
        "header_name": HEADER_NAME,
        "network": auth.network,
        "nonce": auth.nonce,
    }
