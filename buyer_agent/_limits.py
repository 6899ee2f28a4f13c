"""Size limits on everything the agent reads, and bounded reads that enforce them.

Every read stops after ``limit + 1`` bytes, so an endless input (``/dev/zero``, a FIFO that never
closes, a market that streams forever) costs at most the limit in memory and is refused with one
clear line naming the limit. The numbers are documented in the README's *Reliability* section.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "MAX_JOURNAL_FILE_BYTES",
    "MAX_JOURNAL_LINE_BYTES",
    "MAX_MARKET_ANSWER_BYTES",
    "MAX_SERVICE_INPUT_BYTES",
    "MAX_TASK_FILE_BYTES",
    "TooLarge",
    "bounded_lines",
    "human",
    "input_size",
    "read_bounded",
]

#: A task file (YAML): far above any real task.
MAX_TASK_FILE_BYTES = 1 * 1024 * 1024
#: The service ``input`` of a task, as compact JSON: what the market accepts in one order.
MAX_SERVICE_INPUT_BYTES = 256 * 1024
#: One market answer's body.
MAX_MARKET_ANSWER_BYTES = 8 * 1024 * 1024
#: An exported journal file (one order; a million-event journal is ~400 MB).
MAX_JOURNAL_FILE_BYTES = 1024 * 1024 * 1024
#: One line (one event) of a journal file.
MAX_JOURNAL_LINE_BYTES = 16 * 1024 * 1024


class TooLarge(ValueError):
    """The input is larger than its limit (read no further than the limit)."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} is larger than the limit of {human(limit)}")
        self.what = what
        self.limit = limit


def human(n: int) -> str:
    """``1 MiB``, ``256 KiB``, ``12 bytes``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def input_size(value: Any) -> int:
    """The size in bytes of ``value`` as the compact JSON sent to the market."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8"))


def read_bounded(path: str | Path, limit: int, what: str | None = None) -> bytes:
    """The bytes of ``path``, reading at most ``limit + 1`` of them.

    Raises:
        TooLarge: The file holds more than ``limit`` bytes (or never ends).
        OSError: It cannot be opened or read (a directory, missing, no permission).
    """
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(what or str(path), limit)
    return data


def bounded_lines(
    fh: IO[bytes], *, name: str, file_limit: int, line_limit: int, encoding: str = "utf-8"
) -> Iterator[str]:
    """The text lines of a binary stream, each read with a bound, the whole stream too.

    A line that is not valid ``encoding`` is decoded with replacement characters, so it fails as
    JSON (or as its hash) rather than raising here.

    Raises:
        TooLarge: A line is longer than ``line_limit`` or the stream longer than ``file_limit``.
    """
    total = 0
    while True:
        raw = fh.readline(line_limit + 1)
        if not raw:
            return
        total += len(raw)
        if len(raw) > line_limit and not raw.endswith(b"\n"):
            raise TooLarge(f"a line of {name}", line_limit)
        if total > file_limit:
            raise TooLarge(name, file_limit)
        yield raw.decode(encoding, errors="replace")
