"""One doctor check's verdict (PASS / WARN / FAIL with a line saying how to fix it) and the report."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Check", "Status", "exit_code", "render"]


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


def render(checks: list[Check]) -> str:
    """One line per check (and an indented ``fix:`` line when there is one)."""
    lines: list[str] = []
    for c in checks:
        lines.append(f"{c.status.value}  {c.name:<10} {c.detail}")
        if c.fix and c.status is not Status.PASS:
            lines.append(f"      fix: {c.fix}")
    failed = sum(c.status is Status.FAIL for c in checks)
    warned = sum(c.status is Status.WARN for c in checks)
    lines.append(f"{len(checks)} checks: {failed} failed, {warned} warnings")
    return "\n".join(lines)
