"""buyer_agent: autonomous buyer agents for peaqOS Machine Markets."""

from buyer_agent._errors import (
    BudgetExceeded,
    BuyerAgentError,
    JournalError,
    JournalIntegrityError,
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
    StateError,
    TaskFileError,
    TransactionRevertedError,
    UnsupportedRailError,
)
from buyer_agent._money import Money
from buyer_agent._redact import Secret
from buyer_agent._version import __version__

__all__ = [
    "BudgetExceeded",
    "BuyerAgentError",
    "JournalError",
    "JournalIntegrityError",
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
    "StateError",
    "TaskFileError",
    "TransactionRevertedError",
    "UnsupportedRailError",
    "__version__",
]
