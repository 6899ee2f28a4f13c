"""One error tree for the whole framework.

::

    BuyerAgentError
    ├── OrchestrationError                 the market client (names kept from peaq's SDK)
    │   ├── OrchestrationApiError          the server answered with an error (code, status_code, details)
    │   │   └── OrchestrationServerError   a 5xx to a write not safe to repeat (also an unknown outcome)
    │   ├── OrchestrationNetworkError      no answer; the request never reached the server   (retryable)
    │   │   ├── OrchestrationOutcomeUnknown the request may have reached the server: reconcile
    │   │   │   └── OrchestrationServerError (the same class: both an answer and an unknown outcome)
    │   │   └── OrchestrationRequestRefused the market closed the connection on an unread body
    │   ├── OrchestrationConfigError       bad URL / missing configuration
    │   └── OrchestrationValidationError   a request the client refuses to send (field, constraint)
    ├── RailError                          a payment rail or chain failed
    │   ├── UnsupportedRailError           no rail can pay this intent (before money moves)
    │   ├── InsufficientFundsError         the wallet cannot cover the payment or its gas (nothing signed)
    │   ├── TransactionRevertedError       mined, but reverted (reason)
    │   ├── PaymentOutcomeUnknown          sent, outcome not known yet: reconcile, never re-sign
    │   └── PaymentMismatchError           what the chain shows differs from what was agreed
    ├── SignerError                        a signer refused, failed or answered with a wrong signature
    ├── PolicyError                        our own guards; never retried
    │   └── BudgetExceeded
    ├── StateError                         a step out of order (state, allowed)
    ├── TaskFileError                      a bad task file (field, line)
    └── JournalError
        ├── JournalIntegrityError          a journal that fails its hash chain or the machine (seq)
        └── LeaseLost                      a write under a lease another driver has taken over

Every error holds its data as attributes and says whether repeating the same call may succeed
(``retryable``). Most carry a ``code`` (``RAIL_ERROR``, ``INSUFFICIENT_FUNDS``, ``POLICY_REFUSED``…):
what an order's journaled error and the command line show, never the class's name.
Messages never contain secrets: details are redacted before they are attached.
"""

from __future__ import annotations

from typing import Any

from buyer_agent._redact import redact

__all__ = [
    "BudgetExceeded",
    "BuyerAgentError",
    "InsufficientFundsError",
    "JournalError",
    "JournalIntegrityError",
    "LeaseLost",
    "OrchestrationApiError",
    "OrchestrationConfigError",
    "OrchestrationError",
    "OrchestrationNetworkError",
    "OrchestrationOutcomeUnknown",
    "OrchestrationRequestRefused",
    "OrchestrationServerError",
    "OrchestrationValidationError",
    "PaymentMismatchError",
    "PaymentOutcomeUnknown",
    "PolicyError",
    "RailError",
    "SignerError",
    "StateError",
    "TaskFileError",
    "TransactionRevertedError",
    "UnsupportedRailError",
]


class BuyerAgentError(Exception):
    """Base of every error the framework raises."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return self.message


# --- market client -----------------------------------------------------------------------------


class OrchestrationError(BuyerAgentError):
    """Any failure talking to the Machine Markets API."""


class OrchestrationApiError(OrchestrationError):
    """The server answered with an error envelope (or a body the client could not use).

    ``status_code`` is 0 for an answer whose JSON does not match the documented shape
    (``INVALID_RESPONSE_SHAPE``); an answer with no usable JSON at all is ``BAD_RESPONSE`` with the
    status the market sent. ``details`` is redacted of secrets.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status_code: int,
        details: Any = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        retryable = status_code == 429 or status_code >= 500
        super().__init__(f"{code}: {message}" if message else code, retryable=retryable)
        self.code = code
        self.status_code = status_code
        self.details = redact(details)
        self.request_id = request_id
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"OrchestrationApiError(code={self.code!r}, status_code={self.status_code}, "
            f"message={self.message!r})"
        )


class OrchestrationNetworkError(OrchestrationError):
    """A network failure.

    This class itself means the request did not reach the server (connect error, DNS, refused):
    safe to repeat. Its subclass :class:`OrchestrationOutcomeUnknown` means it may have reached it;
    catch that one first where a write must be reconciled rather than repeated.
    """

    retryable = True
    code = "MARKET_UNREACHABLE"


class OrchestrationOutcomeUnknown(OrchestrationNetworkError):
    """The request may have reached the server but no answer came back (read timeout, reset).

    A write in this state may or may not have happened: reconcile by reading, do not guess.
    """

    code = "MARKET_NO_ANSWER"


class OrchestrationServerError(OrchestrationApiError, OrchestrationOutcomeUnknown):
    """The market answered a write that is not safe to repeat with a 5xx.

    A 5xx says nothing of whether the write was applied before the failure, so this is both the
    market's error (``code``, ``status_code``, ``details``) and an unknown outcome: catch
    :class:`OrchestrationOutcomeUnknown` to reconcile it by reading, as after a lost answer.
    """

    @classmethod
    def from_answer(cls, exc: OrchestrationApiError, what: str) -> OrchestrationServerError:
        """The same answer, for the write ``what`` (``POST /market/orders``)."""
        said = exc.message.removeprefix(f"{exc.code}: ")
        return cls(
            exc.code,
            f"{what}: the market answered HTTP {exc.status_code}: {said}; the request may have been applied",
            status_code=exc.status_code,
            details=exc.details,
            request_id=exc.request_id,
            retry_after=exc.retry_after,
        )


