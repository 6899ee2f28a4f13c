from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buyer_agent import Money


def test_parse_budget_text() -> None:
    m = Money.parse("2.50 USDC")
    assert m == Money(2_500_000, 6, "USDC")
    assert str(m) == "2.50 USDC"
    assert m.amount_str() == "2.500000"


def test_refuses_float_and_excess_precision() -> None:
    with pytest.raises(TypeError):
        Money.of(2.5, "USDC")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="decimal places"):
        Money.of("0.0000001", "USDC")
    with pytest.raises(ValueError, match="negative"):
        Money.of("-1", "USDC")
    with pytest.raises(TypeError):
        Money(1.0, 6, "USDC")  # type: ignore[arg-type]


def test_mixing_currencies_is_an_error() -> None:
    with pytest.raises(ValueError, match="currency mismatch"):
        _ = Money.parse("1 USDC") + Money.parse("1 USDT")


@given(st.integers(min_value=0, max_value=10**30), st.integers(min_value=0, max_value=18))
def test_json_round_trip_is_exact(units: int, decimals: int) -> None:
    m = Money(units, decimals, "TOK")
    assert Money.from_json(m.to_json()) == m
    assert Money.of(m.to_json()["amount"], "TOK", decimals) == m
    with localcontext(prec=100):
        assert m.to_decimal() * (Decimal(10) ** decimals) == Decimal(units)
