"""Before pairing: whether any configured rail can pay the order's rail type on the order's chain.

A task may name a chain (``chain: eip155:1``, ``chain: solana``) that none of the agent's rails pays
on: the embedded sandbox's anvil is another chain, the EVM RPC is a node of another network, no
Solana key is set. Without this check the order pairs, searches and fails only when no quote is
eligible. The check asks each rail which chain it pays on (an EVM rail with no fixed chain asks its
node) and refuses, before the market hears of the order, when none can; a rail that cannot say (a
node that does not answer, a third-party rail without a ``chain``) is given the benefit of the
doubt, and so is a runner with no rails at all (the agent itself refuses to start without one): the
payment step still checks everything before signing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from buyer_agent._errors import RailError, UnsupportedRailError

__all__ = ["check_rails_can_pay"]

log = logging.getLogger(__name__)

#: The rail types a task may name (``payment.rail``); None in the task means any of them.
_TASK_RAIL_TYPES = ("wallet", "onchain-escrow", "x402")
_FAMILIES = {"evm": "eip155:", "solana": "solana:"}


async def _rail_chain(rail: Any) -> str | None:
    """The CAIP-2 chain ``rail`` pays on, or None when it cannot tell."""
    chain = getattr(rail, "chain", None)
    if chain:
        return str(chain)
    node_chain = getattr(rail, "node_chain", None)
    if node_chain is None:
        return None
    try:
        return str(await node_chain())
    except RailError as exc:  # the node is down or odd: the payment step will say so
        log.info("cannot ask %s which chain it pays on: %s", getattr(rail, "name", rail), exc)
        return None


async def check_rails_can_pay(rails: Sequence[Any], rail_type: str | None, chain: str | None) -> None:
    """Raise unless some rail in ``rails`` may pay ``rail_type`` on ``chain``.

    Args:
        rails: The agent's payment rails.
        rail_type: The task's ``payment.rail`` (None: any).
        chain: The task's chain: a CAIP-2 id, ``evm`` / ``solana`` (any chain of that family), or None.

    Raises:
        UnsupportedRailError: every rail says it pays elsewhere (or another rail type); nothing was sent.
    """
    if not rails or rail_type == "not-required":
        # A runner without rails (a unit test of searching and choosing) never pays anyway, and a
        # task that buys only what needs no payment needs no rail.
        return
    types = (rail_type,) if rail_type else _TASK_RAIL_TYPES
    family = _FAMILIES.get(chain or "")
    seen: list[str] = []
    concrete = chain is not None and family is None
    for rail in rails:
        # A rail without a fixed chain is asked for its node's only when the task names one chain:
        # for "evm" or "solana" its family is enough, and no node is called before pairing for it.
        paid_on = await _rail_chain(rail) if concrete or getattr(rail, "chain", None) else None
        if paid_on is None:
            return  # it cannot tell: let the payment step decide
        seen.append(f"{getattr(rail, 'name', type(rail).__name__)} on {paid_on}")
        if chain is None or family is not None:
            target = paid_on if family is None or paid_on.startswith(family) else None
        else:
            target = chain if chain == paid_on else None
        if target is not None and any(rail.supports(t, target) for t in types):
            return
    err = UnsupportedRailError(rail_type or "any", chain, seen or ["none configured"])
    err.message = (
        f"no payment rail here pays {' or '.join(map(repr, types))} on {chain or 'any chain'} "
        f"(the agent's rails: {', '.join(seen) or 'none'}); refused before pairing, nothing was sent "
        "to the market: fix payment.chain, or the RPC / keys of that chain"
    )
    raise err
