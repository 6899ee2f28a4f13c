"""Base58 (Bitcoin alphabet), as Solana writes signatures, keys and instruction data."""

from __future__ import annotations

__all__ = ["b58decode", "b58encode"]

_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {char: value for value, char in enumerate(_ALPHABET)}


def b58encode(data: bytes) -> str:
    """Encode bytes; each leading zero byte becomes a leading ``1``."""
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, rest = divmod(number, 58)
        digits.append(_ALPHABET[rest])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """Decode a base58 string.

    Raises:
        ValueError: a character outside the alphabet.
    """
    number = 0
    for char in text:
        if char not in _INDEX:
            raise ValueError(f"invalid base58 character {char!r}")
        number = number * 58 + _INDEX[char]
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\0" * pad + body
