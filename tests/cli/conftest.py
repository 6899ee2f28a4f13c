"""Fixtures of the CLI tests (helpers live in cli_support.py)."""

from cli_support import external

__all__ = ["external"]
