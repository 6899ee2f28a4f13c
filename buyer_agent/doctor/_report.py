"""One doctor check's verdict (PASS / WARN / FAIL with a line saying how to fix it) and the report."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Check", "Status", "exit_code", "render", "render_check", "render_totals"]


class Status(StrEnum):
    """A check's verdict."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    """What was checked, its verdict, what was found, and (unless it passed) how to fix it."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form (``doctor --json``)."""
        return {"check": self.name, "status": self.status.value, "detail": self.detail, "fix": self.fix}


def exit_code(checks: list[Check]) -> int:
    """0 when nothing failed, 1 otherwise."""
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def render_check(c: Check) -> str:
    """One check's line (and an indented ``fix:`` line when there is one)."""
    line = f"{c.status.value}  {c.name:<10} {c.detail}"
    if c.fix and c.status is not Status.PASS:
        line += f"\n      fix: {c.fix}"
    return line


def render_totals(checks: list[Check]) -> str:
    """The last line: how many checks, failed, warned."""
    failed = sum(c.status is Status.FAIL for c in checks)
    warned = sum(c.status is Status.WARN for c in checks)
    return f"{len(checks)} checks: {failed} failed, {warned} warnings"


def render(checks: list[Check]) -> str:
    """One line per check (and an indented ``fix:`` line when there is one), then the totals."""
    return "\n".join([*(render_check(c) for c in checks), render_totals(checks)])
