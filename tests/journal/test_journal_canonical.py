"""The one canonical JSON encoder reproduces the hash of every event of the golden journals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buyer_agent.journal._canonical import GENESIS_HASH, dumps, encode_clean, event_hash, format_at, jsonable

# Format 0 carried no hashes (replay migrates it); every later format is hash-chained.
GOLDEN = [
    p
    for p in sorted((Path(__file__).resolve().parents[1] / "golden").glob("*.jsonl"))
    if json.loads(p.read_text(encoding="utf-8").splitlines()[0])["version"] >= 1
]


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_the_canonical_encoder_gives_the_golden_hashes(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    events = [json.loads(line, parse_float=Decimal) for line in lines[1:]]
    assert events
    prev = GENESIS_HASH
    for ev in events:
        assert ev["prev_hash"] == prev
        digest = event_hash(
            prev,
            order_id=ev["order_id"],
            seq=ev["seq"],
            at=ev["at"],
            trigger=ev["trigger"],
            src=ev["src"],
            dst=ev["dst"],
            payload=ev["payload"],
        )
        assert digest == ev["hash"], (path.name, ev["seq"])
        prev = digest


def test_canonical_text_is_sorted_compact_and_keeps_utf8() -> None:
    # A Decimal is the exact JSON number it is (issue 14: a market's 0.50 is not the text "0.50").
    assert dumps({"b": 1, "a": ["ü", Decimal("0.50")]}) == '{"a":["ü",0.50],"b":1}'
    assert dumps({"b": 1, "a": ["ü", "0.50"]}) == '{"a":["ü","0.50"],"b":1}'
    assert encode_clean({"z": None, "a": True}) == '{"a":true,"z":null}'


@pytest.mark.parametrize(
    "number",
    [
        "54575.06",
        "1200",
        "-0.000",
        "0.0000001",
        "1E+2",
        "1.5E+100000",
        "-7.25E-3000",
        "12345678901234567890.5",
    ],
)
def test_a_number_reads_back_to_the_same_text_and_hash(number: str) -> None:
    # The journal hashes the text it writes; replay parses it (fractions as Decimal) and hashes it
    # again: both must agree for any number a market may send, and never through a float.
    payload = {"outcome": {"result": {"price": json.loads(number, parse_float=Decimal), "s": "54575.06"}}}
    text = dumps(payload)
    again = json.loads(text, parse_float=Decimal)
    assert dumps(again) == text
    assert isinstance(again["outcome"]["result"]["s"], str)
    assert not isinstance(again["outcome"]["result"]["price"], float | str)
    assert len(text) < 200  # a huge exponent stays short (exponent form), never a gigabyte of zeros
    hashed = event_hash(
        GENESIS_HASH, order_id="o", seq=1, at="t", trigger="x", src="a", dst="a", payload=payload
    )
    assert hashed == event_hash(
        GENESIS_HASH, order_id="o", seq=1, at="t", trigger="x", src="a", dst="a", payload=again
    )


def test_nan_and_infinity_are_refused() -> None:
    for bad in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(TypeError):
            dumps({"x": Decimal(bad)})


# A day inside datetime's range at each end, so moving to UTC cannot leave it.
@given(moment=st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30), timezones=st.timezones()))
def test_event_times_keep_their_one_text_form(moment: datetime) -> None:
    """Every journaled time is UTC with six fraction digits and a Z, as the journals already hold them.

    The hash of every event covers this text, so the form may not drift with how it is made.
    """
    utc = moment.astimezone(UTC)
    if utc.year < 1000:
        expected = utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    else:
        expected = utc.isoformat(timespec="microseconds").removesuffix("+00:00") + "Z"
    assert format_at(moment) == expected


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_at(datetime(2026, 1, 2, 3, 4, 5))


def test_plain_lists_and_dicts_come_out_equal_and_floats_in_them_are_still_refused() -> None:
    value = {"quotes": [{"price": Decimal("1.5"), "tags": ["a", ("b", 1)]}, None]}
    assert jsonable(value) == {"quotes": [{"price": Decimal("1.5"), "tags": ["a", ["b", 1]]}, None]}
    with pytest.raises(TypeError, match="float"):
        jsonable({"quotes": [1.5]})
