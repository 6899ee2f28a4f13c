"""Export, import, replay and evidence over journals written through the real Journal API."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from replay_orders import write_order

from buyer_agent.cli import main
from buyer_agent.history._evidence import build_evidence
from buyer_agent.history._replay import (
    replay_events,
    replay_file,
    replay_order,
    synthetic_journal,
    synthetic_orders,
)
from buyer_agent.history._timeline import build_timeline
from buyer_agent.journal import Journal
from buyer_agent.journal._export import export_lines

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
# The well-known anvil dev key (the sandbox's demo buyer) must never reach a journal or an export.
ANVIL_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def _export(journal: Journal, order_id: str = "ord_golden_1") -> list[str]:
    return list(export_lines(journal, order_id))


def test_round_trip_export_import_replay(
    journal: Journal, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUYER_AGENT_EVM_KEY", ANVIL_KEY)  # the payer's key: the export is signed
    write_order(journal)
    src_dir = journal.path.parent  # type: ignore[union-attr]
    out = tmp_path / "ord.jsonl"
    assert main(["export", "ord_golden_1", "-o", str(out), "--state-dir", str(src_dir)]) == 0
    other = tmp_path / "elsewhere"
    assert main(["import", str(out), "--state-dir", str(other)]) == 0
    # Importing the identical journal again is a no-op, not an error.
    assert main(["import", str(out), "--state-dir", str(other)]) == 0
    capsys.readouterr()
    assert main(["replay", "ord_golden_1", "--state-dir", str(other), "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    original = replay_order(journal, "ord_golden_1")
    assert imported["verified"] is True
    assert imported["state"] == original.state == "confirmed"
    assert imported["events"] == original.count == 14
    assert imported["timeline"] == json.loads(json.dumps(build_timeline(original.events), default=str))
    tl = imported["timeline"]
    assert [s["state"] for s in tl["states"]] == [
        "created", "paired", "searched", "quoted", "ordered", "paying", "paid", "executed", "confirmed",
    ]  # fmt: skip
    assert tl["quote"]["service_id"] == "svc_hash_budget"
    assert tl["quote"]["price"] == {"amount": "0.80", "currency": "USDC"}
    # The quote chosen and why: the strategy's decision as recorded, with its ranking and candidates.
    assert tl["quote"]["why"] == "cheapest eligible quote: 0.80 USDC"
    decision = tl["decision"]
    assert decision["strategy"] == "cheapest" and decision["reason"] == "cheapest eligible quote: 0.80 USDC"
    assert decision["quote_id"] == "q_svc_hash_budget"
    assert decision["ranking"] == ["q_svc_hash_budget", "q_svc_hash_fast"]
    assert {c["service_id"]: c["eligible"] for c in decision["candidates"]} == {
        "svc_hash_budget": True, "svc_hash_fast": True, "svc_hash_premium": False, "svc_hash_denied": False,
    }  # fmt: skip
    assert main(["replay", "ord_golden_1", "--state-dir", str(other)]) == 0
    text = capsys.readouterr().out
    assert "quote: q_svc_hash_budget (svc_hash_budget) 0.80 USDC" in text
    assert "— cheapest eligible quote: 0.80 USDC" in text
    assert tl["transactions"][0]["tx_id"] == "0x" + "ab" * 32
    assert tl["spent"] == {"amount": "0.80", "currency": "USDC"}
    assert tl["states"][0]["seconds"] == "0.250000"


def test_import_refuses_a_different_order_with_the_same_id(journal: Journal, tmp_path: Path) -> None:
    write_order(journal)
    out = tmp_path / "a.jsonl"
    out.write_text("\n".join(_export(journal)) + "\n")
    other = Journal(tmp_path / "other" / "buyer_agent.db")
    write_order(other, disputed=True)
    other.close()
    assert main(["import", str(out), "--state-dir", str(tmp_path / "other")]) == 1


def test_import_refuses_a_broken_chain(journal: Journal, tmp_path: Path) -> None:
    write_order(journal)
    lines = _export(journal)
    lines[4] = lines[4].replace("srch_1", "srch_2")
    out = tmp_path / "bad.jsonl"
    out.write_text("\n".join(lines) + "\n")
    assert main(["import", str(out), "--state-dir", str(tmp_path / "dst")]) == 1
    assert main(["import", str(tmp_path / "missing.jsonl"), "--state-dir", str(tmp_path / "dst")]) == 2


def _replay(lines: list[str]) -> Any:
    return replay_file("<test>", lines=lines)


def test_any_changed_payload_byte_is_named_by_seq(journal: Journal) -> None:
    write_order(journal)
    lines = _export(journal)
    for index in range(1, len(lines)):
        line = lines[index]
        seq = json.loads(line)["seq"]
        start = line.index('"payload":') + len('"payload":')
        end = line.index(',"prev_hash":')
        # Every byte of the payload, changed to another printable byte.
        for pos in range(start, end):
            ch = line[pos]
            for repl in ("x" if ch != "x" else "y",):
                # Lines after the edited one cannot change where the first breakage is.
                bad = lines[: index + 1]
                bad[index] = line[:pos] + repl + line[pos + 1 :]
                result = _replay(bad)
                assert result.breakage is not None, (seq, pos)
                assert result.breakage.seq == seq, (seq, pos, result.breakage)


def test_reordered_or_deleted_events_are_named(journal: Journal) -> None:
    write_order(journal)
    lines = _export(journal)
    swapped = [*lines]
    swapped[4], swapped[5] = swapped[5], swapped[4]
    r = _replay(swapped)
    assert r.breakage is not None and r.breakage.seq == 5 and "event 4" in r.breakage.reason
    deleted = lines[:7] + lines[8:]
    r = _replay(deleted)
    assert r.breakage is not None and r.breakage.seq == 8 and "event 7 is missing" in r.breakage.reason
    # Cutting the tail keeps a valid chain; the header's count and head hash catch it.
    r = _replay(lines[:-1])
    assert r.breakage is not None and r.breakage.seq == 14
    assert not r.verified


def test_an_illegal_transition_is_named_even_with_a_valid_chain(journal: Journal) -> None:
    # A journal whose hashes are all correct but whose story is impossible: paid without paying.
    from buyer_agent.journal._canonical import GENESIS_HASH, event_hash

    rows = [("submit", "created", "created"), ("pair", "created", "paired"), ("paid", "paired", "paid")]
    prev, events = GENESIS_HASH, []
    for seq, (trigger, src, dst) in enumerate(rows, start=1):
        at = f"2026-01-01T00:00:0{seq}.000000Z"
        h = event_hash(prev, order_id="o", seq=seq, at=at, trigger=trigger, src=src, dst=dst, payload={})
        events.append((None, {"order_id": "o", "seq": seq, "at": at, "trigger": trigger, "src": src,
                              "dst": dst, "payload": {}, "prev_hash": prev, "hash": h}))  # fmt: skip
        prev = h
    r = replay_events(events)
    assert r.breakage is not None and r.breakage.seq == 3 and "illegal" in r.breakage.reason
    assert r.state == "paired"


def test_replay_json_keys_and_exit_codes(journal: Journal, tmp_path: Path, capsys: Any) -> None:
    write_order(journal)
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(_export(journal)) + "\n")
    assert main(["replay", str(good), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"order_id", "state", "events", "verified"} <= doc.keys()
    assert (doc["order_id"], doc["state"], doc["events"], doc["verified"]) == (
        "ord_golden_1",
        "confirmed",
        14,
        True,
    )
    lines = _export(journal)
    lines[7] = lines[7].replace('"status":"created"', '"status":"paid"')
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    assert main(["replay", str(bad), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["verified"] is False and doc["breakage"]["seq"] == 7
    assert main(["replay", str(bad)]) == 1
    assert "BROKEN at event 7" in capsys.readouterr().out
    (tmp_path / "junk.txt").write_text("not a journal\n")
    assert main(["replay", str(tmp_path / "junk.txt")]) == 2
    assert main(["replay", "ord_nope", "--state-dir", str(tmp_path / "empty")]) == 2


def test_replay_a_directory_summarises(journal: Journal, tmp_path: Path, capsys: Any) -> None:
    write_order(journal, "ord_a")
    write_order(journal, "ord_b", disputed=True)
    d = tmp_path / "many"
    d.mkdir()
    for oid in ("ord_a", "ord_b"):
        (d / f"{oid}.jsonl").write_text("\n".join(_export(journal, oid)) + "\n")
    assert main(["replay", str(d), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [o["order_id"] for o in doc["orders"]] == ["ord_a", "ord_b"]
    s = doc["summary"]
    assert s["orders"] == 2 and s["verified"] == 2
    assert s["outcomes"] == {"confirmed": 1, "refunded": 1}
    # Issue 19: a refunded order's payment came back; it is counted as refunded, not spent (this
    # line asserted 1.60 spent, the defect the issue names).
    assert s["spend"] == {"USDC": "0.80"} and s["refunded"] == {"USDC": "0.80"}
    assert "paying" in s["seconds_in_state"]
    assert main(["replay", str(d / "*.jsonl")]) == 0
    assert "2 orders, 2 verified" in capsys.readouterr().out


def test_a_directory_with_one_broken_journal_exits_1_and_names_it(
    journal: Journal, tmp_path: Path, capsys: Any
) -> None:
    write_order(journal, "ord_a")
    write_order(journal, "ord_b")
    d = tmp_path / "many"
    d.mkdir()
    (d / "ord_a.jsonl").write_text("\n".join(_export(journal, "ord_a")) + "\n")
    lines = _export(journal, "ord_b")
    lines[7] = lines[7].replace('"status":"created"', '"status":"paid"')
    (d / "ord_b.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["replay", str(d), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    s = doc["summary"]
    assert s["orders"] == 2 and s["verified"] == 1 and s["unreadable"] == 0
    assert [o["verified"] for o in doc["orders"]] == [True, False]
    reason = doc["orders"][1]["breakage"]["reason"]
    broken = {"source": str(d / "ord_b.jsonl"), "order_id": "ord_b", "seq": 7, "reason": reason}
    assert s["broken"] == [broken]
    assert main(["replay", str(d)]) == 1
    text = capsys.readouterr().out
    assert "2 orders, 1 verified" in text
    assert f"BROKEN {broken['source']}: order ord_b at event 7: " in text
    # An unreadable file in the directory is named as well (and the broken one still wins: exit 1).
    (d / "junk.jsonl").write_text("not a journal\n")
    assert main(["replay", str(d), "--json"]) == 1
    s = json.loads(capsys.readouterr().out)["summary"]
    assert s["unreadable"] == 1
    assert sorted(b["source"] for b in s["broken"]) == sorted([broken["source"], str(d / "junk.jsonl")])


def test_a_final_state_other_than_the_header_or_the_order_row_says_is_named(
    journal: Journal, tmp_path: Path, capsys: Any
) -> None:
    write_order(journal)
    lines = _export(journal)
    header = json.loads(lines[0])
    assert header["final_state"] == "confirmed"
    # The header (not hash-chained) claims another final state: the rebuilt state disagrees.
    header["final_state"] = "refunded"
    path = tmp_path / "claims.jsonl"
    path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    r = replay_file(path)
    assert r.state == "confirmed" and not r.verified
    assert r.breakage is not None and r.breakage.seq == 14
    assert r.breakage.reason == "the events rebuild confirmed, but the journal says the order is refunded"
    assert main(["replay", str(path), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["state"] == "confirmed" and doc["verified"] is False
    assert doc["breakage"] == {"seq": 14, "reason": r.breakage.reason}
    # The order row of a state directory claims another state than its events rebuild.
    db = journal.path
    assert db is not None
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE orders SET state = 'failed' WHERE order_id = 'ord_golden_1'")
    assert main(["replay", "ord_golden_1", "--state-dir", str(db.parent), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["state"] == "confirmed" and doc["verified"] is False
    assert doc["breakage"] == {
        "seq": 14,
        "reason": "the events rebuild confirmed, but the journal says the order is failed",
    }
    assert main(["replay", "ord_golden_1", "--state-dir", str(db.parent)]) == 1
    assert "BROKEN at event 14: the events rebuild confirmed" in capsys.readouterr().out


def test_golden_journals_replay(capsys: Any) -> None:
    files = sorted(GOLDEN.glob("*.jsonl"))
    assert files, "no golden journals committed"
    for path in files:
        r = replay_file(path)
        assert r.verified, (path.name, r.breakage)
        expected = json.loads(path.read_text().splitlines()[0]).get("final_state") or json.loads(
            path.read_text().splitlines()[0]
        ).get("state")
        assert r.state == expected
    assert main(["replay", str(GOLDEN), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["verified"] == len(files)


def test_a_v0_journal_is_migrated_and_replayed() -> None:
    path = GOLDEN / "order_confirmed_v0.jsonl"
    raw = path.read_text().splitlines()
    assert json.loads(raw[0])["version"] == 0 and "prev_hash" not in json.loads(raw[1])
    r = replay_file(path)
    assert r.source_version == 0 and r.verified and r.state == "confirmed"
    assert r.events[1]["trigger"] == "pair" and r.events[1]["prev_hash"] == r.events[0]["hash"]
    v1 = replay_file(GOLDEN / "order_confirmed_v1.jsonl")
    assert [e["hash"] for e in r.events] == [e["hash"] for e in v1.events]
    # A v0 event edited after the fact still fails its (unchanged) hash.
    bad = [*raw]
    bad[4] = bad[4].replace("srch_1", "srch_9")
    t = replay_file("<v0>", lines=bad)
    assert t.breakage is not None and t.breakage.seq == 4


def test_exports_hold_no_secret(journal: Journal) -> None:
    write_order(journal)
    text = "\n".join(_export(journal)).lower()
    assert ANVIL_KEY not in text
    for word in ("private_key", "secret_key", "pairing_token", "api_key", "bearer"):
        assert word not in text


def test_evidence_of_a_disputed_order(journal: Journal, tmp_path: Path) -> None:
    write_order(journal, "ord_d", disputed=True)
    events = journal.events("ord_d")
    bundle = build_evidence(events)
    by_seq = {e.seq: e for e in events}
    assert bundle["quote"]["service_id"] == "svc_hash_budget"
    assert bundle["payment"]["tx"] == "0x" + "ab" * 32
    assert bundle["outcome"]["result"] == {"sha256": "not-a-hash"}
    assert "schema" in bundle["acceptance_failure"]
    for fact in ("quote", "order", "payment", "outcome", "dispute"):
        ref = bundle["journal"][fact]
        assert by_seq[ref["seq"]].hash == ref["hash"]
    out = tmp_path / "evidence.json"
    assert main(["evidence", "ord_d", "-o", str(out), "--state-dir", str(journal.path.parent)]) == 0  # type: ignore[union-attr]
    written = json.loads(out.read_text())
    assert written["journal"] == json.loads(json.dumps(bundle["journal"]))
    # The command writes the very bundle the workflow attached to the dispute, plus what binds it.
    (dispute,) = [e for e in events if e.trigger == "dispute"]
    attached = json.loads(json.dumps(dispute.payload["evidence"], default=str))
    assert written["journal"].pop("dispute") == {"seq": dispute.seq, "hash": dispute.hash}
    assert written.pop("order_id") == "ord_d"
    assert written.pop("head") == {"seq": events[-1].seq, "hash": events[-1].hash}
    assert written == attached
    assert written["payment"]["proof"]["transaction_hash"] == written["payment"]["tx"] == "0x" + "ab" * 32
    # Before a dispute, the bundle is built the same way from the events alone.
    pre = build_evidence([e.to_json() for e in events[:-3]], reason="checking")
    assert pre["reason"] == "checking" and pre["journal"]["outcome"]["seq"] == events[-4].seq


def test_synthetic_journal_verifies() -> None:
    orders = list(synthetic_orders(3, 15))
    assert all(replay_file("<s>", lines=o).verified for o in orders)
    assert sum(1 for _ in synthetic_journal(2, 12)) == 2 * 13
    with pytest.raises(ValueError):
        list(synthetic_orders(1, 5))


def test_odd_payloads_still_replay_and_verify(tmp_path: Path, capsys: Any) -> None:
    from buyer_agent.journal._canonical import GENESIS_HASH, event_hash

    rows = [("submit", "created", "created", {}), ("pair", "created", "paired", {}),
            ("search", "paired", "searched", {"quotes": [{"no_id": 1}]})]  # fmt: skip
    prev, lines = GENESIS_HASH, []
    for seq, (trigger, src, dst, payload) in enumerate(rows, start=1):
        at = f"2026-01-01T00:00:0{seq}.000000Z"
        h = event_hash(prev, order_id="o", seq=seq, at=at, trigger=trigger, src=src, dst=dst, payload=payload)
        ev = {"order_id": "o", "seq": seq, "at": at, "trigger": trigger, "src": src, "dst": dst,
              "payload": payload, "prev_hash": prev, "hash": h}  # fmt: skip
        lines.append(json.dumps(ev, sort_keys=True, separators=(",", ":")))
        prev = h
    header = json.dumps(
        {"format": "buyer-agent-journal", "version": 1, "order_id": "o", "final_state": "searched"}
    )
    path = tmp_path / "odd.jsonl"
    path.write_text("\n".join([header, *lines]) + "\n")
    assert main(["replay", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verified"] and doc["state"] == "searched"
    assert doc["timeline"]["error"]["code"] == "TIMELINE_UNAVAILABLE"


def test_export_defaults_and_stdout(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    write_order(journal)
    state = str(journal.path.parent)  # type: ignore[union-attr]
    monkeypatch.chdir(tmp_path)
    assert main(["export", "ord_golden_1", "--state-dir", state]) == 0
    written = (tmp_path / "ord_golden_1.jsonl").read_text().splitlines()
    capsys.readouterr()
    assert main(["export", "ord_golden_1", "-o", "-", "--state-dir", state]) == 0
    streamed = capsys.readouterr().out.splitlines()
    header = json.loads(written[0])
    assert header["format"] == "buyer-agent-journal" and header["version"] == 1
    assert header["order_id"] == "ord_golden_1" and header["final_state"] == "confirmed"
    assert header["spec"]["service_type"] == "compute.marketplace" and header["framework_version"]
    assert [json.loads(x) for x in written[1:]] == [e.to_json() for e in journal.events("ord_golden_1")]
    assert streamed[1:] == written[1:]
    assert main(["export", "ord_missing", "--state-dir", state]) == 1
    assert main(["export", "ord_golden_1", "--state-dir", str(tmp_path / "nothing")]) == 1


def test_every_deletion_and_swap_is_named() -> None:
    lines = (GOLDEN / "order_confirmed_v1.jsonl").read_text().splitlines()
    n = len(lines) - 1
    for seq in range(1, n + 1):
        r = _replay(lines[:seq] + lines[seq + 1 :])
        assert r.breakage is not None, seq
        # The event after a deleted one is named (a deleted last event: the header's count catches it).
        assert r.breakage.seq == (seq + 1 if seq < n else n), (seq, r.breakage)
    for seq in range(1, n):
        for later in range(seq + 1, n + 1):
            bad = [*lines]
            bad[seq], bad[later] = bad[later], bad[seq]
            r = _replay(bad)
            assert r.breakage is not None and r.breakage.seq == later, (seq, later, r.breakage)
