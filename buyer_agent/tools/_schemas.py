"""The buyer's tools as data: name, description and a closed JSON Schema for the arguments.

The schemas hold no money field on purpose: amounts, payees, tokens and rails come only from the
quote, the payment intent and the policy, never from the model. Every object is closed
(``additionalProperties: false``), so a model that adds ``amount`` or ``payee`` is refused by the
schema itself; the service ``input`` takes free keys only through a name pattern, with scalar
values, and never a key that names money.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from buyer_agent.workflow import OrderState

__all__ = [
    "FORBIDDEN_KEYS",
    "INPUT_REFUSED_KEYS",
    "MAX_WAIT_S",
    "MONEY_KEYS",
    "SCHEMA_DIALECT",
    "TOOLS",
    "ToolSpec",
    "tool_spec",
]

#: The JSON Schema dialect every parameters schema is written in.
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: Names that carry money or its destination: refused as arguments and as service input keys.
MONEY_KEYS: frozenset[str] = frozenset(
    {
        "amount",
        "price",
        "budget",
        "max_price",
        "maxPrice",
        "currency",
        "payee",
        "payee_address",
        "payeeAddress",
        "recipient",
        "token_address",
        "tokenAddress",
        "token_mint",
        "tokenMint",
        "rail",
        "escrow_address",
        "escrowAddress",
    }
)

#: Argument names a model may try in order to steer a payment; always refused (``ARGUMENT_REFUSED``).
FORBIDDEN_KEYS: frozenset[str] = MONEY_KEYS | frozenset(
    {"to", "token", "chain", "wallet", "address", "value", "fee", "gas", "escrow", "rails"}
)


#: Names refused as keys of the service ``input`` (any case): money and where it goes. Narrower than
#: :data:`FORBIDDEN_KEYS`, since a service may well take an ``address``, a ``chain`` or a ``value``.
INPUT_REFUSED_KEYS: frozenset[str] = MONEY_KEYS | frozenset({"to", "token", "wallet", "escrow"})

#: The longest ``wait_for`` may wait, in seconds.
MAX_WAIT_S = 120


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool: what the model sees (``name``, ``description``, ``parameters``); ``read_only`` reads only."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    read_only: bool = False


_ORDER_ID: dict[str, Any] = {
    "type": "string",
    "description": "The order id returned by search_market (ord_ followed by 32 hex digits).",
    "pattern": "^ord_[0-9a-f]{32}$",
}
_QUOTE_ID: dict[str, Any] = {
    "type": "string",
    "description": "A quote id from list_candidates; only an eligible quote can be chosen.",
    "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
}
_NAME = "^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$"
_INPUT_KEY = "^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_SCALAR: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "maxLength": 4096},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
    ]
}


def _object(properties: Mapping[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": dict(properties),
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    return schema


def _order_only(extra: Mapping[str, Any] | None = None, required: tuple[str, ...] = ()) -> dict[str, Any]:
    return _object({"order_id": _ORDER_ID, **(extra or {})}, ("order_id", *required))


_SEARCH = _object(
    {
        "service_type": {
            "type": "string",
            "description": "The kind of service to buy (default: the configured task's).",
            "pattern": _NAME,
        },
        "operation": {
            "type": "string",
            "description": "The service operation (default: the configured task's).",
            "pattern": _NAME,
        },
        "input": {
            "type": "object",
            "description": (
                "The service's own input (default: the configured task's): names to strings, numbers, "
                "booleans or null. Never money: amounts and payees are not inputs."
            ),
            "patternProperties": {_INPUT_KEY: _SCALAR},
            "propertyNames": {"not": {"enum": sorted(INPUT_REFUSED_KEYS)}},
            "additionalProperties": False,
            "maxProperties": 32,
        },
        "region": {
            "type": "string",
            "description": "Where the service should run, e.g. eu-west (default: the configured task's).",
            "pattern": _NAME,
        },
        "capabilities": {
            "type": "array",
            "description": "Capabilities the provider must have (default: the configured task's).",
            "items": {"type": "string", "pattern": _NAME},
            "maxItems": 16,
            "uniqueItems": True,
        },
    }
)

TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "search_market",
        "Start a new order and search the market for quotes. The budget, strategy, payment rail and "
        "limits come from the agent's configuration and cannot be set here. Returns the order id, "
        "the candidate quotes with their eligibility and the strategy's recommendation.",
        _SEARCH,
    ),
    ToolSpec(
        "list_candidates",
        "List an order's quotes: price, score, whether each is eligible (budget, policy, expiry, rail) "
        "and the strategy's reasons, with the quote the strategy recommends.",
        _order_only(),
        read_only=True,
    ),
    ToolSpec(
        "choose_quote",
        "Choose the quote to buy: quote_id must be one of the order's eligible quotes; leave it out to "
        "take the strategy's recommendation.",
        _order_only({"quote_id": _QUOTE_ID}),
    ),
    ToolSpec(
        "place_order",
        "Create the market order for the chosen quote. Above the approval threshold the order waits "
        "in awaiting_approval until a human approves it.",
        _order_only(),
    ),
    ToolSpec(
        "pay_order",
        "Pay the placed order on-chain. The amount, payee, token and rail come from the quote and the "
        "market's payment intent, checked against the budget and policy; they are never arguments.",
        _order_only(),
    ),
    ToolSpec(
        "adopt_payment",
        "Only when the operator tells you they already paid a placed order themselves and gives you the "
        "transaction hash: record that payment for the order instead of paying it. The chain is read "
        "(token, payer, payee, amount, confirmations); a transaction that does not pay this order "
        "exactly is refused and nothing is paid. Never invent a hash.",
        _order_only(
            {
                "tx_hash": {
                    "type": "string",
                    "description": "The operator's payment transaction hash (0x and 64 hex digits).",
                    "pattern": "^0x[0-9a-fA-F]{64}$",
                }
            },
            ("tx_hash",),
        ),
    ),
    ToolSpec(
        "execute_order",
        "Have the market run the paid service (locking escrow first where the rail holds one).",
        _order_only(),
    ),
    ToolSpec(
        "order_status",
        "An order's state, quote, payment, outcome or error, and the tools allowed next. For a "
        "disputed order it first asks the market whether the refund has arrived.",
        _order_only(),
        read_only=True,
    ),
    ToolSpec(
        "wait_for",
        "Wait until an order reaches a state (e.g. refunded after a dispute, or quoted once a person "
        "approved it), at most timeout_s seconds; returns the order's status and whether it got there.",
        _order_only(
            {
                "state": {
                    "type": "string",
                    "description": "The state to wait for.",
                    "enum": [s.value for s in OrderState],
                },
                "timeout_s": {
                    "type": "integer",
                    "description": f"The most seconds to wait (default 30, at most {MAX_WAIT_S}).",
                    "minimum": 1,
                    "maximum": MAX_WAIT_S,
                },
            },
            ("state",),
        ),
        read_only=True,
    ),
    ToolSpec(
        "confirm_order",
        "Accept the delivery after execution: checks the task's acceptance rules, then confirms "
        "(releasing escrow); a delivery that fails them is disputed instead.",
        _order_only(),
    ),
    ToolSpec(
        "dispute_order",
        "Dispute a delivery (or an execution that never came) with a reason; the payment is frozen "
        "until the market refunds it.",
        _order_only(
            {
                "reason": {
                    "type": "string",
                    "description": "Why the delivery is not accepted.",
                    "minLength": 3,
                    "maxLength": 500,
                }
            },
            ("reason",),
        ),
    ),
    ToolSpec(
        "cancel_order",
        "Cancel an order before any money moved (before place_order succeeded or while it awaits approval).",
        _order_only(
            {
                "reason": {
                    "type": "string",
                    "description": "Why the order is cancelled.",
                    "maxLength": 500,
                }
            }
        ),
    ),
    ToolSpec(
        "list_orders",
        "List past and open orders (newest first) with their states.",
        _object(
            {
                "state": {
                    "type": "string",
                    "description": "Only orders in this state.",
                    "enum": [s.value for s in OrderState],
                },
                "limit": {
                    "type": "integer",
                    "description": "At most this many orders (default 20).",
                    "minimum": 1,
                    "maximum": 100,
                },
            }
        ),
        read_only=True,
    ),
)

_BY_NAME = {t.name: t for t in TOOLS}


def tool_spec(name: str) -> ToolSpec | None:
    """The tool called ``name``, or None."""
    return _BY_NAME.get(name)
