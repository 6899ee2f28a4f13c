"""The compiled contracts committed in ``artifacts.json`` and the order key the escrow uses."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from eth_utils.crypto import keccak

__all__ = ["CONTRACT_NAMES", "artifacts", "load_artifact", "order_key", "source_sha256"]

CONTRACT_NAMES = ("AuthorizedUsdc", "Escrow", "TestToken")
_PACKAGE = "buyer_agent.sandbox.contracts"


@cache
def artifacts() -> dict[str, Any]:
    """The whole ``artifacts.json``: per contract ``abi``, ``bytecode``, ``source``, ``sha256``; ``solc``."""
    text = resources.files(_PACKAGE).joinpath("artifacts.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text, parse_float=Decimal)
    return loaded


def load_artifact(name: str) -> tuple[list[dict[str, Any]], str]:
    """The ABI and the ``0x``-prefixed creation bytecode of a contract (see :data:`CONTRACT_NAMES`).

    Raises:
        KeyError: no such contract in the artifacts.
    """
    if name not in CONTRACT_NAMES:
        raise KeyError(f"no compiled contract {name!r}; known: {', '.join(CONTRACT_NAMES)}")
    entry = artifacts()[name]
    return list(entry["abi"]), str(entry["bytecode"])


def source_sha256(file_name: str) -> str:
    """The sha256 (hex) of a Solidity source shipped beside the artifacts, e.g. ``Escrow.sol``."""
    data = resources.files(_PACKAGE).joinpath(file_name).read_bytes()
    return hashlib.sha256(data).hexdigest()


def order_key(order_id: str) -> bytes:
    """The escrow's key for an order: ``keccak256(utf8(order_id))``, 32 bytes."""
    return bytes(keccak(text=order_id))
