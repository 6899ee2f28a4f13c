"""Fault injection for tests: latency, 5xx, 429 with Retry-After, timeouts, and commit-then-drop."""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Any, Literal

from buyer_agent.sandbox.market._errors import invalid

__all__ = ["COUNTED", "Fault", "FaultConfig", "FaultInjector", "parse_fault_spec"]

#: What the server does to one request: nothing, an error answer, hang up, or answer-less commit.
Fault = Literal["none", "5xx", "429", "timeout", "drop_after_commit"]


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Fault rates (0..1 each, tried in this order), added latency, RNG seed, and timings.

    ``rate_timeout`` holds the connection ``timeout_s`` seconds, then closes it unanswered and
    unprocessed; ``rate_drop_after_commit`` processes the request, then closes it unanswered.
    """

    rate_5xx: float = 0.0
    rate_429: float = 0.0
    rate_timeout: float = 0.0
    rate_drop_after_commit: float = 0.0
    latency_ms: int = 0
    seed: int | None = None
    retry_after_s: int = 1
    timeout_s: float = 5.0

    def to_json(self) -> dict[str, Any]:
        """CamelCase JSON (``GET /sandbox/faults``)."""
        raw = asdict(self)
        return {_camel(k): (Decimal(str(v)) if isinstance(v, float) else v) for k, v in raw.items()}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> FaultConfig:
        """Parse camelCase or snake_case keys (``POST /sandbox/faults``); unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        names = {**{_camel(n): n for n in known}, **{n: n for n in known}}
        values: dict[str, Any] = {}
        for key, value in body.items():
            name = names.get(key, "")
            if name not in known:
                raise invalid(key, "unknown fault setting")
            values[name] = _coerce(name, value)
        return cls(**values)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _coerce(name: str, value: Any) -> Any:
    if name == "seed":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(name, "must be an integer or null")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise invalid(name, "must be a number")
    if name in ("latency_ms", "retry_after_s"):
        if int(value) != value or value < 0:
            raise invalid(name, "must be a non-negative integer")
        return int(value)
    number = float(value)
    if name.startswith("rate_") and not 0.0 <= number <= 1.0:
        raise invalid(name, "must be between 0 and 1")
    if number < 0:
        raise invalid(name, "must be non-negative")
    return number


def parse_fault_spec(spec: str, seed: int | None = None) -> FaultConfig:
    """Parse a CLI spec such as ``5xx=0.1,429=0.05,timeout=0.02,drop=0.05,latency=20``.

    Raises:
        ValueError: an unknown name or a bad number.
    """
    aliases = {
        "5xx": "rate_5xx",
        "429": "rate_429",
        "timeout": "rate_timeout",
        "drop": "rate_drop_after_commit",
        "latency": "latency_ms",
        "retry-after": "retry_after_s",
        "timeout-s": "timeout_s",
    }
    values: dict[str, Any] = {"seed": seed}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, text = part.partition("=")
        if not sep or name.strip() not in aliases:
            raise ValueError(f"bad fault {part!r}; use {', '.join(aliases)} as name=value")
        key = aliases[name.strip()]
        number = float(text)
        values[key] = int(number) if key in ("latency_ms", "retry_after_s") else number
        if key.startswith("rate_") and not 0.0 <= number <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
    return FaultConfig(**values)


#: What :meth:`FaultInjector.counts` reports: requests seen, and how many got each fault.
COUNTED = ("requests", "latency", "5xx", "429", "timeout", "drop_after_commit")


class FaultInjector:
    """Draws one fault per request from the current :class:`FaultConfig` (seeded, thread-safe).

    It counts what it did since the start (``GET /sandbox/faults`` shows it as ``injected``), so a
    test can check that the faults it asked for really happened.
    """

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config = config or FaultConfig()
        self._rng = random.Random(self._config.seed)
        self._counts = dict.fromkeys(COUNTED, 0)

    @property
    def config(self) -> FaultConfig:
        """The settings in force."""
        return self._config

    def configure(self, config: FaultConfig) -> None:
        """Replace the settings (and reseed)."""
        with self._lock:
            self._config = config
            self._rng = random.Random(config.seed)

    def counts(self) -> dict[str, int]:
        """Requests seen and faults injected since the start (never reset by :meth:`configure`)."""
        with self._lock:
            return dict(self._counts)

    def draw(self) -> Fault:
        """The fault for the next request."""
        return self.decide()[0]

    def decide(self) -> tuple[Fault, int]:
        """The fault for the next request and the latency (ms) to add before it, both counted."""
        with self._lock:
            config = self._config
            self._counts["requests"] += 1
            if config.latency_ms:
                self._counts["latency"] += 1
            chosen: Fault = "none"
            for fault, rate in (
                ("5xx", config.rate_5xx),
                ("429", config.rate_429),
                ("timeout", config.rate_timeout),
                ("drop_after_commit", config.rate_drop_after_commit),
            ):
                if rate > 0 and self._rng.random() < rate:
                    chosen = fault  # type: ignore[assignment]
                    self._counts[fault] += 1
                    break
            return chosen, config.latency_ms
