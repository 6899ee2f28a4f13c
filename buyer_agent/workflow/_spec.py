"""What one order asks for: the service, the budget, the strategy, the rail, acceptance, deadlines."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from buyer_agent._money import Money

__all__ = ["Acceptance", "Deadlines", "OrderSpec"]


@dataclass(frozen=True, slots=True)
class Acceptance:
    """When a delivery counts as delivered.

    ``outcome`` is the execution outcome status that counts (``"completed"``); ``json_schema`` a JSON
    schema the result must validate against; ``callable_path`` a ``"module:function"`` taking
    ``(result, outcome)`` and returning True, or False / a string reason to refuse.
    """

    outcome: str = "completed"
    json_schema: Mapping[str, Any] | None = None
    callable_path: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "outcome": self.outcome,
            "json_schema": dict(self.json_schema) if self.json_schema is not None else None,
            "callable_path": self.callable_path,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Acceptance:
        """Inverse of :meth:`to_json`."""
        data = data or {}
        schema = data.get("json_schema")
        return cls(
            outcome=str(data.get("outcome", "completed")),
            json_schema=dict(schema) if schema is not None else None,
            callable_path=data.get("callable_path"),
        )


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Seconds each phase may take before its defined exit.

    quote: from the search to a market order (expired quotes → search again, then fail);
    order: creating the market order; payment: from signing to a confirmed, accepted payment (then
    stop with a clear error, never re-sign); execution: from payment to an outcome (then dispute);
    refund: from the dispute to the refund (then stop, the order stays disputed).
    """

    quote: float = 60
    order: float = 60
    payment: float = 120
    execution: float = 120
    refund: float = 60

    def to_json(self) -> dict[str, Any]:
        """JSON form (seconds as decimal strings: the journal holds no floats)."""
        return {
            name: _num(getattr(self, name)) for name in ("quote", "order", "payment", "execution", "refund")
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Deadlines:
        """Inverse of :meth:`to_json`."""
        data = data or {}
        defaults = cls()
        return cls(**{name: float(data.get(name, getattr(defaults, name))) for name in cls.__slots__})


def _num(value: float) -> str | int:
    return int(value) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """Everything needed to run one order; JSON-serialisable via :meth:`to_json` / :meth:`from_json`."""

    service_type: str
    operation: str | None = None
    task_type: str | None = None
    input: Mapping[str, Any] = field(default_factory=dict)
    region: str | None = None
    capabilities: tuple[str, ...] = ()
    budget: Money = field(default_factory=lambda: Money.zero("USDC"))
    strategy: str | Mapping[str, Any] = "cheapest"
    rail: str | None = None
    chain: str | None = None
    allow_handoff: bool = False
    acceptance: Acceptance = field(default_factory=Acceptance)
    fee_cap_wei: int | None = None
    approval_threshold: Money | None = None
    deadlines: Deadlines = field(default_factory=Deadlines)
    machine_id: str | None = None
    #: The task's token allowlist (``payment.tokens``): symbol → contract address or mint, accepted
    #: besides the network profile's own token for that symbol.
    tokens: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.service_type:
            raise ValueError("OrderSpec.service_type is required")
        if not isinstance(self.budget, Money):
            raise TypeError("OrderSpec.budget must be Money")
        if self.budget.amount <= 0:
            raise ValueError("OrderSpec.budget must be above zero")

    def to_json(self) -> dict[str, Any]:
        """JSON form (amounts as Money JSON; ``tokens`` only when the task allowlists any)."""
        out: dict[str, Any] = {
            "service_type": self.service_type,
            "operation": self.operation,
            "task_type": self.task_type,
            "input": dict(self.input),
            "region": self.region,
            "capabilities": list(self.capabilities),
            "budget": self.budget.to_json(),
            "strategy": self.strategy if isinstance(self.strategy, str) else dict(self.strategy),
            "rail": self.rail,
            "chain": self.chain,
            "allow_handoff": self.allow_handoff,
            "acceptance": self.acceptance.to_json(),
            "fee_cap_wei": self.fee_cap_wei,
            "approval_threshold": self.approval_threshold.to_json() if self.approval_threshold else None,
            "deadlines": self.deadlines.to_json(),
            "machine_id": self.machine_id,
        }
        if self.tokens:
            out["tokens"] = dict(self.tokens)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OrderSpec:
        """Inverse of :meth:`to_json`."""
        threshold = data.get("approval_threshold")
        strategy = data.get("strategy", "cheapest")
        return cls(
            service_type=str(data["service_type"]),
            operation=data.get("operation"),
            task_type=data.get("task_type"),
            input=dict(data.get("input") or {}),
            region=data.get("region"),
            capabilities=tuple(data.get("capabilities") or ()),
            budget=Money.from_json(dict(data["budget"])),
            strategy=strategy if isinstance(strategy, str) else dict(strategy),
            rail=data.get("rail"),
            chain=data.get("chain"),
            allow_handoff=bool(data.get("allow_handoff", False)),
            acceptance=Acceptance.from_json(data.get("acceptance")),
            fee_cap_wei=int(data["fee_cap_wei"]) if data.get("fee_cap_wei") is not None else None,
            approval_threshold=Money.from_json(dict(threshold)) if threshold else None,
            deadlines=Deadlines.from_json(data.get("deadlines")),
            machine_id=data.get("machine_id"),
            tokens={str(k): str(v) for k, v in (data.get("tokens") or {}).items()},
        )
