"""Regenerate the golden journals in tests/golden: ``.venv/bin/python tests/replay/golden_make.py``.

Golden files are committed and replayed in CI; regenerate only when the format version changes (and
keep the old files: they prove old versions still replay).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from replay_orders import Clock, write_order

from buyer_agent.journal import Journal
from buyer_agent.journal._export import export_lines

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _fixed(line: str) -> str:
    header = json.loads(line)
    header["exported_at"] = "2026-11-22T19:30:00.000000Z"
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def main() -> None:
    """Write the v1 journals, and a v0 journal made from the confirmed one."""
    GOLDEN.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        j = Journal(Path(tmp) / "buyer_agent.db", clock=Clock())
        write_order(j, "ord_golden_1")
        write_order(j, "ord_golden_2", disputed=True)
        for oid, name in (("ord_golden_1", "order_confirmed_v1"), ("ord_golden_2", "order_refunded_v1")):
            lines = list(export_lines(j, oid))
            lines[0] = _fixed(lines[0])
            (GOLDEN / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        j.close()
    # v0: the pre-release layout (``event``/``from``/``to``, no ``prev_hash``, header ``state``).
    v1 = (GOLDEN / "order_confirmed_v1.jsonl").read_text(encoding="utf-8").splitlines()
    head = json.loads(v1[0])
    v0_head = {
        "format": head["format"],
        "version": 0,
        "order_id": head["order_id"],
        "state": head["final_state"],
    }
    out = [json.dumps(v0_head)]
    for line in v1[1:]:
        ev = json.loads(line)
        out.append(
            json.dumps(
                {
                    "order_id": ev["order_id"],
                    "seq": ev["seq"],
                    "at": ev["at"],
                    "event": ev["trigger"],
                    "from": ev["src"],
                    "to": ev["dst"],
                    "payload": ev["payload"],
                    "hash": ev["hash"],
                }
            )
        )
    (GOLDEN / "order_confirmed_v0.jsonl").write_text("\n".join(out) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
