"""JSON on the wire: exact decimal numbers both ways, and typed readers that name the bad field."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from buyer_agent._time import parse_time
from buyer_agent.sandbox.market._errors import ApiError, invalid

__all__ = [
    "DECIMALS",
    "dumps",
    "human",
    "iso",
    "loads_body",
    "not_found",
    "now",
    "opt_bool",
    "opt_number",
    "opt_object",
    "opt_str",
    "opt_str_list",
    "parse_iso",
    "raw_units",
    "req_str",
]

#: USDC has 6 decimals on both sandbox chains.
DECIMALS = 6

# Decimals are written as bare JSON numbers: json cannot emit a Decimal, so each is swapped for a
# marked string and the quotes are removed afterwards. The random marker cannot occur in user text.
_MARK = "\x00" + secrets.token_hex(6) + ":"
_MARKED = re.compile(r'"\\u0000' + _MARK[1:] + r'(-?[0-9.E+-]+)"')


def _mark(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _MARK + format(value, "f")
    if isinstance(value, Mapping):
        return {k: _mark(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mark(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    """UTF-8 JSON of ``value``; :class:`Decimal` becomes an exact JSON number."""
    text = json.dumps(_mark(value), separators=(",", ":"))
    return _MARKED.sub(r"\1", text).encode("utf-8")


def loads_body(raw: bytes) -> dict[str, Any]:
    """Parse a request body (empty means ``{}``); floats become :class:`Decimal`.

    Raises:
        ApiError: not JSON or not an object (``VALIDATION_ERROR`` naming ``body``).
    """
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid("body", f"not valid JSON ({exc.__class__.__name__})") from exc
    if not isinstance(value, dict):
        raise invalid("body", "must be a JSON object")
    return value


def now() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    """The inverse of :func:`iso`."""
    return parse_time(text)


def human(raw: int, decimals: int = DECIMALS) -> Decimal:
    """Base units to a human amount (``800000`` → ``0.8``)."""
    value = Decimal(raw).scaleb(-decimals).normalize()
    return value.quantize(Decimal(1)) if value == value.to_integral() else value


def raw_units(amount: Decimal | int | str, field: str, decimals: int = DECIMALS) -> int:
    """A human amount to base units, refusing more places than the token has.

    Raises:
        ApiError: not a number, negative, or too precise (``VALIDATION_ERROR`` naming ``field``).
    """
    if isinstance(amount, bool):
        raise invalid(field, "must be a number")
    try:
        value = Decimal(str(amount)) if not isinstance(amount, Decimal) else amount
    except InvalidOperation as exc:
        raise invalid(field, "must be a decimal number") from exc
    if not value.is_finite() or value < 0:
        raise invalid(field, "must be a non-negative number")
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise invalid(field, f"has more than {decimals} decimal places")
    return int(scaled)


def req_str(body: Mapping[str, Any], key: str, where: str = "") -> str:
    """A required non-empty string field."""
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise invalid(where + key, "required non-empty string")
    return value


def opt_str(body: Mapping[str, Any], key: str, where: str = "") -> str | None:
    """An optional string field (``null`` reads as absent)."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(where + key, "must be a string")
    return value


def opt_bool(body: Mapping[str, Any], key: str, where: str = "") -> bool | None:
    """An optional boolean field."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise invalid(where + key, "must be a boolean")
    return value


def opt_number(body: Mapping[str, Any], key: str, where: str = "") -> Decimal | None:
    """An optional JSON number (never a bool), as :class:`Decimal`."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise invalid(where + key, "must be a number")
    number = Decimal(value)
    if not number.is_finite() or number < 0:
        raise invalid(where + key, "must be a non-negative number")
    return number


def opt_object(body: Mapping[str, Any], key: str, where: str = "") -> dict[str, Any] | None:
    """An optional JSON object field."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(where + key, "must be an object")
    return value


def opt_str_list(body: Mapping[str, Any], key: str, where: str = "") -> list[str] | None:
    """An optional list of strings."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(where + key, "must be a list of strings")
    return list(value)


def not_found(what: str, ident: str) -> ApiError:
    """A ``NOT_FOUND`` (404) for one resource."""
    return ApiError(404, "NOT_FOUND", f"{what} {ident!r} not found")
