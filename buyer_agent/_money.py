"""Money: an integer of base units with its decimals and currency. Never a float."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

__all__ = ["CURRENCY_DECIMALS", "Money"]

#: Decimals assumed for a currency named without them (stablecoins on the rails we pay with).
CURRENCY_DECIMALS: dict[str, int] = {"USDC": 6, "USDT": 6, "USD": 6, "EURC": 6, "PYUSD": 6}

# Enough digits for any uint256 of base units: Decimal's default 28 would round large amounts.
_PRECISION = 100

_TEXT = re.compile(r"^\s*(?P<amount>[0-9]+(?:\.[0-9]+)?)\s*(?P<currency>[A-Za-z][A-Za-z0-9]{1,11})\s*$")


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: ``amount`` base units of ``currency`` with ``decimals`` decimals.

    ``Money(2_500_000, 6, "USDC")`` is 2.50 USDC. Arithmetic and comparison need the same currency
    and decimals; mixing them raises ``ValueError`` rather than guessing a rate.
    """

    amount: int
    decimals: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError(f"Money.amount must be an int of base units, not {type(self.amount).__name__}")
        if not isinstance(self.decimals, int) or not 0 <= self.decimals <= 36:
            raise ValueError(f"Money.decimals must be an int in 0..36, not {self.decimals!r}")
        if not self.currency:
            raise ValueError("Money.currency must be named")

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def of(cls, value: Decimal | str | int, currency: str, decimals: int | None = None) -> Money:
        """Build from a human amount (``Decimal("2.5")``, ``"2.50"``), exactly.

        Raises ``ValueError`` when the amount has more places than the currency has decimals,
        is negative, or is not a number. Floats are refused: they cannot hold money exactly.
        """
        if isinstance(value, float):
            raise TypeError("refusing a float amount; pass a Decimal or a string")
        currency = currency.upper()
        if decimals is None:
            if currency not in CURRENCY_DECIMALS:
                raise ValueError(f"unknown decimals for currency {currency!r}; give them explicitly")
            decimals = CURRENCY_DECIMALS[currency]
        try:
            dec = Decimal(value)
        except (InvalidOperation, ValueError) as exc:
            raise ValueError(f"not an amount: {value!r}") from exc
        if not dec.is_finite():
            raise ValueError(f"not a finite amount: {value!r}")
        if dec < 0:
            raise ValueError(f"negative amount: {value!r}")
        with localcontext(prec=_PRECISION):
            scaled = dec.scaleb(decimals)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} {currency} has more than {decimals} decimal places")
        return cls(int(scaled), decimals, currency)

    @classmethod
    def parse(cls, text: str, decimals: int | None = None) -> Money:
        """Parse ``"2.50 USDC"``."""
        match = _TEXT.match(text) if isinstance(text, str) else None
        if not match:
            raise ValueError(f"not a price like '2.50 USDC': {text!r}")
        return cls.of(match["amount"], match["currency"], decimals)

    @classmethod
    def zero(cls, currency: str, decimals: int | None = None) -> Money:
        """Nothing, in ``currency``."""
        return cls.of(0, currency, decimals)

    # --- views -----------------------------------------------------------------------------

    def to_decimal(self) -> Decimal:
        """The human amount as an exact ``Decimal``."""
        with localcontext(prec=_PRECISION):
            return Decimal(self.amount).scaleb(-self.decimals)

    def amount_str(self) -> str:
        """The human amount as a decimal string with all the currency's places (``"2.500000"``)."""
        if self.decimals == 0:
            return str(self.amount)
        whole, frac = divmod(self.amount, 10**self.decimals)
        return f"{whole}.{frac:0{self.decimals}d}"

    def to_json(self) -> dict[str, Any]:
        """``{"amount": "2.50", "currency": "USDC", "base_units": 2500000, "decimals": 6}``."""
        return {
            "amount": _plain(self.to_decimal()),
            "currency": self.currency,
            "base_units": self.amount,
            "decimals": self.decimals,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Money:
        """Inverse of :meth:`to_json` (base units win when both are present)."""
        if "base_units" in data:
            return cls(int(data["base_units"]), int(data["decimals"]), str(data["currency"]))
        return cls.of(str(data["amount"]), str(data["currency"]), data.get("decimals"))

    def __str__(self) -> str:
        return f"{_plain(self.to_decimal(), min_places=2)} {self.currency}"

    # --- arithmetic ------------------------------------------------------------------------

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if (other.currency, other.decimals) != (self.currency, self.decimals):
            raise ValueError(
                f"currency mismatch: {self.currency}/{self.decimals} vs {other.currency}/{other.decimals}"
            )

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.decimals, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.decimals, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount


def _plain(value: Decimal, min_places: int = 0) -> str:
    """Format a Decimal without exponent, trailing zeros trimmed to ``min_places``."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0")
        whole, _, frac = text.partition(".")
        frac = frac.ljust(min_places, "0")
        return f"{whole}.{frac}" if frac else whole
    return f"{text}.{'0' * min_places}" if min_places else text
