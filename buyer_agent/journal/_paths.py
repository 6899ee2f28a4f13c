"""Where the journal lives: ``--state-dir`` > ``$BUYER_AGENT_STATE_DIR`` > ``./state``."""

from __future__ import annotations

import os
from pathlib import Path

from buyer_agent._errors import TaskFileError

__all__ = ["DB_NAME", "STATE_DIR_ENV", "resolve_state_dir"]

DB_NAME = "buyer_agent.db"
STATE_DIR_ENV = "BUYER_AGENT_STATE_DIR"


def resolve_state_dir(arg: str | Path | None = None) -> Path:
    """The state directory: the argument if given, else ``$BUYER_AGENT_STATE_DIR``, else ``./state``.

    Args:
        arg: An explicit directory (``--state-dir``), or None.

    Returns:
        The directory path (not created).

    Raises:
        TaskFileError: The path exists and is not a directory (bad usage: exit 2 on the command line).
    """
    if arg is not None and str(arg) != "":
        path, where = Path(arg), "--state-dir"
    elif os.environ.get(STATE_DIR_ENV):
        path, where = Path(os.environ[STATE_DIR_ENV]), f"${STATE_DIR_ENV}"
    else:
        path, where = Path("state"), "--state-dir"
    if path.exists() and not path.is_dir():
        raise TaskFileError(where, f"{path} is not a directory (the state directory holds {DB_NAME})")
    return path
