"""The one fold: an order's journal events, one at a time, into its :class:`OrderFacts`.

Every reader of orders (evidence, the timeline, ``show``, ``orders``, the tools, an imported
journal's row) reads them through this fold: no other code interprets event payloads. It derives
everything the runner keeps in the order row's context from the event rows alone (trigger, payload,
``at``), and folds journals written by older code (the golden journals, imported files).

Time anchors (when an effect was asked for, when payment started, …) are the journaled ``at`` of the
event that recorded them; the runner's context holds its own clock's reading a moment earlier. The
machine id is known only when the spec named it (the runner used the pairing's otherwise).

A little over 400 lines on purpose: one small step per journaled trigger, kept in one table so the
fold reads as one (the x402 steps live beside it, in ``_fact_x402``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from buyer_agent._errors import BuyerAgentError
from buyer_agent.journal import Event
from buyer_agent.rails._base import EscrowProof, PaymentRequest, SignedTx
from buyer_agent.rails._x402_wire import Authorization
from buyer_agent.workflow._eligibility import Limits
from buyer_agent.workflow._fact_parts import (
    Dispute,
    EffectKey,
    ErrorFact,
    Handoff,
    IntentFacts,
    Outcome,
    TxRef,
)
from buyer_agent.workflow._fact_quotes import Candidate, Decision, Pick, QuoteFacts, limits_from_json
from buyer_agent.workflow._fact_x402 import X402_STEPS, authorization_of
from buyer_agent.workflow._facts import EFFECT_KEYS, OrderFacts
from buyer_agent.workflow._pairing import DelegationPolicyLimits
from buyer_agent.workflow._payment_facts import policy_from_json, request_from_json
from buyer_agent.workflow._spec import OrderSpec

__all__ = ["FactsFolder", "fold"]

# Machine triggers that do not clear an error recorded by an earlier, stopped attempt.
_KEEP_ERROR = frozenset({"submit", "fail", "dispute", "refund", "cancel"})
# The message the runner keeps when the market refused a payment proof (the payload has the market's).
_PROOF_REFUSED = "the market refused the payment proof: "


_FIELDS = tuple(f.name for f in fields(OrderFacts))


@dataclass(slots=True)
class FactsFolder:
    """Folds events one at a time (:meth:`apply`); :meth:`facts` is the frozen result so far."""

    order_id: str = ""
    state: str = "created"
    seq: int = 0
    created_at: str | None = None
    updated_at: str | None = None
    spec: OrderSpec | None = None
    machine_id: str | None = None
    pairing_id: str | None = None
    policy: DelegationPolicyLimits | None = None
    search_id: str | None = None
    quotes: tuple[QuoteFacts, ...] | None = None
    candidates: tuple[Candidate, ...] | None = None
    limits: Limits | None = None
    decision: Decision | None = None
    ranking: tuple[str, ...] | None = None
    choice: QuoteFacts | None = None
    pick: Pick | None = None
    tried: tuple[str, ...] | None = None
    approved: bool = False
    market_order_id: str | None = None
    market_order_status: str | None = None
    market_order_payment: Mapping[str, Any] | None = None
    keys: dict[str, EffectKey] = field(default_factory=dict)
    intent: IntentFacts | None = None
    request: PaymentRequest | None = None
    txs: tuple[SignedTx, ...] | None = None
    release_txs: tuple[SignedTx, ...] | None = None
    release_tx: str | None = None
    paid_tx: str | None = None
    proof: Mapping[str, Any] | None = None
    escrow_proof: EscrowProof | None = None
    transactions: tuple[TxRef, ...] = ()
    payment_status: str | None = None
    authorization: Authorization | None = None
    settlement: Mapping[str, Any] | None = None
    outcome: Outcome | None = None
    handoff: Handoff | None = None
    accepted: bool = False
    acceptance_failure: str | None = None
    market_confirmed: bool = False
    dispute: Dispute | None = None
    error: ErrorFact | None = None
    errors: tuple[ErrorFact, ...] = ()
    quote_window_start: str | None = None
    payment_started_at: str | None = None
    paid_at: str | None = None
    release_started_at: str | None = None
    disputed_at: str | None = None
    # When the pending search was asked for (its intent), for the quote window's start.
    _search_asked: str | None = None
    # The journaled quotes ``quotes`` was read from: a ``choose`` journals them again, unchanged.
    _quotes_json: Any = None
    # The hash of the event being folded (binds the dispute's evidence to it).
    _hash: str = ""

    def facts(self) -> OrderFacts:
        """The facts folded so far."""
        values = {name: getattr(self, name) for name in _FIELDS}
        values["keys"] = dict(self.keys)
        return OrderFacts(**values)

    def key(self, effect: str) -> str | None:
        """The live idempotency key of ``effect``, or None (as :meth:`OrderFacts.key`)."""
        k = self.keys.get(effect)
        return k.key if k is not None else None

    def quotes_json(self) -> Any:
        """The order's quotes as the journal holds them (the selection reads them so), or None."""
        return self._quotes_json

    def apply(self, event: Event | Mapping[str, Any]) -> FactsFolder:
        """Fold one event (a journal ``Event`` or an exported event dict) in; return self."""
        if isinstance(event, Event):
            trigger, dst, at, p = event.trigger, event.dst, event.at, event.payload
            order_id, seq, self._hash = event.order_id, event.seq, event.hash
        else:
            trigger, dst, at = str(event["trigger"]), str(event["dst"]), str(event["at"])
            p = event.get("payload") or {}
            order_id, seq = str(event.get("order_id") or ""), int(event.get("seq") or 0)
            self._hash = str(event.get("hash") or "")
        if not self.order_id:
            self.order_id = order_id
        if self.created_at is None:
            self.created_at = at
        self.state, self.seq, self.updated_at = dst, seq, at
        if ":" not in trigger and trigger not in _KEEP_ERROR:
            # A step that succeeds clears the error of an earlier, stopped attempt (as the runner does).
            self.error = None
        step = _STEPS.get(trigger)
        if step is not None:
            step(self, p, at)
        elif trigger.startswith("intent:"):
            self._intent(trigger[len("intent:") :], p, at)
        return self

    # --- steps ---------------------------------------------------------------------------------

    def _intent(self, effect: str, p: Mapping[str, Any], at: str) -> None:
        if effect == "search_market":
            self._search_asked = at
        if effect in EFFECT_KEYS and p.get("idempotency_key"):
            self.keys[effect] = EffectKey(str(p["idempotency_key"]), at)

    def drop_key(self, effect: str) -> None:
        """Give up ``effect``'s key (its next intent makes a new one); when it was asked stays."""
        k = self.keys.get(effect)
        if k is not None:
            self.keys[effect] = EffectKey(None, k.asked_at)

    def _submit(self, p: Mapping[str, Any], at: str) -> None:
        doc = p.get("spec")
        if isinstance(doc, Mapping):
            try:
                self.spec = OrderSpec.from_json(doc)
            except (BuyerAgentError, ValueError, KeyError, TypeError):
                self.spec = None
            machine = doc.get("machine_id")
            self.machine_id = str(machine) if machine else None

    def _pair(self, p: Mapping[str, Any], at: str) -> None:
        self.pairing_id = _opt(p.get("pairing_id"))
        policy = p.get("policy")
        self.policy = policy_from_json(policy) if isinstance(policy, Mapping) else None

    def _search(self, p: Mapping[str, Any], at: str) -> None:
        self.search_id = _opt(p.get("search_id"))
        self._read_quotes(p.get("quotes") or [])
        self.drop_key("search_market")
        if self.quote_window_start is None:
            self.quote_window_start = self._search_asked or at
        self.tried = ()
        self.choice = None
        self.ranking = None
        self.drop_key("create_market_order")

    def _read_quotes(self, quotes: Any) -> None:
        if self.quotes is not None and quotes == self._quotes_json:
            return
        self.quotes = tuple(QuoteFacts.from_json(q) for q in quotes)
        self._quotes_json = quotes

    def _quote(self, quote_id: str) -> QuoteFacts | None:
        return next((q for q in self.quotes or () if q.quote_id == quote_id), None)

    def _choose(self, p: Mapping[str, Any], at: str) -> None:
        if p.get("quotes") is not None:
            # The quotes the decision was made over (the runner's kept ones, journaled again).
            self._read_quotes(p["quotes"])
        dec = p.get("decision") or {}
        qid = _opt(dec.get("quote_id"))
        candidates = tuple(Candidate.from_json(c) for c in p.get("candidates") or ())
        ranking = tuple(str(q) for q in dec.get("ranking") or ())
        limits = limits_from_json(p["limits"]) if isinstance(p.get("limits"), Mapping) else None
        self.decision = Decision(
            quote_id=qid,
            reason=_opt(dec.get("reason")),
            ranking=ranking,
            candidates=candidates,
            quotes=self.quotes or (),
            limits=limits,
            strategy=p.get("strategy"),
            decided_at=_opt(p.get("now")),
        )
        self.choice = self._quote(qid) if qid is not None else None
        self.pick = Pick(str(qid), self.choice, str(dec.get("reason") or "")) if qid is not None else None
        self.candidates = candidates
        self.ranking = ranking
        if limits is not None:
            self.limits = limits

    def _fallback(self, p: Mapping[str, Any], at: str) -> None:
        nxt, rejected = str(p.get("next")), _opt(p.get("rejected"))
        self.tried = (*(self.tried or ()), str(rejected))
        self.choice = self._quote(nxt)
        why = f"fallback after {rejected} was refused: {p.get('reason')}"
        self.pick = Pick(nxt, self.choice, why, rejected)
        self.drop_key("create_market_order")

    def _order_refused(self, p: Mapping[str, Any], at: str) -> None:
        self.drop_key("create_market_order")

    def _approve(self, p: Mapping[str, Any], at: str) -> None:
        self.approved = True

    def _order(self, p: Mapping[str, Any], at: str) -> None:
        self.market_order_id = _opt(p.get("market_order_id")) or self.market_order_id
        self.market_order_status = _opt(p.get("status"))
        said = p.get("payment")
        self.market_order_payment = dict(said) if isinstance(said, Mapping) else None

    def _intent_result(self, p: Mapping[str, Any], at: str) -> None:
        if isinstance(p.get("intent"), Mapping):
            self.intent = IntentFacts.from_json(p["intent"])

    def seen(self, tx_id: Any, purpose: str) -> None:
        """Note a transaction the order journaled (first seen first)."""
        if tx_id and not any(t.tx_id == str(tx_id) for t in self.transactions):
            self.transactions = (*self.transactions, TxRef(str(tx_id), purpose))

    def _pay(self, p: Mapping[str, Any], at: str) -> None:
        req = p.get("request")
        try:
            self.request = request_from_json(req) if isinstance(req, Mapping) else None
        except (KeyError, TypeError, ValueError):
            self.request = None  # a hand-made or damaged journal; the readers show what else it holds
        self.txs = _txs(p.get("txs"))
        self.payment_started_at = at
        self.authorization = authorization_of(p.get("authorization"))
        for tx in p.get("txs") or ():
            if isinstance(tx, Mapping):
                self.seen(tx.get("tx_id"), str(tx.get("purpose") or "payment"))

    def _payment_dropped(self, p: Mapping[str, Any], at: str) -> None:
        self.txs = _txs(p.get("txs"))

    def _release_dropped(self, p: Mapping[str, Any], at: str) -> None:
        self.release_txs = _txs(p.get("txs"))

    def _paid(self, p: Mapping[str, Any], at: str) -> None:
        self.paid_tx = _opt(p.get("tx"))
        self.seen(p.get("tx"), "payment")
        self.paid_at = at
        if "proof" in p:
            proof = p.get("proof")
            self.proof = dict(proof) if isinstance(proof, Mapping) else None
        if "payment_status" in p:
            self.payment_status = _opt(p.get("payment_status"))

    def _lock_escrow(self, p: Mapping[str, Any], at: str) -> None:
        self.escrow_proof = EscrowProof(
            str(p.get("transaction_hash")), str(p.get("chain")), str(p.get("escrow_address"))
        )
        self.seen(p.get("transaction_hash"), "escrow-lock")
        self.payment_status = _opt(p.get("payment_status"))

    def _hand_off(self, p: Mapping[str, Any], at: str) -> None:
        h = p.get("handoff")
        self.handoff = Handoff.from_json(h) if isinstance(h, Mapping) else None

    def _execute(self, p: Mapping[str, Any], at: str) -> None:
        o = p.get("outcome")
        self.outcome = Outcome.from_json(o) if isinstance(o, Mapping) else None

    def _acceptance(self, p: Mapping[str, Any], at: str) -> None:
        if p.get("accepted") is False:
            self.acceptance_failure = _opt(p.get("reason"))
        elif p.get("accepted"):
            self.accepted = True

    def _market_confirmed(self, p: Mapping[str, Any], at: str) -> None:
        self.market_confirmed = True
        self.payment_status = _opt(p.get("payment_status"))

    def _release_signed(self, p: Mapping[str, Any], at: str) -> None:
        self.release_txs = _txs(p.get("txs"))
        self.release_started_at = at
        for tx in p.get("txs") or ():
            if isinstance(tx, Mapping):
                self.seen(tx.get("tx_id"), "release")

    def _confirm(self, p: Mapping[str, Any], at: str) -> None:
        if "release_tx" in p:
            self.release_tx = _opt(p.get("release_tx"))
            self.seen(p.get("release_tx"), "release")
        if "payment_status" in p:
            self.payment_status = _opt(p.get("payment_status"))

    def _dispute(self, p: Mapping[str, Any], at: str) -> None:
        reason = _opt(p.get("reason"))
        evidence = p.get("evidence")
        self.dispute = Dispute(
            reason,
            _opt(p.get("dispute_id")),
            dict(evidence) if isinstance(evidence, Mapping) else None,
            self.seq,
            self._hash,
        )
        self.disputed_at = at
        self.error = ErrorFact("DISPUTED", reason)

    def _refund(self, p: Mapping[str, Any], at: str) -> None:
        if "payment_status" in p:
            self.payment_status = _opt(p.get("payment_status"))

    def _fail(self, p: Mapping[str, Any], at: str) -> None:
        if p.get("code") is None:
            return
        message = _opt(p.get("message"))
        recorded = ErrorFact(_opt(p.get("code")), message)
        self.errors = (*self.errors, recorded)
        if "tx" in p:
            # The market refused the payment proof: the money moved, the runner keeps the tx.
            self.paid_tx = _opt(p.get("tx"))
            recorded = ErrorFact(recorded.code, f"{_PROOF_REFUSED}{message}")
        self.error = recorded
        if "candidates" in p:
            self.candidates = tuple(Candidate.from_json(c) for c in p.get("candidates") or ())
        if isinstance(p.get("limits"), Mapping):
            self.limits = limits_from_json(p["limits"])

    def _note_error(self, p: Mapping[str, Any], at: str) -> None:
        if p.get("code") is None:
            return
        recorded = ErrorFact(_opt(p.get("code")), _opt(p.get("message")))
        self.errors = (*self.errors, recorded)
        self.error = recorded


