"""``store copy`` on the real command line: SQLite → PostgreSQL → SQLite, verified, no password shown."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cli_support import ROOT, cli

from buyer_agent.cli import main

GOLDEN = ROOT / "tests" / "golden" / "order_confirmed_v1.jsonl"


def _state_with_golden(state: Path) -> None:
    proc = cli("import", str(GOLDEN), "--allow-unsigned", "--state-dir", str(state))
    assert proc.returncode == 0, proc.stderr


def test_store_copy_moves_journals_both_ways(tmp_path: Path, postgres_url: str) -> None:
    state = tmp_path / "state"
    _state_with_golden(state)
    proc = cli("store", "copy", "--from", str(state / "buyer_agent.db"), "--to", postgres_url, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["orders"] == {"copied": 1, "present": 0, "refused": 0} and doc["events"] == 14
    assert doc["copied"] == ["ord_golden_1"] and doc["refused"] == []
    password = postgres_url.split(":")[2].split("@")[0]
    assert password not in proc.stdout + proc.stderr and doc["to"].startswith("postgresql://postgres@")
    again = cli("store", "copy", "--from", str(state), "--to", postgres_url)
    assert again.returncode == 0 and "copied 0 orders" in again.stdout and "1 already there" in again.stdout
    back = tmp_path / "back"
    proc = cli("store", "copy", "--from", postgres_url, "--to", str(back))
    assert proc.returncode == 0, proc.stderr
    # What came back is the same journal: its export replays and verifies.
    out = tmp_path / "back.jsonl"
    assert cli("export", "ord_golden_1", "--state-dir", str(back), "-o", str(out)).returncode == 0
    assert cli("replay", str(out)).returncode == 0
    with open(out) as fh:
        exported = [json.loads(line) for line in fh][1:]
    with open(GOLDEN) as fh:
        golden = [json.loads(line) for line in fh][1:]
    assert [e["hash"] for e in exported] == [e["hash"] for e in golden]


def test_store_copy_refuses_a_broken_chain_naming_order_and_event(tmp_path: Path, postgres_url: str) -> None:
    state = tmp_path / "state"
    _state_with_golden(state)
    with sqlite3.connect(state / "buyer_agent.db") as db:
        db.execute("DROP TRIGGER events_no_update")
        db.execute("UPDATE events SET at = '2026-11-22T18:00:09.000000Z' WHERE seq = 5")
    proc = cli("store", "copy", "--from", str(state), "--to", postgres_url, "--json")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "error: refused order ord_golden_1: event 5: hash does not match" in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["orders"]["refused"] == 1 and doc["refused"][0]["seq"] == 5


def _without(doc: object, key: str) -> object:
    if isinstance(doc, dict):
        return {k: _without(v, key) for k, v in doc.items() if k != key}
    if isinstance(doc, list):
        return [_without(v, key) for v in doc]
    return doc


def test_the_readers_read_a_postgresql_store_as_they_read_the_state_dir(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    _state_with_golden(state)
    assert main(["store", "copy", "--from", str(state), "--to", postgres_url]) == 0
    password = postgres_url.split(":")[2].split("@")[0]

    def out(*argv: str, code: int = 0) -> str:
        assert main(list(argv)) == code
        captured = capsys.readouterr()
        assert password not in captured.out + captured.err and "Traceback" not in captured.err
        return captured.out if code == 0 else captured.err

    capsys.readouterr()
    for argv, label_key in (
        (["orders", "--json"], "journal"),
        (["show", "ord_golden_1", "--json"], "journal"),
        (["replay", "ord_golden_1", "--json"], "source"),
    ):
        local = out(*argv, "--state-dir", str(state))
        remote = out(*argv, "--store", postgres_url)
        with monkeypatch.context() as env:
            env.setenv("BUYER_AGENT_STORE", postgres_url)
            assert out(*argv) == remote
        assert _without(json.loads(remote), label_key) == _without(json.loads(local), label_key)
        assert "postgresql://postgres@127.0.0.1:" in remote
    assert out("orders", "--store", postgres_url) == out("orders", "--state-dir", str(state))
    # An export read from PostgreSQL holds the same event lines as one read from the state dir.
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    out("export", "ord_golden_1", "--state-dir", str(state), "-o", str(a))
    out("export", "ord_golden_1", "--store", postgres_url, "-o", str(b))
    lines_a, lines_b = a.read_text().splitlines(), b.read_text().splitlines()
    assert lines_a[1:] == lines_b[1:] and len(lines_b) == 15
    assert _without(json.loads(lines_a[0]), "exported_at") == _without(json.loads(lines_b[0]), "exported_at")
    out("replay", str(b))
    # --state-dir on the command line wins over the environment; both flags at once is bad usage.
    monkeypatch.setenv("BUYER_AGENT_STORE", postgres_url)
    assert json.loads(out("orders", "--json", "--state-dir", str(tmp_path / "empty"))) == []
    assert "--store" in out("orders", "--store", postgres_url, "--state-dir", str(state), code=2)
    assert "ord_nope" in out("show", "ord_nope", code=1)
