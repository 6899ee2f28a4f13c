"""The quoting steps: pair, search, choose, approval, order (with fallback along the ranking)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from buyer_agent._errors import OrchestrationApiError, OrchestrationOutcomeUnknown
from buyer_agent._money import Money
from buyer_agent._time import parse_time
from buyer_agent.journal import LedgerChange, LedgerStatus
from buyer_agent.journal._canonical import format_at
from buyer_agent.market import MarketOrder
from buyer_agent.rails._preflight import check_rails_can_pay
from buyer_agent.workflow._effects import Effects, OrderRun
from buyer_agent.workflow._eligibility import Limits
from buyer_agent.workflow._fact_quotes import NOT_REQUIRED
from buyer_agent.workflow._names import NOTE_QUOTE_EXPIRED
from buyer_agent.workflow._payment_facts import limits_json
from buyer_agent.workflow._quotes import facts_price, quote_json
from buyer_agent.workflow._selection import Selection, make_limits, select_quote, single_candidate
from buyer_agent.workflow._spec import OrderSpec
from buyer_agent.workflow._summary import OrderSummary

__all__ = ["Quoting", "chain_matches", "order_payment", "why_not"]

#: Refused quotes named in a NO_ELIGIBLE_QUOTE message; every one, with all its reasons, is in the
#: order's candidates (``run --json``, ``show``).
_WHY_NOT_SHOWN = 5


class Quoting:
    """Pair, search, choose, ask for approval, order; fall back along the ranking when refused."""

    def __init__(self, fx: Effects, summary: Callable[[OrderRun], OrderSummary]) -> None:
        self.fx = fx
        self.env = fx.env
        self._summary = summary

    # --- facts the steps share ----------------------------------------------------------------

    def machine_id(self, run: OrderRun) -> str:
        """The machine the order buys for: the spec's, else the pairing's."""
        return run.folder.machine_id or self.env.pairing.machine_id

    def pairing_id(self, run: OrderRun) -> str | None:
        """The pairing the order was paired under (else the session's)."""
        return run.folder.pairing_id or self.env.pairing.pairing_id

    async def limits(self, run: OrderRun) -> Limits:
        """The order's limits now: its budget, the pairing's policy and what the pairing spent today.

        What the order itself already committed today does not count against it (a resumed order).
        """
        spec, f = run.spec, run.folder
        policy = self.env.pairing.policy() or f.policy
        pairing_id = f.pairing_id or ""
        budget = spec.budget
        store = self.env.store
        spent = await store.spent_today(pairing_id, budget.currency, budget.decimals)
        if f.market_order_id is not None:
            own = await store.ledger_entry(run.order_id)
            today = self.env.clock().date().isoformat()
            if (
                own is not None
                and own.status is not LedgerStatus.RELEASED
                and own.day == today
                and (own.amount.currency, own.amount.decimals) == (budget.currency, budget.decimals)
            ):
                spent = spent - own.amount
        return make_limits(
            order_budget=budget,
            per_transaction_limit=policy.per_transaction_limit if policy else None,
            daily_limit=policy.daily_spend_limit if policy else None,
            spent_today=spent,
            allowed_service_ids=policy.allowed_service_ids if policy else frozenset(),
            denied_service_ids=policy.denied_service_ids if policy else frozenset(),
            allowed_skill_keys=policy.allowed_skill_keys if policy else frozenset(),
            denied_skill_keys=policy.denied_skill_keys if policy else frozenset(),
        )

    def can_pay(self, spec: OrderSpec) -> Callable[[str, str | None], bool]:
        """Whether a quote's rail and chain suit the spec and one of the buyer's rails."""
        rails = self.env.rails

        def can_pay(rail_type: str, chain: str | None) -> bool:
            if spec.rail is not None and rail_type != spec.rail:
                return False
            if rail_type == NOT_REQUIRED:
                return True  # nothing is paid, so no rail and no chain is needed
            if chain is None or not rail_type:
                return False
            if spec.chain is not None and not chain_matches(spec.chain, chain):
                return False
            return any(r.supports(rail_type, chain) for r in rails)

        return can_pay

    def quotes_json(self, run: OrderRun) -> list[Mapping[str, Any]]:
        """The order's quotes as journaled (the selection reads them as they were stored)."""
        kept = run.folder.quotes_json()
        return list(kept) if kept else []

    async def select(self, run: OrderRun, quote_id: str | None) -> tuple[Selection, Limits, datetime]:
        """What ``choose`` decides now (nothing journaled)."""
        limits = await self.limits(run)
        now = self.env.clock()
        sel = select_quote(
            self.quotes_json(run),
            run.spec,
            limits,
            now=now,
            can_pay=self.can_pay(run.spec),
            quote_id=quote_id,
        )
        return sel, limits, now

    # --- steps --------------------------------------------------------------------------------

    async def pair(self, run: OrderRun) -> None:
        """``created → paired``: the agent holds a valid pairing (pairs on its first token)."""
        # Before the market hears of the order: a chain or rail type no rail here pays is refused now.
        await check_rails_can_pay(self.env.rails, run.spec.rail, run.spec.chain)
        pairing = self.env.pairing
        await pairing.token()
        policy = pairing.policy()
        pairing_id = pairing.pairing_id
        doc = policy.to_json() if policy else None
        await self.fx.fire(
            run,
            "pair",
            payload={"pairing_id": pairing_id, "policy": doc},
            context={"pairing_id": pairing_id, "policy": doc},
            pairing_id=pairing_id,
        )

    async def search(self, run: OrderRun) -> None:
        """``paired|quoted|searched → searched``: ask the market for quotes within the quote window."""
        spec, f = run.spec, run.folder
        now = self.env.clock()
        window = f.quote_window_start
        if window and now > parse_time(window) + timedelta(seconds=spec.deadlines.quote):
            await self.fx.fail(run, "QUOTE_DEADLINE", "no quote could be ordered within the quote deadline")
            return
        params: dict[str, Any] = {
            "machine_id": self.machine_id(run),
            "agent_pairing_id": self.pairing_id(run),
            "service_type": spec.service_type,
            "operation": spec.operation,
            "region": spec.region,
            "required_capabilities": list(spec.capabilities) or None,
            "allow_external_handoff": spec.allow_handoff,
            "budget": {"max": spec.budget.to_decimal(), "currency": spec.budget.currency},
        }
        params = {k: v for k, v in params.items() if v is not None}
        market = self.env.market
        resp = await self.fx.write(
            run,
            "search_market",
            lambda t, key: market.search_market(params, t, options={"idempotency_key": key}),
            deadline=now + timedelta(seconds=spec.deadlines.quote),
        )
        search = resp.item
        quotes = [quote_json(q) for q in search.quotes]
        await self.fx.fire(
            run,
            "search",
            payload={"search_id": str(search.id), "status": search.status, "quotes": quotes},
            context={
                "search_id": str(search.id),
                "quotes": quotes,
                "search_key": None,
                "quote_window_start": window or format_at(now),
                "tried": [],
                "choice": None,
                "ranking": None,
                "order_key": None,
            },
        )

    async def choose(self, run: OrderRun, quote_id: str | None = None) -> None:
        """``searched → quoted``: the eligibility guard, then the strategy (or the caller's ``quote_id``)."""
        spec = run.spec
        sel, limits, now = await self.select(run, quote_id)
        limits_doc = limits_json(limits)
        if sel.choice is None:
            reasons = why_not(sel.candidates)
            await self.fx.fail(
                run,
                "NO_ELIGIBLE_QUOTE",
                f"{sel.reason}" + (f" ({reasons})" if reasons else ""),
                payload={"candidates": sel.candidates, "limits": limits_doc},
                context={"candidates": sel.candidates, "limits": limits_doc},
            )
            return
        choice = sel.choice
        await self.fx.fire(
            run,
            "choose",
            quote=choice,
            now=now,
            spec=spec,
            limits=limits,
            can_pay=self.can_pay(spec),
            # The quotes stay in the search's event; the decision names them by id.
            payload={
                "candidates": sel.candidates,
                "decision": {"quote_id": choice["quote_id"], "reason": sel.reason, "ranking": sel.ranking},
                "limits": limits_doc,
                "strategy": spec.strategy,
                "now": format_at(now),
            },
            context={
                "choice": choice,
                "candidates": sel.candidates,
                "ranking": sel.ranking,
                "decision_reason": sel.reason,
                "limits": limits_doc,
            },
        )

    async def approval(self, run: OrderRun) -> None:
        """``awaiting_approval``: ask the approver; approved goes back to ``quoted``, declined cancels."""
        approver = self.env.approver
        assert approver is not None
        if await approver(self._summary(run)):
            await self.approve(run, "approver")
        else:
            await self.fx.fire(run, "cancel", payload={"reason": "the approver declined"})

    async def approve(self, run: OrderRun, by: str) -> None:
        """``awaiting_approval → quoted`` with the approval recorded."""
        await self.fx.fire(run, "approve", payload={"by": by}, context={"approved": True})

    async def order(self, run: OrderRun) -> None:
        """``quoted → ordered``: create the market order and commit its price against the daily limit."""
        spec, f = run.spec, run.folder
        choice_facts = f.choice
        assert choice_facts is not None
        choice = choice_facts.to_json()
        price = facts_price(choice)
        assert price is not None
        threshold = spec.approval_threshold
        if threshold is not None and price > threshold and not f.approved:
            await self.fx.fire(
                run, "hold", quote=choice, spec=spec, payload={"price": price, "threshold": threshold}
            )
            return
        now = self.env.clock()
        # The market documents no idempotency key: an order asked for before (its intent journaled,
        # no answer kept: a lost answer, a crash) may exist. Read the pairing's orders first.
        read = self.fx.reads.market_order(self.machine_id(run), self.pairing_id(run), choice["quote_id"])
        if f.key("create_market_order") is not None and "create_market_order" not in run.unsent_writes:
            found = await self.fx.reconcile(run, "create_market_order", read)
            if found is not None:
                await self._ordered(run, found.item, choice, price, now)
                return
            # The market holds no order for this quote: it goes on as if never asked for.
        expires_at = parse_time(choice["expires_at"])
        if expires_at <= now:
            await self.fx.note(run, NOTE_QUOTE_EXPIRED, {"quote_id": choice["quote_id"]})
            await self.search(run)
            return
        limits = await self.limits(run)
        can_pay = self.can_pay(spec)
        eligible, reasons = single_candidate(choice, spec, limits, now=now, can_pay=can_pay)
        if not eligible:
            await self.fallback(run, choice["quote_id"], "; ".join(reasons))
            return
        params = {
            "machine_id": self.machine_id(run),
            "agent_pairing_id": self.pairing_id(run),
            "service_id": choice["service_id"],
            "search_id": f.search_id,
            "quote_id": choice["quote_id"],
            "operation": spec.operation,
            "input_payload": dict(spec.input),
            "budget": {"max": spec.budget.to_decimal(), "currency": spec.budget.currency},
        }
        params = {k: v for k, v in params.items() if v is not None}
        market = self.env.market
        try:
            resp = await self.fx.write(
                run,
                "create_market_order",
                lambda t, key: market.create_market_order(params, t, options={"idempotency_key": key}),
                # Sent again (after a read found nothing) only while the quote is fresh.
                deadline=min(now + timedelta(seconds=spec.deadlines.order), expires_at),
                extra={"quote_id": choice["quote_id"]},
                reconcile=read,
            )
        except OrchestrationOutcomeUnknown:
            if (
                "create_market_order" in run.unsent_writes
                and parse_time(choice["expires_at"]) <= self.env.clock()
            ):
                # Read, found nothing, and the quote expired meanwhile: search again (quote deadline).
                await self.fx.note(run, NOTE_QUOTE_EXPIRED, {"quote_id": choice["quote_id"]})
                await self.search(run)
                return
            raise
        except OrchestrationApiError as exc:
            if exc.retryable:
                raise
            key = f.key("create_market_order")
            await self.fx.note(
                run,
                "result:create_market_order",
                {"idempotency_key": key, "error": {"code": exc.code, "message": exc.message}},
                {"order_key": None},
            )
            if exc.code == "QUOTE_EXPIRED":
                await self.search(run)
            else:
                await self.fallback(run, choice["quote_id"], f"{exc.code}: {exc.message}")
            return
        await self._ordered(run, resp.item, choice, price, now, limits)

    async def _ordered(
        self,
        run: OrderRun,
        order: MarketOrder,
        choice: dict[str, Any],
        price: Money,
        now: datetime,
        limits: Limits | None = None,
    ) -> None:
        """``quoted → ordered`` with the market's order (its answer, or the one a read found)."""
        spec, f = run.spec, run.folder
        key = f.key("create_market_order")
        # Freshness and limits are judged as when the order was asked for (a resumed run may come
        # back later): the quote was fresh then, and what the order commits now must still fit.
        asked_at = f.keys["create_market_order"].asked_at
        judged = parse_time(asked_at) if asked_at else now
        pairing_id = f.pairing_id or ""
        policy = self.env.pairing.policy() or f.policy
        payload: dict[str, Any] = {
            "market_order_id": str(order.id),
            "status": order.status,
            "idempotency_key": key,
        }
        ledger: LedgerChange | None = LedgerChange(
            LedgerStatus.COMMITTED,
            pairing_id,
            price,
            daily_limit=policy.daily_spend_limit if policy else None,
        )
        if run.folder.choice is not None and run.folder.choice.free:
            # Nothing is paid, so nothing is committed against the budget; what the market order says
            # of payment is kept, for the check before it executes (a free quote turned paid).
            payload["payment"] = order_payment(order)
            ledger = None
        await self.fx.fire(
            run,
            "order",
            quote=choice,
            now=judged,
            spec=spec,
            limits=limits if limits is not None else await self.limits(run),
            can_pay=self.can_pay(spec),
            payload=payload,
            context={"market_order_id": str(order.id), "market_order_status": order.status},
            market_order_id=str(order.id),
            ledger=ledger,
        )

    async def fallback(self, run: OrderRun, failed_quote: str, why: str) -> None:
        """The next eligible quote along the ranking, or fail ``ORDER_REJECTED`` when none is left."""
        f = run.folder
        tried = [*(f.tried or ()), failed_quote]
        nxt = await self._next(run, tried)
        if nxt is None:
            await self.fx.fail(
                run, "ORDER_REJECTED", f"no quote could be ordered; last: {failed_quote}: {why}"
            )
            return
        await self.fx.note(
            run,
            "note:fallback",
            {"rejected": failed_quote, "reason": why, "next": nxt["quote_id"]},
            {"tried": tried, "choice": nxt, "order_key": None},
        )

    async def _next(self, run: OrderRun, tried: Sequence[str]) -> dict[str, Any] | None:
        quotes = {q["quote_id"]: q for q in self.quotes_json(run)}
        spec = run.spec
        limits = await self.limits(run)
        now = self.env.clock()
        can_pay = self.can_pay(spec)
        for qid in run.folder.ranking or ():
            if qid in tried or qid not in quotes:
                continue
            if single_candidate(quotes[qid], spec, limits, now=now, can_pay=can_pay)[0]:
                return dict(quotes[qid])
        return None


def order_payment(order: Any) -> dict[str, Any]:
    """What a market order says of its payment: ``required``, ``default_rail`` and any amount it names.

    The amount is read where a market may put the order's price (``pricing``, or the service snapshot's
    ``pricing``); the sandbox names none.
    """
    extra: Mapping[str, Any] = order.extra or {}
    snapshot = extra.get("service_snapshot") or extra.get("serviceSnapshot") or {}
    pricing = extra.get("pricing") or (snapshot.get("pricing") if isinstance(snapshot, Mapping) else None)
    amount = pricing.get("amount") if isinstance(pricing, Mapping) else None
    return {
        "required": bool(order.payment.required),
        "default_rail": str(order.payment.default_rail or ""),
        "amount": None if amount is None else format(Decimal(str(amount)), "f"),
    }


def why_not(candidates: Sequence[Mapping[str, Any]]) -> str:
    """One line on why no quote was eligible: the first reason of the first few refused quotes."""
    refused = [c for c in candidates if not c["eligible"]]
    parts = []
    for c in refused[:_WHY_NOT_SHOWN]:
        first, *rest = list(c["reasons"]) or ["refused"]
        parts.append(f"{c['service_id']}: {first}" + (f" (+{len(rest)} more)" if rest else ""))
    if len(refused) > _WHY_NOT_SHOWN:
        parts.append(f"and {len(refused) - _WHY_NOT_SHOWN} more quotes; every reason is in the candidates")
    return "; ".join(parts)


def chain_matches(wanted: str, chain: str) -> bool:
    """``evm`` / ``solana`` match any chain of that family; anything else must be equal."""
    if wanted == "evm":
        return chain.startswith("eip155:")
    if wanted == "solana":
        return chain.startswith("solana:")
    return wanted == chain
