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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


#: Decodes one value found at a path (the path is for the error only).
_Decoder = Callable[[Any, str], Any]

# What each model and each annotation needs is worked out once, on first use: reading the type hints
# and fields again for every answer took most of the client's decoding time (a search's answer holds
# hundreds of values).
_MODELS: dict[type, _Decoder] = {}


def decode(cls: type[T], data: Any, path: str = "item") -> T:
    """Build ``cls`` from a snake_cased mapping, or raise :class:`ShapeError`."""
    model = _MODELS.get(cls)
    if model is None:
        model = _MODELS[cls] = _model(cls)
    result: T = model(data, path)
    return result


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    #: The wire names it may come under, in order of preference.
    names: tuple[str, ...]
    #: Left out of the constructor call when absent (the model gives it a default).
    has_default: bool
    #: ``X | None``: None when absent.
    optional: bool
    value: _Decoder


def _model(cls: type) -> _Decoder:
    hints = typing.get_type_hints(cls)
    fields: list[_Field] = []
    known: set[str] = set()
    has_extra = False
    for f in dataclasses.fields(cls):
        if f.name == "extra":
            has_extra = True
            continue
        names = tuple(f.metadata.get("aliases", (f.name,)))
        known.update(names)
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        value = _compile(hints[f.name], bool(f.metadata.get("amount")))
        fields.append(_Field(f.name, names, has_default, _optional(hints[f.name]), value))
    named = frozenset(known)

    def model(data: Any, path: str) -> Any:
        if not isinstance(data, Mapping):
            raise ShapeError(path, "an object")
        values: dict[str, Any] = {}
        for f in fields:
            key = None
            for name in f.names:
                if data.get(name) is not None:
                    key = name
                    break
            if key is None:
                if f.has_default:
                    continue
                if f.optional:
                    values[f.name] = None
                    continue
                raise ShapeError(f"{path}.{f.name}", "a value (the field is required)")
            values[f.name] = f.value(data[key], f"{path}.{key}")
        if has_extra:
            values["extra"] = {k: v for k, v in data.items() if k not in named}
        return cls(**values)

    return model


def _optional(tp: Any) -> bool:
    return _is_union(tp) and type(None) in typing.get_args(tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _compile(tp: Any, amount: bool) -> _Decoder:
    """The decoder of a value annotated ``tp`` (``amount``: a field marked as an amount)."""
    if tp is Any:
        return lambda value, path: value
    if _is_union(tp):
        return _union([_compile(a, amount) for a in typing.get_args(tp) if a is not type(None)])
    origin = typing.get_origin(tp)
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        return _tuple(_compile(item_tp, amount))
    if origin in (Mapping, dict) or tp is dict:
        return _mapping
    if origin is typing.Literal:
        return _literal(typing.get_args(tp))
    if tp is str:
        return _checked(str, "a string")
    if tp is bool:
        return _checked(bool, "true or false")
    if tp is int:
        return _int
    if tp is Decimal:
        return lambda value, path: _decimal(value, path, amount)
    if tp is Secret:
        return _secret
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return lambda value, path: decode(tp, value, path)

    def unknown(value: Any, path: str) -> Any:
        raise TypeError(f"no decoder for {tp!r} at {path}")  # a bug in a model, not in the answer

    return unknown


def _union(options: list[_Decoder]) -> _Decoder:
    def union(value: Any, path: str) -> Any:
        if value is None:
            return None
        errors: list[ShapeError] = []
        for option in options:
            try:
                return option(value, path)
            except ShapeError as exc:
                errors.append(exc)
        raise errors[0]

    return union


def _tuple(item: _Decoder) -> _Decoder:
    def items(value: Any, path: str) -> Any:
        if not isinstance(value, list):
            raise ShapeError(path, "a list")
        return tuple(item(v, f"{path}[{i}]") for i, v in enumerate(value))

    return items


def _mapping(value: Any, path: str) -> Any:
    if not isinstance(value, Mapping):
        raise ShapeError(path, "an object")
    return dict(value)


def _literal(allowed: tuple[Any, ...]) -> _Decoder:
    def literal(value: Any, path: str) -> Any:
        if value not in allowed:
            raise ShapeError(path, " or ".join(repr(a) for a in allowed))
        return value

    return literal


def _checked(kind: type, expected: str) -> _Decoder:
    def checked(value: Any, path: str) -> Any:
        if not isinstance(value, kind):
            raise ShapeError(path, expected)
        return value

    return checked


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or len(str(abs(value))) > _MAX_DIGITS:
        raise ShapeError(path, "an integer")
    return value


def _secret(value: Any, path: str) -> Secret:
    if not isinstance(value, str):
        raise ShapeError(path, "a string")
    return Secret(value)


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
