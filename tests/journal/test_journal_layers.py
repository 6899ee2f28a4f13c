"""journal/ is storage only: it imports neither the workflow nor the readers over journals."""

from __future__ import annotations

import ast
from pathlib import Path

import buyer_agent.journal

JOURNAL = Path(buyer_agent.journal.__file__).parent
ABOVE = (
    "buyer_agent.workflow",
    "buyer_agent.history",
    "buyer_agent.agent",
    "buyer_agent.commands",
    "buyer_agent.tools",
)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_no_journal_module_imports_a_layer_above_it() -> None:
    found = {
        (path.name, name)
        for path in sorted(JOURNAL.glob("*.py"))
        for name in _imports(path)
        if name.startswith(ABOVE)
    }
    assert found == set()


def test_the_journal_package_hides_no_lazy_attributes() -> None:
    assert not hasattr(buyer_agent.journal, "__getattr__")
    for name in buyer_agent.journal.__all__:
        assert hasattr(buyer_agent.journal, name), name
