"""The token allowlist, checked before anything is signed.

A market (or anyone who can alter its answers) names the token contract an order is paid in. The
agent pays only a contract it knows for that symbol on that chain: the network profile's, or one the
task allowlists (``payment.tokens: {USDC: "0x…"}``), with the profile's decimals. Anything else is
refused as ``UNKNOWN_TOKEN`` naming the chain, the symbol and both addresses; nothing is signed.

A chain with no profile at all (a private dev chain) is pinned only by the task's allowlist; with
neither, the intent's token passes here and only the quote-versus-intent comparison applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from buyer_agent._money import Money
from buyer_agent.networks._profiles import Networks, same_address

__all__ = ["UNKNOWN_TOKEN", "Refusal", "check_token"]

UNKNOWN_TOKEN = "UNKNOWN_TOKEN"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a payment is not signed: an error code, one line, and the facts for the journal."""

    code: str
    message: str
    payload: dict[str, Any] = field(default_factory=dict)


def _intent_token(intent: Mapping[str, Any], choice: Mapping[str, Any]) -> str | None:
    rail = intent.get("rail") or {}
    value = rail.get("token_address") or rail.get("token_mint") or choice.get("token_address")
    value = value or choice.get("token_mint")
    return str(value) if value else None


def check_token(
    intent: Mapping[str, Any],
    choice: Mapping[str, Any],
    price: Money,
    allowlist: Mapping[str, str],
    networks: Networks,
) -> Refusal | None:
    """Refuse a payment intent whose token is not the one the agent knows for its symbol and chain.

    Args:
        intent: The journaled payment intent (``intent_facts``).
        choice: The chosen quote's facts (its ``chain``).
        price: The quote's price: its currency is the token's symbol, its decimals the quote's.
        allowlist: The task's ``payment.tokens`` (symbol → contract or mint).
        networks: The agent's network profiles.
    """
    rail = intent.get("rail") or {}
    chain = str(rail.get("chain") or choice.get("chain") or "")
    symbol = price.currency.upper()
    address = _intent_token(intent, choice)
    raw_decimals = rail.get("token_decimals")
    decimals = int(raw_decimals) if raw_decimals is not None else price.decimals
    profile = networks.get(chain) if chain else None
    # An x402 authorization is signed for the chain's EIP-3009 token (its own entry where it has one).
    x402 = str(choice.get("rail") or rail.get("type") or "") == "x402"
    known = None if profile is None else profile.x402_token(symbol) if x402 else profile.token(symbol)
    allowed = next((a for s, a in allowlist.items() if s.upper() == symbol), None)
    if profile is None and allowed is None:
        return None
    where = profile.chain if profile is not None else chain

    def refuse(reason: str, expected: str | None) -> Refusal:
        return Refusal(
            UNKNOWN_TOKEN,
            f"{reason} on {where}: the payment intent names {symbol} at {address}, "
            f"the agent knows {symbol} at {expected or 'no contract'}; nothing was signed",
            {
                "chain": where,
                "symbol": symbol,
                "intent_token": address,
                "expected_token": expected,
                "intent_decimals": decimals,
                "expected_decimals": known.decimals if known is not None else None,
                "profile": profile.name if profile is not None else None,
                "allowlisted": allowed,
            },
        )

    if address is None:
        return refuse("the payment intent names no token", allowed or (known.address if known else None))
    if allowed is not None and same_address(allowed, address):
        if known is not None and known.decimals != decimals:
            return refuse(f"{symbol} has {known.decimals} decimals, not {decimals},", allowed)
        return None
    if known is None:
        hint = (
            f"not the contract the task allowlists for {symbol}"
            if allowed is not None
            else f"the profile {profile.name if profile else where} lists no {symbol} "
            "(name its contract in the task's payment.tokens)"
        )
        return refuse(f"unknown token: {hint}", allowed)
    if not known.matches(address):
        return refuse(f"unknown token: not the profile's {symbol} contract", known.address)
    if known.decimals != decimals:
        return refuse(f"{symbol} has {known.decimals} decimals, not {decimals},", known.address)
    return None
