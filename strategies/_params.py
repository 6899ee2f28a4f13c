"""Strategy params from a task file: numbers as exact Decimals (YAML floats via their shortest text)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from strategies._errors import StrategyError

__all__ = ["to_decimal"]


def to_decimal(value: Any, where: str) -> Decimal:
    """``value`` (a Decimal, int, numeric string, or a float from YAML) as a finite Decimal.

    A float is converted through ``str(x)``, its shortest round-tripping text, so ``0.7`` in YAML
    becomes ``Decimal("0.7")``, never the binary ``0.6999…``. Booleans are refused.

    Raises:
        StrategyError: ``value`` is not a finite number.
    """
    if isinstance(value, bool):
        raise StrategyError(f"{where} must be a number, not {value!r}")
    try:
        if isinstance(value, Decimal):
            dec = value
        elif isinstance(value, int | float):
            dec = Decimal(str(value))
        elif isinstance(value, str):
            dec = Decimal(value.strip())
        else:
            raise StrategyError(f"{where} must be a number, not {type(value).__name__}")
    except InvalidOperation as exc:
        raise StrategyError(f"{where} must be a number, not {value!r}") from exc
    if not dec.is_finite():
        raise StrategyError(f"{where} must be a finite number, not {value!r}")
    return dec
