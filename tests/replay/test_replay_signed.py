"""Signed exports: an edited, re-hashed export still verifies as a chain but fails the signature."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from forge_journal import forge
from replay_orders import BUYER, write_order

from buyer_agent.cli import main
from buyer_agent.history import replay_file
from buyer_agent.journal import Journal

# The well-known anvil dev key: its address is the journal's recorded payer (BUYER).
ANVIL_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
OTHER_KEY = "0x" + "11" * 32


def _export(journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str | None) -> Path:
    if key is None:
        monkeypatch.delenv("BUYER_AGENT_EVM_KEY", raising=False)
    else:
        monkeypatch.setenv("BUYER_AGENT_EVM_KEY", key)
    out = tmp_path / "ord.jsonl"
    assert main(["export", "ord_golden_1", "-o", str(out), "--state-dir", str(journal.path.parent)]) == 0  # type: ignore[union-attr]
    return out


def _more_money_elsewhere(ev: dict[str, Any]) -> None:
    p = ev["payload"]
    if ev["trigger"] == "pay":
        p["request"]["amount"]["base_units"] = 8_000_000
        p["request"]["amount"]["amount"] = "8"
        p["txs"][0]["tx_id"] = "0x" + "cd" * 32
    for key in ("tx_id", "tx"):
        if p.get(key) == "0x" + "ab" * 32:
            p[key] = "0x" + "cd" * 32


def test_export_is_signed_by_the_payer_and_holds_no_key(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    write_order(journal)
    out = _export(journal, tmp_path, monkeypatch, ANVIL_KEY)
    text = out.read_text()
    assert ANVIL_KEY not in text.lower()
    sig = json.loads(text.splitlines()[0])["signature"]
    assert sig["scheme"] == "eip191" and sig["address"] == BUYER
    capsys.readouterr()
    assert main(["replay", str(out), "--json", "--require-signature"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["signature"]["status"] == "valid" and doc["trusted"] is True
    assert main(["import", str(out), "--state-dir", str(tmp_path / "dst")]) == 0


def test_an_edited_rehashed_export_verifies_as_a_chain_but_fails_the_signature(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    write_order(journal)
    out = _export(journal, tmp_path, monkeypatch, ANVIL_KEY)
    forged = forge(out, _more_money_elsewhere)
    r = replay_file(forged)
    assert r.verified, r.breakage  # the chain is consistent: it proves nothing about origin
    assert any(
        e["trigger"] == "pay" and e["payload"]["request"]["amount"]["base_units"] == 8_000_000
        for e in r.events
    )
    capsys.readouterr()
    assert main(["replay", str(forged), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["verified"] is True and doc["trusted"] is False
    assert doc["signature"]["status"] == "invalid"
    assert main(["replay", str(forged)]) == 1
    assert "signature INVALID" in capsys.readouterr().out
    assert main(["import", str(forged), "--state-dir", str(tmp_path / "dst")]) == 1
    assert "refusing to import" in capsys.readouterr().err
    # --allow-unsigned does not let a bad signature through.
    assert main(["import", str(forged), "--allow-unsigned", "--state-dir", str(tmp_path / "dst")]) == 1


def test_a_forger_who_re_signs_with_another_key_is_not_the_agent(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from buyer_agent._redact import Secret
    from buyer_agent.journal._signature import sign_head

    write_order(journal)
    out = _export(journal, tmp_path, monkeypatch, ANVIL_KEY)
    forged = forge(out, _more_money_elsewhere)
    lines = forged.read_text().splitlines()
    header = json.loads(lines[0])
    header["signature"] = sign_head(Secret(OTHER_KEY), header["order_id"], header["head_hash"])
    forged.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    capsys.readouterr()
    assert main(["replay", str(forged), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["signature"]["status"] == "wrong_signer" and doc["signature"]["expected"] == BUYER
    assert main(["import", str(forged), "--state-dir", str(tmp_path / "dst")]) == 1


def test_unsigned_exports_are_reported_and_refused_by_import_unless_allowed(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    write_order(journal)
    out = _export(journal, tmp_path, monkeypatch, OTHER_KEY)  # not the payer's key: not signed
    assert "exported unsigned" in capsys.readouterr().err
    assert "signature" not in json.loads(out.read_text().splitlines()[0])
    assert main(["replay", str(out)]) == 0
    assert "signature UNSIGNED" in capsys.readouterr().out
    assert main(["replay", str(out), "--require-signature"]) == 1
    assert main(["import", str(out), "--state-dir", str(tmp_path / "dst")]) == 1
    assert "--allow-unsigned" in capsys.readouterr().err
    assert main(["import", str(out), "--allow-unsigned", "--state-dir", str(tmp_path / "dst")]) == 0


def test_signer_pins_the_expected_address(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    write_order(journal)
    out = _export(journal, tmp_path, monkeypatch, ANVIL_KEY)
    capsys.readouterr()
    assert main(["replay", str(out), "--signer", "0x" + "22" * 20, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["signature"]["status"] == "wrong_signer"
