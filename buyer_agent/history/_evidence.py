"""The dispute evidence bundle of a journaled order, from its events alone (the workflow's own bundle)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from buyer_agent.journal import Event
from buyer_agent.workflow import fold
from buyer_agent.workflow._evidence import dispute_evidence

__all__ = ["build_evidence", "context_from_events"]


def _as_event(e: Event | Mapping[str, Any]) -> Event:
    if isinstance(e, Event):
        return e
    return Event(
        str(e["order_id"]),
        int(e["seq"]),
        str(e["at"]),
        str(e["trigger"]),
        str(e["src"]),
        str(e["dst"]),
        dict(e.get("payload") or {}),
        str(e["prev_hash"]),
        str(e["hash"]),
    )


def context_from_events(events: Sequence[Event | Mapping[str, Any]]) -> dict[str, Any]:
    """The facts the runner keeps in the order's context, from the events alone (:func:`fold`).

    Used for orders whose live context is not at hand (an imported or exported journal).
    """
    return fold(map(_as_event, events)).to_context()


def build_evidence(events: Sequence[Event | Mapping[str, Any]], reason: str | None = None) -> dict[str, Any]:
    """The dispute evidence bundle of an order, bound to its journal hashes.

    When the order was disputed, this is exactly the bundle the workflow attached to the dispute
    (from the ``dispute`` event), plus ``dispute: {seq, hash}`` binding that event. Otherwise it is
    built the same way (:func:`buyer_agent.workflow._evidence.dispute_evidence`) from the events.

    Args:
        events: The order's events (journal ``Event`` rows or exported dicts), in order.
        reason: Why delivery is refused, when the order has no recorded reason.

    Returns:
        A JSON-able dict: ``reason``, ``acceptance_failure``, ``quote``, ``policy_decision``,
        ``payment``, ``outcome``, ``market_order_id``, ``journal`` (fact -> ``{seq, hash}``), and
        ``order_id``, ``head`` (``{seq, hash}`` of the last event).
    """
    evs = [_as_event(e) for e in events]
    if not evs:
        raise ValueError("no events")
    facts = fold(evs)
    disputed = facts.dispute
    if disputed is not None and disputed.evidence is not None:
        bundle = dict(disputed.evidence)
        bound = {"seq": disputed.seq, "hash": disputed.hash}
        bundle["journal"] = {**dict(bundle.get("journal") or {}), "dispute": bound}
    else:
        why = reason or facts.acceptance_failure or "no dispute recorded"
        if facts.acceptance_failure and not reason:
            why = f"delivery failed acceptance: {why}"
        bundle = dispute_evidence(evs, facts.to_context(), str(why))
    bundle["order_id"] = evs[0].order_id
    bundle["head"] = _bind(evs[-1])
    return bundle


def _bind(ev: Event) -> dict[str, Any]:
    return {"seq": ev.seq, "hash": ev.hash}
