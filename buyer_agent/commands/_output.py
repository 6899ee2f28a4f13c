"""Writing a command's output file safely, and finding the key an export is signed with.

An output file is written to ``FILE.part`` and renamed into place, so a reader never sees half a
file; when anything goes wrong (a directory, no permission, a full disk, Ctrl-C) the ``.part`` file
is removed and the error is one line naming the path. An existing file that is not a regular file
(``/dev/null``, a FIFO) is written in place: renaming over it would replace the node itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

from buyer_agent._errors import BuyerAgentError
from buyer_agent._json import dumps as exact_dumps
from buyer_agent._redact import Secret
from buyer_agent.journal import Journal
from buyer_agent.journal._signature import signing_key

__all__ = ["OutputError", "export_key", "json_text", "write_atomically"]

T = TypeVar("T")
_MARKET_META = "order_market:"  # what BuyerAgent records per order (agent.py)
_EMBEDDED = "embedded-sandbox"


class OutputError(BuyerAgentError):
    """The output path cannot be written (a directory, no permission, no such folder): bad usage."""


def write_atomically(path: Path, write: Callable[[IO[str]], T]) -> T:
    """Run ``write`` on ``path.part``, then rename it to ``path``; nothing is left behind on failure.

    Raises:
        OutputError: ``path`` is a directory or cannot be written.
    """
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory (give a file name with -o)")
    if path.exists() and not path.is_file():
        # A device, FIFO or socket (/dev/null, /dev/stdout, a pipe): written in place. Renaming a
        # .part file over it would replace the device node itself with a plain file.
        try:
            with open(path, "w", encoding="utf-8") as fh:
                return write(fh)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            result = write(fh)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        _remove(tmp)
        raise
    return result


def json_text(value: object) -> str:
    """``value`` as the indented JSON document the commands write (a Decimal is an exact number)."""
    return exact_dumps(value, indent=2, default=str) + "\n"


def _remove(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        tmp.unlink()


def export_key(journal: Journal, order_id: str) -> Secret | None:
    """The agent key that signs ``order_id``'s export (the one that paid it), or None."""
    events = [e.to_json() for e in journal.events(order_id)]
    placed = journal.get_meta(_MARKET_META + order_id)
    return signing_key(events, sandbox_order=placed == _EMBEDDED)
