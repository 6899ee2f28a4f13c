"""Forging an export the way an attacker would: edit events, then recompute the whole hash chain."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from buyer_agent.journal._canonical import GENESIS_HASH, event_hash


def forge(path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """Edit the events with ``edit(event)`` and recompute the whole hash chain and the header's head."""
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    prev, out = GENESIS_HASH, []
    for line in lines[1:]:
        ev = json.loads(line)
        edit(ev)
        fields = {k: ev[k] for k in ("order_id", "seq", "at", "trigger", "src", "dst", "payload")}
        ev["prev_hash"], ev["hash"] = prev, event_hash(prev, **fields)
        prev = ev["hash"]
        out.append(json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    header["head_hash"] = prev
    forged = path.with_name("forged.jsonl")
    forged.write_text("\n".join([json.dumps(header), *out]) + "\n")
    return forged