class OrchestrationRequestRefused(OrchestrationNetworkError):
    """The market closed the connection before it had read the whole request body.

    It cannot have acted on a request it never read, and the same body meets the same refusal (a
    body too large for it, typically answered 413 while the client was still sending): never retried.
    """

    retryable = False
    code = "REQUEST_REFUSED"


class OrchestrationConfigError(OrchestrationError):
    """The client is misconfigured (missing or invalid URL, unusable settings)."""

    code = "CONFIG_ERROR"


class OrchestrationValidationError(OrchestrationError, ValueError):
    """The client refuses to send a request: ``field`` breaks ``constraint``."""

    code = "INVALID_REQUEST"

    def __init__(self, field: str, constraint: str, message: str | None = None) -> None:
        super().__init__(message or f"{field}: {constraint}")
        self.field = field
        self.constraint = constraint


# --- rails -------------------------------------------------------------------------------------


class RailError(BuyerAgentError):
    """A payment rail or its chain failed."""

    code = "RAIL_ERROR"


class UnsupportedRailError(RailError):
    """No registered rail can pay this payment intent. Raised before any money moves."""

    code = "UNSUPPORTED_RAIL"

    def __init__(self, rail_type: str, chain: str | None, available: list[str]) -> None:
        super().__init__(
            f"no rail for type {rail_type!r} on chain {chain!r}; available: {', '.join(available)}"
        )
        self.rail_type = rail_type
        self.chain = chain
        self.available = available


class InsufficientFundsError(RailError):
    """The payer's wallet holds less than the payment needs: the token amount, or gas for its fees.

    Read from the chain before anything is signed, so a transfer that would revert (and burn gas) is
    never sent. ``asset`` is what is short (``"USDC"``, ``"ETH"``…), ``have`` and ``need`` are the two
    amounts as text with their symbol, ``address`` the wallet and ``chain`` its CAIP-2 id. Never
    retried: a wallet is topped up by a person.
    """

    code = "INSUFFICIENT_FUNDS"

    def __init__(self, asset: str, *, have: str, need: str, address: str, chain: str, why: str = "") -> None:
        super().__init__(
            f"not enough {asset} to pay: the wallet {address} holds {have} on {chain}, "
            f"the payment needs {need}{why}; nothing was signed (send {asset} to {address})",
            retryable=False,
        )
        self.asset = asset
        self.have = have
        self.need = need
        self.address = address
        self.chain = chain


class TransactionRevertedError(RailError):
    """The transaction was mined and reverted; ``reason`` is the decoded revert reason if any."""

    code = "TRANSACTION_REVERTED"

    def __init__(self, tx_id: str, reason: str | None) -> None:
        super().__init__(f"transaction {tx_id} reverted: {reason or 'no reason given'}")
        self.tx_id = tx_id
        self.reason = reason


class PaymentOutcomeUnknown(RailError):
    """A transaction was sent but its outcome is not known yet. Reconcile by id; never re-sign."""

    retryable = True
    code = "PAYMENT_OUTCOME_UNKNOWN"

    def __init__(self, tx_id: str, message: str | None = None) -> None:
        super().__init__(message or f"outcome of {tx_id} is not known yet")
        self.tx_id = tx_id


class PaymentMismatchError(RailError):
    """What the chain or the market shows differs from what was agreed (amount, payee, token)."""

    code = "PAYMENT_MISMATCH"

    def __init__(self, field: str, expected: object, actual: object) -> None:
        super().__init__(f"{field} mismatch: expected {expected!r}, got {actual!r}")
        self.field = field
        self.expected = expected
        self.actual = actual


# --- signers -----------------------------------------------------------------------------------


class SignerError(BuyerAgentError):
    """A signer could not sign, or its signature is not used.

    It was unreachable (``retryable``), refused, or answered with a signature over something other
    than what was asked, or by another key than the expected address.
    """

    code = "SIGNER_ERROR"


# --- guards, state, input ----------------------------------------------------------------------


class PolicyError(BuyerAgentError):
    """The framework's own budget or delegation-policy guard refused. Never retried."""

    code = "POLICY_REFUSED"

    def __init__(self, message: str, *, rule: str = "policy") -> None:
        super().__init__(message, retryable=False)
        self.rule = rule


class BudgetExceeded(PolicyError):
    """An amount would exceed the order budget, the per-transaction or the daily limit."""

    code = "BUDGET_EXCEEDED"

    def __init__(self, message: str, *, rule: str = "budget") -> None:
        super().__init__(message, rule=rule)


class StateError(BuyerAgentError):
    """A step was asked for that the order's current state does not allow."""

    def __init__(self, message: str, *, state: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.state = state
        self.allowed = allowed


class TaskFileError(BuyerAgentError, ValueError):
    """A task file is malformed: ``field`` (a dotted path) at ``line`` is wrong."""

    def __init__(self, field: str, message: str, *, line: int | None = None) -> None:
        where = f" (line {line})" if line is not None else ""
        super().__init__(f"{field}{where}: {message}")
        self.field = field
        self.line = line


class JournalError(BuyerAgentError):
    """The journal cannot be read or written."""


class JournalIntegrityError(JournalError):
    """A journal fails verification at event ``seq`` (hash chain broken or an illegal transition)."""

    def __init__(self, seq: int, message: str) -> None:
        super().__init__(f"event {seq}: {message}")
        self.seq = seq


class LeaseLost(JournalError):
    """A write made under a lease that is no longer the order's (expired, or taken by another driver).

    The writer must stop driving the order: whoever holds it now goes on from the journal.
    """

    def __init__(self, order_id: str, owner: str, epoch: int) -> None:
        super().__init__(f"order {order_id}: the lease of {owner} (epoch {epoch}) is no longer held")
        self.order_id = order_id
        self.owner = owner
        self.epoch = epoch
