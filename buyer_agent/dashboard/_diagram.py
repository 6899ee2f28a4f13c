"""The order state machine as SVG, laid out by Graphviz's ``dot`` from the table (``TRANSITIONS``).

Made on the server once per process, from our own table only (no market text in it). ``dot`` comes
from Debian's ``graphviz`` package (``scripts/setup`` installs it); without it the page says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from markupsafe import Markup

from buyer_agent.workflow import TERMINAL, TRANSITIONS, OrderState

__all__ = ["DOT_MISSING", "dot_source", "state_diagram_svg"]

DOT_MISSING = "the state diagram needs Graphviz's dot (Debian: apt-get install graphviz)"

# Triggers every early state has; drawn faint so the lifecycle stays readable.
_FAINT = frozenset({"fail", "cancel"})
_GOOD = frozenset({OrderState.CONFIRMED, OrderState.HANDED_OFF})


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot_source() -> str:
    """The DOT text of the machine: one node per state, one edge per (source, dest), triggers as labels."""
    lines = [
        "digraph orders {",
        '  graph [rankdir=LR, bgcolor="transparent", nodesep=0.35, ranksep=0.5, fontname="DejaVu Sans"];',
        '  node [shape=box, style="rounded,filled", fillcolor="#eef2f7", color="#5b6b82", '
        'fontname="DejaVu Sans", fontsize=11];',
        '  edge [color="#5b6b82", fontname="DejaVu Sans", fontsize=9, arrowsize=0.7];',
    ]
    for state in OrderState:
        attrs = {"id": f"state-{state.value}"}
        if state in TERMINAL:
            attrs.update(peripheries="2", fillcolor="#e3f4e6" if state in _GOOD else "#f8e5e5")
        rendered = ", ".join(f"{k}={_quote(v)}" for k, v in attrs.items())
        lines.append(f"  {_quote(state.value)} [{rendered}];")
    grouped: dict[tuple[str, str], list[str]] = {}
    for t in TRANSITIONS:
        labels = grouped.setdefault((t.source.value, t.dest.value), [])
        if t.trigger not in labels:
            labels.append(t.trigger)
    for (src, dst), labels in grouped.items():
        faint = all(label in _FAINT for label in labels)
        style = ', color="#c3cad5", fontcolor="#9aa3b1", constraint=false' if faint else ""
        lines.append(f"  {_quote(src)} -> {_quote(dst)} [label={_quote(' / '.join(labels))}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


_cache: Markup | None = None


def state_diagram_svg(dot: str | None = None) -> Markup:
    """The diagram as inline SVG markup (cached).

    Raises:
        FileNotFoundError: ``dot`` is not installed (message :data:`DOT_MISSING`).
    """
    global _cache
    if _cache is not None:
        return _cache
    exe = dot or shutil.which("dot")
    if exe is None:
        raise FileNotFoundError(DOT_MISSING)
    done = subprocess.run(
        [exe, "-Tsvg"], input=dot_source(), capture_output=True, text=True, timeout=60, check=True
    )
    svg = done.stdout
    # Inline in the page: no XML prolog, doctype or comments.
    svg = re.sub(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<!--.*?-->", "", svg, flags=re.S).strip()
    _cache = Markup(svg)
    return _cache
