"""The market's error envelope: ``{"error": {"code", "message", "details"}}`` with its HTTP status."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "envelope", "invalid"]


class ApiError(Exception):
    """An error answer: HTTP ``status``, machine-readable ``code``, a message and optional details."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        """The JSON body of this error."""
        return envelope(self.code, self.message, self.details)


def envelope(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The documented error body."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def invalid(field: str, message: str) -> ApiError:
    """A ``VALIDATION_ERROR`` (400) naming ``field``."""
    return ApiError(400, "VALIDATION_ERROR", f"{field}: {message}", {"field": field})
