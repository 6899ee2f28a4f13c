"""Quote snapshots and hypothesis generators shared by the strategies tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from buyer_agent._money import Money
from buyer_agent.workflow._eligibility import Limits
from strategies import QuoteView

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
EVM = "eip155:31337"
SOL = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"
SERVICES = ("svc_a", "svc_b", "svc_c", "svc_d", "svc_e")
SKILLS = ("sha256", "ocr", "tts")
RAILS = ("wallet", "onchain-escrow", "x402")
CHAINS = (EVM, SOL, None)


def usdc(text: str) -> Money:
    return Money.of(text, "USDC", 6)


def quote(
    quote_id: str,
    price: str | Money = "1.00",
    score: str = "0.5",
    *,
    service_id: str | None = None,
    skill_key: str = "sha256",
    execution_mode: str = "native",
    rail: str = "wallet",
    chain: str | None = EVM,
    expires_at: datetime = T0 + timedelta(minutes=5),
    latency_ms: int | None = None,
    reputation: str | None = None,
) -> QuoteView:
    """A quote snapshot with plain defaults (native, EVM wallet rail, fresh for five minutes)."""
    return QuoteView(
        quote_id=quote_id,
        service_id=service_id or f"svc_{quote_id}",
        provider_key=f"prov_{quote_id}",
        skill_key=skill_key,
        price=price if isinstance(price, Money) else usdc(price),
        score=Decimal(score),
        execution_mode=execution_mode,
        rail=rail,
        chain=chain,
        expires_at=expires_at,
        latency_ms=latency_ms,
        reputation=Decimal(reputation) if reputation is not None else None,
    )


def open_limits(budget: str = "2.50") -> Limits:
    """Limits with only an order budget."""
    return Limits(
        order_budget=usdc(budget), per_transaction_limit=None, daily_limit=None, spent_today=usdc("0")
    )


def pay_anything(rail: str, chain: str | None) -> bool:
    return chain is not None


# Round prices repeat often, so ties (and their tie-breaks) get exercised.
_amounts = st.integers(min_value=0, max_value=4_000_000) | st.sampled_from((500_000, 1_000_000, 2_000_000))
_decimals = st.decimals(min_value=0, max_value=1, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def quote_views(draw: Any, quote_id: str) -> QuoteView:
    """One random quote: mostly USDC with 6 decimals, sometimes another currency or decimals."""
    currency, decimals = draw(st.sampled_from([("USDC", 6)] * 10 + [("EUR", 2), ("USDC", 18)]))
    return QuoteView(
        quote_id=quote_id,
        service_id=draw(st.sampled_from(SERVICES)),
        provider_key=draw(st.sampled_from(("p1", "p2", "p3"))),
        skill_key=draw(st.sampled_from(SKILLS)),
        price=Money(draw(_amounts) * (10**12 if decimals == 18 else 1), decimals, currency),
        score=draw(_decimals),
        execution_mode=draw(st.sampled_from(("native", "native", "native", "external-handoff"))),
        rail=draw(st.sampled_from(RAILS)),
        chain=draw(st.sampled_from(CHAINS)),
        expires_at=T0 + timedelta(seconds=draw(st.integers(min_value=-30, max_value=600))),
        latency_ms=draw(st.none() | st.integers(min_value=1, max_value=2000)),
        reputation=draw(st.none() | _decimals),
    )


@st.composite
def quote_sets(draw: Any, max_size: int = 8) -> list[QuoteView]:
    """Random quotes with unique ids (the market never repeats a quote id within one search)."""
    n = draw(st.integers(min_value=0, max_value=max_size))
    ids = draw(st.lists(st.integers(min_value=0, max_value=99), min_size=n, max_size=n, unique=True))
    return [draw(quote_views(f"q{i:02d}")) for i in ids]


def _maybe(inner: Any) -> Any:
    """``inner`` a fifth of the time, else None: most policies leave most limits unset."""
    return st.sampled_from((False, False, False, False, True)).flatmap(lambda on: inner if on else st.none())


@st.composite
def limits(draw: Any, prices: tuple[int, ...] = ()) -> Limits:
    """Random budgets and delegation policies (allow- and deny-lists over the same small pools).

    Biased towards permissive policies, so most sets keep several eligible quotes to choose between:
    budgets and limits are often one of the quotes' own prices (``prices``, in base units) or above all.
    """

    def subset(pool: tuple[str, ...], size: int) -> frozenset[str]:
        found: frozenset[str] | None = draw(
            _maybe(st.frozensets(st.sampled_from(pool), min_size=1, max_size=size))
        )
        return found or frozenset()

    top = max(prices, default=0) + 1_000_000
    # Mostly above every price (listed first: hypothesis favours early elements), else one of the prices.
    amount = st.sampled_from((top, top, *prices, top)) | st.integers(min_value=0, max_value=top)

    def usdc(a: int) -> Money:
        return Money(a, 6, "USDC")

    daily = draw(_maybe(amount))
    return Limits(
        order_budget=usdc(draw(amount)),
        per_transaction_limit=draw(_maybe(amount.map(usdc))),
        daily_limit=None if daily is None else usdc(daily + top),
        spent_today=usdc(draw(st.sampled_from((0, top)) | st.integers(min_value=0, max_value=top))),
        allowed_service_ids=subset(SERVICES, 4),
        denied_service_ids=subset(SERVICES, 2),
        allowed_skill_keys=subset(SKILLS, 2),
        denied_skill_keys=subset(SKILLS, 1),
    )


@st.composite
def scenarios(draw: Any, max_size: int = 8) -> tuple[list[QuoteView], Limits]:
    """Quotes and limits drawn together, so budgets fall among the prices."""
    quotes = draw(quote_sets(max_size))
    prices = tuple(q.price.amount for q in quotes if (q.price.currency, q.price.decimals) == ("USDC", 6))
    return quotes, draw(limits(prices))


_PAIRS = tuple((r, c) for r in RAILS for c in CHAINS)
#: The (rail, chain) pairs the buyer can pay: all but a few.
payable = st.frozensets(st.sampled_from(_PAIRS), max_size=2).map(lambda gone: frozenset(_PAIRS) - gone)
