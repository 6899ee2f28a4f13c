"""Where the journal lives: ``--state-dir`` > ``$BUYER_AGENT_STATE_DIR`` > ``./state``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DB_NAME", "STATE_DIR_ENV", "resolve_state_dir"]

DB_NAME = "buyer_agent.db"
STATE_DIR_ENV = "BUYER_AGENT_STATE_DIR"


def resolve_state_dir(arg: str | Path | None = None) -> Path:
    """The state directory: the argument if given, else ``$BUYER_AGENT_STATE_DIR``, else ``./state``.

    Args:
        arg: An explicit directory (``--state-dir``), or None.

    Returns:
        The directory path (not created).
    """
    if arg is not None and str(arg) != "":
        return Path(arg)
    env = os.environ.get(STATE_DIR_ENV)
    if env:
        return Path(env)
    return Path("state")
