"""The agent is a facade: its parts are composed in _compose, and the tools depend on it, not it on them."""

from __future__ import annotations

import ast
from pathlib import Path

import buyer_agent
from buyer_agent import BuyerAgent
from buyer_agent.tools import AgentTools

PACKAGE = Path(buyer_agent.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _under(modules: set[str], package: str) -> set[str]:
    return {m for m in modules if m == package or m.startswith(package + ".")}


def test_the_agent_and_its_composition_never_import_the_tools() -> None:
    for name in ("agent.py", "_compose.py"):
        assert _under(_imports(PACKAGE / name), "buyer_agent.tools") == set(), name


def test_the_facade_builds_no_part_itself() -> None:
    facade = _imports(PACKAGE / "agent.py")
    for part in ("buyer_agent.sandbox", "buyer_agent.market", "buyer_agent.rails"):
        assert _under(facade, part) == set(), f"agent.py imports {part}: compose it in _compose.py"
    assert "buyer_agent._compose" in facade


def test_the_tools_attach_themselves_to_every_agent(tmp_path: Path) -> None:
    tools = set().union(*(_imports(p) for p in (PACKAGE / "tools").glob("*.py")))
    assert "buyer_agent.agent" in tools
    agent = BuyerAgent(state_dir=tmp_path)
    assert isinstance(agent._tool_surface(), AgentTools)
    assert "search_market" in {t["function"]["name"] for t in agent.tools()}