def _opt(v: Any) -> str | None:
    return None if v is None else str(v)


def _txs(v: Any) -> tuple[SignedTx, ...] | None:
    """Journaled signed transactions; None when they are not whole (a hand-made or synthetic journal)."""
    try:
        return tuple(SignedTx.from_json(t) for t in v or ())
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


_STEPS = {
    "submit": FactsFolder._submit,
    "pair": FactsFolder._pair,
    "search": FactsFolder._search,
    "choose": FactsFolder._choose,
    "note:fallback": FactsFolder._fallback,
    "result:create_market_order": FactsFolder._order_refused,
    "approve": FactsFolder._approve,
    "order": FactsFolder._order,
    "result:create_payment_intent": FactsFolder._intent_result,
    "pay": FactsFolder._pay,
    "note:payment_dropped": FactsFolder._payment_dropped,
    "note:release_dropped": FactsFolder._release_dropped,
    "paid": FactsFolder._paid,
    "lock_escrow": FactsFolder._lock_escrow,
    "hand_off": FactsFolder._hand_off,
    "execute": FactsFolder._execute,
    "execute_free": FactsFolder._execute,
    "result:acceptance": FactsFolder._acceptance,
    "result:confirm_market_order": FactsFolder._market_confirmed,
    "note:release_signed": FactsFolder._release_signed,
    "confirm": FactsFolder._confirm,
    "dispute": FactsFolder._dispute,
    "refund": FactsFolder._refund,
    "fail": FactsFolder._fail,
    "note:error": FactsFolder._note_error,
}


_STEPS.update(X402_STEPS)


def fold(events: Iterable[Event | Mapping[str, Any]]) -> OrderFacts:
    """The facts of an order from its events (journal ``Event`` rows or exported dicts), in order."""
    folder = FactsFolder()
    for ev in events:
        folder.apply(ev)
    return folder.facts()
