"""buyer_agent.workflow: the order state machine (data), its spec, facts and summary, the runner."""

from buyer_agent.workflow._crashpoint import CRASH_ENV, Crash, crash_after
from buyer_agent.workflow._facts import OrderFacts
from buyer_agent.workflow._fold import FactsFolder, fold
from buyer_agent.workflow._machine import (
    TRANSITIONS,
    Transition,
    build_machine,
    is_legal,
    mermaid_diagram,
    next_triggers,
)
from buyer_agent.workflow._observer import DriveObserver, NullObserver
from buyer_agent.workflow._pairing import DelegationPolicyLimits, PairingSession
from buyer_agent.workflow._pairing_share import PairingShare, SharedSession
from buyer_agent.workflow._runner import Runner, new_id
from buyer_agent.workflow._spec import Acceptance, Deadlines, OrderSpec
from buyer_agent.workflow._states import TERMINAL, OrderState
from buyer_agent.workflow._summary import OrderSummary, ProgressEvent

__all__ = [  # noqa: RUF022 - plain sorted(), as tests/test_exports.py checks
    "Acceptance",
    "CRASH_ENV",
    "Crash",
    "Deadlines",
    "DelegationPolicyLimits",
    "DriveObserver",
    "FactsFolder",
    "NullObserver",
    "OrderFacts",
    "OrderSpec",
    "OrderState",
    "OrderSummary",
    "PairingSession",
    "PairingShare",
    "ProgressEvent",
    "Runner",
    "SharedSession",
    "TERMINAL",
    "TRANSITIONS",
    "Transition",
    "build_machine",
    "crash_after",
    "fold",
    "is_legal",
    "mermaid_diagram",
    "new_id",
    "next_triggers",
]
