"""What the demo providers do: check an order's input, and compute the result of a native execute."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Any

from buyer_agent.sandbox.market._catalogue import OPERATION_PRICE, ServiceSpec
from buyer_agent.sandbox.market._errors import invalid

__all__ = ["PRICES", "check_input", "operation_contract", "run_service"]

#: The price feed's quotes: fractions and integers, so a result carries both kinds of JSON number.
PRICES: dict[str, tuple[Decimal, int]] = {
    "BTC-USD": (Decimal("54575.06"), 1200),
    "ETH-USD": (Decimal("2950.5"), 18250),
    "PEAQ-USD": (Decimal("0.0812"), 4_500_000),
    "SOL-USD": (Decimal("142.13"), 96000),
}


def _is_price(spec: ServiceSpec) -> bool:
    return spec.operation == OPERATION_PRICE


def check_input(spec: ServiceSpec, data: dict[str, Any]) -> None:
    """Refuse input the service cannot run on (checked at order create and at execute).

    Raises:
        ApiError: ``VALIDATION_ERROR`` naming the field.
    """
    if spec.execution_mode != "native":
        return
    if _is_price(spec):
        symbol = data.get("symbol")
        if not isinstance(symbol, str) or symbol not in PRICES:
            raise invalid("input.symbol", "one of " + ", ".join(sorted(PRICES)))
        return
    if not isinstance(data.get("data"), str):
        raise invalid("input.data", "required string (the text to hash)")


def run_service(spec: ServiceSpec, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The provider's result: a price quote, or the SHA-256 of ``data`` (garbage from a faulty one)."""
    if _is_price(spec):
        symbol = str(data["symbol"])
        price, volume = PRICES[symbol]
        return {
            "symbol": symbol,
            "price": price,
            "volume": volume,
            "ts": int(now.timestamp()),
            "currency": "USD",
        }
    if spec.faulty:
        return {"sha256": "not-a-hash", "algorithm": "sha256"}
    text = str(data["data"]).encode("utf-8")
    return {"sha256": hashlib.sha256(text).hexdigest(), "algorithm": "sha256", "inputBytes": len(text)}


def operation_contract(spec: ServiceSpec) -> dict[str, Any]:
    """The service's ``operationContracts`` entry: input and output fields, an example input."""
    if _is_price(spec):
        return {
            "operation": spec.operation,
            "inputFields": [{"key": "symbol", "type": "string", "description": "pair, e.g. BTC-USD"}],
            "outputFields": [
                {"key": "symbol", "type": "string", "description": "the pair quoted"},
                {"key": "price", "type": "number", "description": "last price (exact decimal)"},
                {"key": "volume", "type": "integer", "description": "24 h volume in units"},
                {"key": "ts", "type": "integer", "description": "quote time, Unix seconds"},
                {"key": "currency", "type": "string", "description": "quote currency"},
            ],
            "exampleInput": {"symbol": "BTC-USD"},
            "summary": "Latest spot price of input.symbol",
            "notes": list(spec.notes),
        }
    return {
        "operation": spec.operation,
        "inputFields": [{"key": "data", "type": "string", "description": "text to hash (UTF-8)"}],
        "outputFields": [{"key": "sha256", "type": "string", "description": "lower-case hex digest"}],
        "exampleInput": {"data": "hello"},
        "summary": "SHA-256 of input.data",
        "notes": list(spec.notes),
    }
