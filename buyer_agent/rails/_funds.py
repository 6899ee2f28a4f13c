"""The payer's balances, read before anything is signed: a payment the wallet cannot cover is never sent.

A transfer beyond the wallet's token balance is mined and reverts, and burns its gas; one without gas
money is refused by the node, or sits unmined. Both are known before signing from two reads (the
token balance, the gas balance) and the fees the rail is about to sign with, so the rails refuse
there with :class:`~buyer_agent._errors.InsufficientFundsError`, naming what the wallet holds and
what the payment needs.
"""

from __future__ import annotations

from decimal import Decimal

from buyer_agent._errors import InsufficientFundsError
from buyer_agent.networks import Networks

__all__ = ["amount_text", "native_token", "require"]


def amount_text(raw: int, decimals: int, symbol: str) -> str:
    """``raw`` base units as ``"0.5 USDC"`` (exact; no exponent, no trailing zeros)."""
    text = format(Decimal(raw).scaleb(-decimals).normalize(), "f")
    return f"{text} {symbol}"


def native_token(networks: Networks | None, chain: str, default: tuple[str, int]) -> tuple[str, int]:
    """The chain's gas token ``(symbol, decimals)`` from its profile, else ``default``."""
    profile = networks.get(chain) if networks is not None else None
    if profile is not None and profile.native is not None:
        return profile.native.symbol, profile.native.decimals
    return default


def require(
    have: int,
    need: int,
    *,
    decimals: int,
    symbol: str,
    address: str,
    chain: str,
    why: str = "",
) -> None:
    """Raise :class:`InsufficientFundsError` when ``have`` base units are fewer than ``need``.

    Args:
        have: What the wallet holds (base units).
        need: What the payment takes (base units).
        decimals: The asset's decimals, for the message.
        symbol: The asset's symbol.
        address: The wallet.
        chain: Its CAIP-2 chain.
        why: How ``need`` was reckoned (``" (gas: 120000 at 2 gwei)"``), appended to the message.
    """
    if have >= need:
        return
    raise InsufficientFundsError(
        symbol,
        have=amount_text(have, decimals, symbol),
        need=amount_text(need, decimals, symbol),
        address=address,
        chain=chain,
        why=why,
    )
