"""``examples/llm_tool_loop.py`` runs offline: a scripted model buys on the embedded sandbox."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.chains
ROOT = Path(__file__).resolve().parents[2]


def test_the_llm_tool_loop_example_runs_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "llm_tool_loop.py"), "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "is confirmed" in done.stdout
    # The transcript on stderr shows the refused injection and the recovery.
    assert "ARGUMENT_REFUSED" in done.stderr
    calls = [line.split("(")[0].strip() for line in done.stderr.splitlines() if " -> " in line]
    assert calls == [
        "search_market",
        "list_candidates",
        "choose_quote",
        "place_order",
        "place_order",
        "pay_order",
        "execute_order",
        "confirm_order",
    ]
