"""What a reader shows of an order's candidates and error: scores named apart, ranking order, one code.

A journaled candidate's ``score`` is the strategy's for an eligible quote and the market's own for an
ineligible one (the strategy never sees those). Readers name the two apart (``market_score``,
``strategy_score``) beside the journaled ``score``, which stays for compatibility. An order's journaled
error message may begin with its code (a market error reads ``BAD_RESPONSE: …``); shown after the code,
it is not repeated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from buyer_agent.workflow import OrderFacts

__all__ = ["error_text", "named_candidates", "strategy_order"]


def _market_scores(facts: OrderFacts) -> dict[str, str]:
    quotes = list(facts.quotes or ())
    if facts.decision is not None:
        quotes += list(facts.decision.quotes)
    return {q.quote_id: format(q.score, "f") for q in quotes}


def named_candidates(candidates: Iterable[Mapping[str, Any]], facts: OrderFacts) -> list[dict[str, Any]]:
    """Each candidate with ``market_score`` (the market's) and ``strategy_score`` (eligible ones only).

    ``market_score`` falls back to the journaled ``score`` of an ineligible quote when the order's
    quotes are not in its facts (that score is the market's).
    """
    market = _market_scores(facts)
    out = []
    for cand in candidates:
        qid = str(cand.get("quote_id"))
        eligible = bool(cand.get("eligible"))
        fallback = None if eligible else cand.get("score")
        out.append(
            {
                **cand,
                "market_score": market.get(qid, fallback),
                "strategy_score": cand.get("score") if eligible else None,
            }
        )
    return out


def strategy_order(
    candidates: Sequence[Mapping[str, Any]], ranking: Sequence[str]
) -> list[Mapping[str, Any]]:
    """The candidates best first: the strategy's ranking (its choice first), then the ineligible ones."""
    place = {qid: i for i, qid in enumerate(ranking)}
    ranked = sorted(
        (c for c in candidates if str(c.get("quote_id")) in place), key=lambda c: place[str(c["quote_id"])]
    )
    rest = [c for c in candidates if str(c.get("quote_id")) not in place]
    return [*ranked, *rest]


def error_text(error: Mapping[str, Any] | None) -> str:
    """``CODE: message`` of an order's error, the message's own leading ``CODE:`` not repeated."""
    if not error:
        return ""
    code = str(error.get("code") or "")
    message = str(error.get("message") or "")
    while code and message.startswith(f"{code}: "):
        message = message[len(code) + 2 :]
    if not code:
        return message
    return f"{code}: {message}" if message and message != code else code
