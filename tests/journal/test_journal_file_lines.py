"""Each line of a journal file is read exactly as ``json.loads`` reads it: same values, same refusals.

The replay reads millions of lines, so it calls the JSON scanner itself rather than through
``JSONDecoder.decode``; these tests hold the two to the same answers on valid, spaced and broken lines.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buyer_agent.journal._export import _decode_line

_REFERENCE = json.JSONDecoder(parse_float=Decimal).decode

_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _same(text: str) -> None:
    try:
        expected: Any = ("value", _REFERENCE(text))
    except ValueError as exc:
        expected = ("refused", type(exc).__name__)
    try:
        got: Any = ("value", _decode_line(text))
    except ValueError as exc:
        got = ("refused", type(exc).__name__)
    assert got == expected, text


_BLANKS = st.sampled_from(["", " ", "\t", "\r\n "])


@given(value=_values, before=_BLANKS, after=_BLANKS)
def test_valid_lines_decode_to_the_same_values(value: Any, before: str, after: str) -> None:
    _same(before + json.dumps(value, default=str, ensure_ascii=False) + after)


@given(value=_values, cut=st.integers(min_value=0), extra=st.text(max_size=5))
def test_broken_lines_are_refused_alike(value: Any, cut: int, extra: str) -> None:
    text = json.dumps(value, default=str, ensure_ascii=False)
    _same(text[: cut % (len(text) + 1)] + extra)


@pytest.mark.parametrize(
    "text",
    ['{"a": 1} x', '{"a": 1}{"b": 2}', "", "   ", "{", "}", "nul", '{"n": 1.10}', '{"n": 1e400}', "[1,]"],
)
def test_the_edge_cases_agree(text: str) -> None:
    _same(text)


def test_numbers_with_a_fraction_stay_exact() -> None:
    assert _decode_line('{"amount": 0.10}') == {"amount": Decimal("0.10")}
