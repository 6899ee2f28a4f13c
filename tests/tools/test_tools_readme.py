"""The README's ``LLM tool loop`` example runs as written (on the embedded sandbox)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from buyer_agent.tools import ERROR_CODES, TOOLS

pytestmark = pytest.mark.chains
ROOT = Path(__file__).resolve().parents[2]


def _section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## LLM tool loop")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_readme_names_every_tool_and_code_it_uses() -> None:
    section = _section()
    for tool in TOOLS:
        assert f"`{tool.name}`" in section, tool.name
    codes = [c for c in re.findall(r"`([A-Z_]{6,})`", section) if not c.startswith(("OPENAI_", "BUYER_"))]
    assert codes
    for code in codes:
        assert code in ERROR_CODES, code


def test_the_readme_example_buys(tmp_path: Path) -> None:
    (code,) = re.findall(r"```python\n(.*?)```", _section(), re.S)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "BUYER_AGENT_STATE_DIR": str(tmp_path), "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    state, amount, tx = done.stdout.split()
    assert state == "confirmed" and amount == "0.80" and tx.startswith("0x")
