"""Wire conventions: camelCase on the wire, snake_case in Python, exact numbers both ways."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from itertools import accumulate
from typing import Any

__all__ = ["dumps", "loads", "to_snake", "to_wire", "wire_query"]

_BOUNDARY_1 = re.compile(r"(.)([A-Z][a-z]+)")
_BOUNDARY_2 = re.compile(r"([a-z0-9])([A-Z])")

# Payloads that belong to someone else's contract (a provider's input and result bodies, example
# payloads): their own keys are kept as they are. Response keys are matched in wire spelling,
# request keys in Python spelling, the same set the official SDK keeps.
_OPAQUE_IN_RESPONSE = frozenset({"exampleInput", "exampleOutput", "default", "example", "result"})
_OPAQUE_IN_REQUEST = frozenset({"input"})
# The same payload under its parameter names, before an order's ``input_payload`` becomes ``input``.
_OPAQUE_PARAMS = frozenset({"input", "input_payload"})

# Deeper JSON is refused before parsing: importing py_ecc (via eth-account) raises the recursion
# limit to 100000, so the C parser would overflow the stack on a hostile ``[[[[...`` and crash the
# process instead of raising. No documented answer nests anywhere near this.
MAX_JSON_DEPTH = 200
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


@functools.lru_cache(maxsize=4096)
def _snake_key(name: str) -> str:
    # Cached: the same few hundred keys come back in every answer, and two regex passes per key
    # were a tenth of the client's time decoding a search.
    return _BOUNDARY_2.sub(r"\1_\2", _BOUNDARY_1.sub(r"\1_\2", name)).lower()


def _camel_key(name: str) -> str:
    if "_" not in name:
        return name
    parts = [p for p in name.split("_") if p]
    if not parts:
        return name
    return parts[0].lower() + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _plain(value: Any) -> Any:
    """Request objects (ours, the official SDK's, or mappings) as plain dicts, as the SDK sends them.

    An entry that is ``None`` is left out, and so is an object left empty (a budget with nothing
    set); the server reads both as "not given", where an explicit ``null`` may be refused. A
    provider's ``input`` is the exception: it is sent verbatim (the SDK strips it too).
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain_entries((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, Mapping):
        return _plain_entries(value.items())
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _plain_entries(entries: Iterable[tuple[Any, Any]]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for key, value in entries:
        if value is None:
            continue
        if key in _OPAQUE_PARAMS:
            out[key] = value
            continue
        plain = _plain(value)
        if isinstance(plain, dict) and not plain:
            continue
        out[key] = plain
    return out


# Values that are kept as they are: no call into :func:`_map_keys` for each of them (most of a
# search's values are these).
_LEAVES = frozenset({str, int, bool, float, Decimal, type(None)})


def _map_keys(value: Any, key_fn: Any, opaque: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            name = str(k)
            out[key_fn(name)] = v if name in opaque or type(v) in _LEAVES else _map_keys(v, key_fn, opaque)
        return out
    if isinstance(value, list | tuple):
        return [v if type(v) in _LEAVES else _map_keys(v, key_fn, opaque) for v in value]
    return value


def to_wire(body: Any) -> Any:
    """A request body as sent: dataclasses flattened (``None`` fields dropped), camelCase keys."""
    return _map_keys(_plain(body), _camel_key, _OPAQUE_IN_REQUEST)


def to_snake(data: Any) -> Any:
    """A response body with snake_case keys (opaque payloads kept verbatim)."""
    return _map_keys(data, _snake_key, _OPAQUE_IN_RESPONSE)


def wire_query(query: Mapping[str, Any]) -> dict[str, str]:
    """Query parameters with camelCase names, ``None`` dropped, booleans as ``true``/``false``."""
    out: dict[str, str] = {}
    for key, value in query.items():
        if value is None:
            continue
        out[_camel_key(key)] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _depth(text: str) -> int:
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:  # the common case: cannot be too deep
        return 0
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


def loads(text: str | bytes) -> Any:
    """Parse JSON with every fractional number as an exact ``Decimal`` (never a float).

    Raises:
        ValueError: Not JSON, a NaN/Infinity literal, or nested deeper than ``MAX_JSON_DEPTH``.
    """
    if isinstance(text, bytes | bytearray):
        # As json.loads decodes bytes; a UnicodeDecodeError is a ValueError.
        text = bytes(text).decode(json.detect_encoding(text), "surrogatepass")
    if _depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)


def dumps(value: Any) -> bytes:
    """Serialise JSON with ``Decimal`` as an exact number (``json`` cannot; a float would round)."""
    return _encode(value).encode()


def _encode(value: Any) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be sent as a JSON number")
        return format(value, "f")
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return json.dumps(value)
