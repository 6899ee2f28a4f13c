"""``ui`` on the command line: loopback only, a clear line for bad input, help that says what it serves."""

from __future__ import annotations

from pathlib import Path

from dashboard_support import cli


def test_ui_refuses_any_host_but_loopback(tmp_path: Path) -> None:
    proc = cli("ui", "--host", "0.0.0.0", "--state-dir", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: --host 0.0.0.0: the dashboard listens on 127.0.0.1 only (it shows what a machine spends)"
    )


def test_ui_without_a_journal_says_where_it_looked(tmp_path: Path) -> None:
    proc = cli("ui", "--state-dir", str(tmp_path / "none"), "--port", "0")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: no journal in ") and "Traceback" not in proc.stderr
    assert not (tmp_path / "none").exists()  # looking creates nothing


def test_ui_help_says_what_it_serves_and_where() -> None:
    proc = cli("ui", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "127.0.0.1" in text and "read-only" in text and "--port" in text
