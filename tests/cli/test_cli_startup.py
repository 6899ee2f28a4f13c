"""What every command pays before it starts: the parser of every command, and nothing heavier."""

from __future__ import annotations

import subprocess
import sys

from cli_support import ROOT, clean_env


def test_building_the_parser_imports_neither_the_sandbox_nor_web3() -> None:
    # ``show``, ``orders`` or ``--help`` build every command's parser; the sandbox (and web3 with it,
    # ~0.3 s) is imported by the ``sandbox`` command when it runs, not when the parser is built.
    code = """
import sys
from buyer_agent.cli import build_parser
build_parser()
print(sorted(m for m in ("web3", "aiohttp", "buyer_agent.sandbox") if m in sys.modules))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=clean_env(), timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
