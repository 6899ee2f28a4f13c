"""Decoding snake_cased JSON into the frozen model dataclasses, checking every field's type.

A field's annotation says what is accepted: ``str``, ``int``, ``bool``, ``Decimal`` (an exact
number; with ``metadata={"amount": True}`` also a numeric string, and never negative),
``Secret``, ``Mapping[str, Any]``, ``tuple[X, ...]``, another model, ``X | None`` and ``Any``.
``metadata={"aliases": (...)}`` lists the wire names a field may come under. A field named
``extra`` collects the keys the model does not name, so nothing the market sends is lost.
Anything else is ``INVALID_RESPONSE_SHAPE`` naming the path of the bad field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from buyer_agent._errors import OrchestrationApiError
from buyer_agent._redact import Secret
from buyer_agent.market._codes import INVALID_RESPONSE_SHAPE

__all__ = ["ShapeError", "decode", "shape_error"]

T = TypeVar("T")

# Integers beyond this are not ids, counts or base-unit amounts any market sends: refusing them
# keeps a hostile answer from making the client build huge numbers.
_MAX_DIGITS = 78


class ShapeError(Exception):
    """A body that does not match the model (internal; becomes INVALID_RESPONSE_SHAPE)."""

    def __init__(self, path: str, expected: str) -> None:
        super().__init__(f"{path}: expected {expected}")
        self.path = path
        self.expected = expected


def shape_error(exc: ShapeError, status_code: int = 0) -> OrchestrationApiError:
    """The public error for a malformed body."""
    return OrchestrationApiError(
        INVALID_RESPONSE_SHAPE,
        f"the market's answer does not match the documented shape: {exc}",
        status_code=status_code,
        details={"field": exc.path, "expected": exc.expected},
    )


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def decode(cls: type[T], data: Any, path: str = "item") -> T:
    """Build ``cls`` from a snake_cased mapping, or raise :class:`ShapeError`."""
    if not isinstance(data, Mapping):
        raise ShapeError(path, "an object")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    known: set[str] = set()
    has_extra = False
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name == "extra":
            has_extra = True
            continue
        names = tuple(f.metadata.get("aliases", (f.name,)))
        known.update(names)
        where = f"{path}.{f.name}"
        key = next((n for n in names if data.get(n) is not None), None)
        if key is None:
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                continue
            if _optional(hints[f.name]):
                values[f.name] = None
                continue
            raise ShapeError(where, "a value (the field is required)")
        values[f.name] = _value(hints[f.name], data[key], f"{path}.{key}", bool(f.metadata.get("amount")))
    if has_extra:
        values["extra"] = {k: v for k, v in data.items() if k not in known}
    return cls(**values)


def _optional(tp: Any) -> bool:
    return _is_union(tp) and type(None) in typing.get_args(tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _value(tp: Any, value: Any, path: str, amount: bool) -> Any:
    if tp is Any:
        return value
    if _is_union(tp):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        errors: list[ShapeError] = []
        for option in options:
            try:
                return _value(option, value, path, amount)
            except ShapeError as exc:
                errors.append(exc)
        raise errors[0]
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, list):
            raise ShapeError(path, "a list")
        (item_tp, _ellipsis) = typing.get_args(tp)
        return tuple(_value(item_tp, v, f"{path}[{i}]", amount) for i, v in enumerate(value))
    if origin in (Mapping, dict) or tp is dict:
        if not isinstance(value, Mapping):
            raise ShapeError(path, "an object")
        return dict(value)
    if typing.get_origin(tp) is typing.Literal:
        if value not in typing.get_args(tp):
            raise ShapeError(path, " or ".join(repr(a) for a in typing.get_args(tp)))
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ShapeError(path, "a string")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ShapeError(path, "true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int) or len(str(abs(value))) > _MAX_DIGITS:
            raise ShapeError(path, "an integer")
        return value
    if tp is Decimal:
        return _decimal(value, path, amount)
    if tp is Secret:
        if not isinstance(value, str):
            raise ShapeError(path, "a string")
        return Secret(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return decode(tp, value, path)
    raise TypeError(f"no decoder for {tp!r} at {path}")  # a bug in a model, not in the answer


def _decimal(value: Any, path: str, amount: bool) -> Decimal:
    if isinstance(value, bool):
        raise ShapeError(path, "a number")
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif amount and isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ShapeError(path, "a decimal amount") from None
    else:
        raise ShapeError(path, "a number")
    if not number.is_finite() or number.adjusted() > _MAX_DIGITS:
        raise ShapeError(path, "a finite number")
    if amount and number < 0:
        raise ShapeError(path, "an amount of zero or more")
    return number
