"""The one canonical JSON encoder reproduces the hash of every event of the golden journals."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from buyer_agent.journal._canonical import GENESIS_HASH, dumps, encode_clean, event_hash

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
    assert dumps({"b": 1, "a": ["ü", Decimal("0.50")]}) == '{"a":["ü","0.50"],"b":1}'
    assert encode_clean({"z": None, "a": True}) == '{"a":true,"z":null}'
