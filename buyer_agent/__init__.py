"""buyer_agent: autonomous buyer agents for peaqOS Machine Markets."""

from buyer_agent._errors import (
    BudgetExceeded,
    BuyerAgentError,
    InsufficientFundsError,
    JournalError,
    JournalIntegrityError,
    LeaseLost,
    OrchestrationApiError,
    OrchestrationConfigError,
    OrchestrationError,
    OrchestrationNetworkError,
    OrchestrationOutcomeUnknown,
    OrchestrationValidationError,
    PaymentMismatchError,
    PaymentOutcomeUnknown,
    PolicyError,
    RailError,
    SignerError,
    StateError,
    TaskFileError,
    TransactionRevertedError,
    UnsupportedRailError,
)
from buyer_agent._money import Money
from buyer_agent._redact import Secret
from buyer_agent._version import __version__
from buyer_agent.agent import BuyerAgent, SyncBuyerAgent
from buyer_agent.task import Task, load_task
from buyer_agent.tools import AgentTools as _AgentTools  # noqa: F401 - attaches the agent's LLM tools

__all__ = [
    "BudgetExceeded",
    "BuyerAgent",
    "BuyerAgentError",
    "InsufficientFundsError",
    "JournalError",
    "JournalIntegrityError",
    "LeaseLost",
    "Money",
    "OrchestrationApiError",
    "OrchestrationConfigError",
    "OrchestrationError",
    "OrchestrationNetworkError",
    "OrchestrationOutcomeUnknown",
    "OrchestrationValidationError",
    "PaymentMismatchError",
    "PaymentOutcomeUnknown",
    "PolicyError",
    "RailError",
    "Secret",
    "SignerError",
    "StateError",
    "SyncBuyerAgent",
    "Task",
    "TaskFileError",
    "TransactionRevertedError",
    "UnsupportedRailError",
    "__version__",
    "load_task",
]
