"""Keeping secrets out of logs, reprs, errors, journals and exports."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "Secret", "is_sensitive_key", "redact"]

REDACTED = "[secure]"

# The official SDK's rule (a name containing token/key/secret/password/credential/auth), plus
# private material by its own names. Public identifiers that merely contain "key" are allowed.
_SENSITIVE = re.compile(r"token|key|secret|password|passphrase|credential|auth|mnemonic|seed", re.I)
_PUBLIC = re.compile(
    r"^(skill_?keys?|provider_?keys?|public_?key|idempotency_?key|has_?auth_?token"
    r"|allowed_?skill_?keys|denied_?skill_?keys|token_?last_?four|auth_?type|token_?address"
    r"|token_?mint|token_?decimals|token|preferred_?skill_?keys|api_?key_?ref|key_?ref)$",
    re.I,
)


def is_sensitive_key(name: str) -> bool:
    """True when a field called ``name`` may hold a secret."""
    return bool(_SENSITIVE.search(name)) and not _PUBLIC.match(name)


def redact(value: Any) -> Any:
    """Return a copy of ``value`` with every sensitive mapping entry replaced by ``[secure]``."""
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_sensitive_key(k) and v is not None else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    return value


class Secret:
    """A string that never shows itself: ``repr`` and ``str`` print ``[secure]``.

    Call :meth:`reveal` at the one place that needs the value (a header, a signer).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        self._value = value

    def reveal(self) -> str:
        """The secret value itself."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED})"

    def __str__(self) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)
