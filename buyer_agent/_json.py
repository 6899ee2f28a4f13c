"""JSON text in which a ``Decimal`` is an exact JSON number (the stdlib encoder cannot write one).

A number the market sent (``{"price": 54575.06}``) is parsed as ``Decimal("54575.06")`` and must
come back out as the number ``54575.06``: not a string (a schema saying ``type: number`` would
refuse it) and never through a binary float (which would round it). :func:`dumps` writes exactly
what ``json.dumps`` writes for every other value, so a document without a Decimal is byte for byte
the stdlib's text (the journal's hash chain relies on that).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

__all__ = ["decimal_text", "dumps"]

_quote = json.encoder.encode_basestring
_quote_ascii = json.encoder.encode_basestring_ascii
# Beyond this many places a number is written in exponent form, so a hostile ``1e999999999`` from
# a market costs a few bytes instead of a gigabyte of zeros. Either form reads back as the same
# Decimal, which writes the same text again (the journal re-hashes what it reads).
_PLAIN_PLACES = 1000


def decimal_text(value: Decimal) -> str:
    """``value`` as JSON number text: plain digits (``54575.06``), or ``1E+2000`` when very large/small.

    Raises:
        ValueError: NaN or an infinity, which JSON has no number for.
    """
    if not value.is_finite():
        raise ValueError(f"{value} is not a JSON number")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if exponent >= -_PLAIN_PLACES and value.adjusted() <= _PLAIN_PLACES:
        return format(value, "f")
    return format(value, "E")


def dumps(
    value: Any,
    *,
    indent: int | None = None,
    sort_keys: bool = False,
    ensure_ascii: bool = False,
    default: Callable[[Any], Any] | None = None,
) -> str:
    """``json.dumps(value, ...)`` with every Decimal written as an exact number.

    Separators are ``(",", ":")`` without ``indent`` and ``(",", ": ")`` with it, as the stdlib's
    defaults for an indented document. ``default`` turns any other non-JSON value into JSON.

    Raises:
        TypeError: a value that is not JSON and ``default`` is None.
        ValueError: a NaN or infinite Decimal or float.
    """
    quote = _quote_ascii if ensure_ascii else _quote
    parts = _encode(value, quote, indent, sort_keys, default, 0)
    return "".join(parts)


def _encode(
    value: Any,
    quote: Callable[[str], str],
    indent: int | None,
    sort_keys: bool,
    default: Callable[[Any], Any] | None,
    level: int,
) -> Iterator[str]:
    if isinstance(value, str):
        yield quote(value)
    elif value is None:
        yield "null"
    elif value is True:
        yield "true"
    elif value is False:
        yield "false"
    elif isinstance(value, int):
        yield int.__repr__(value)
    elif isinstance(value, Decimal):
        yield decimal_text(value)
    elif isinstance(value, float):
        yield json.dumps(value, allow_nan=False)
    elif isinstance(value, Mapping):
        yield from _encode_mapping(value, quote, indent, sort_keys, default, level)
    elif isinstance(value, list | tuple):
        yield from _encode_list(value, quote, indent, sort_keys, default, level)
    elif default is not None:
        yield from _encode(default(value), quote, indent, sort_keys, default, level)
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _breaks(indent: int | None, level: int) -> tuple[str, str, str]:
    """(opening break, item separator, closing break) for a container at ``level``."""
    if indent is None:
        return "", ",", ""
    inner = "\n" + " " * (indent * (level + 1))
    return inner, "," + inner, "\n" + " " * (indent * level)


def _encode_mapping(
    value: Mapping[Any, Any],
    quote: Callable[[str], str],
    indent: int | None,
    sort_keys: bool,
    default: Callable[[Any], Any] | None,
    level: int,
) -> Iterator[str]:
    if not value:
        yield "{}"
        return
    items = sorted(value.items()) if sort_keys else list(value.items())
    first, separator, last = _breaks(indent, level)
    colon = ":" if indent is None else ": "
    yield "{" + first
    for i, (key, item) in enumerate(items):
        if i:
            yield separator
        yield quote(_key(key)) + colon
        yield from _encode(item, quote, indent, sort_keys, default, level + 1)
    yield last + "}"


def _encode_list(
    value: list[Any] | tuple[Any, ...],
    quote: Callable[[str], str],
    indent: int | None,
    sort_keys: bool,
    default: Callable[[Any], Any] | None,
    level: int,
) -> Iterator[str]:
    if not value:
        yield "[]"
        return
    first, separator, last = _breaks(indent, level)
    yield "[" + first
    for i, item in enumerate(value):
        if i:
            yield separator
        yield from _encode(item, quote, indent, sort_keys, default, level + 1)
    yield last + "]"


def _key(key: Any) -> str:
    """A mapping key as the stdlib writes it (str, or the JSON text of a number, bool or None)."""
    if isinstance(key, str):
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return float.__repr__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
