"""Sabong-specific errors: subclasses of the shared tree; errors.py says how each answers."""

from __future__ import annotations

from decimal import Decimal

from shared.exceptions import NotFound, PlatformError, StoreUnavailable


class WalletRefusal(PlatformError):
    """A credit or debit refused without moving money; `reason` labels the refusal metric."""

    reason = "refused"


class UserNotFound(WalletRefusal, NotFound):
    """No user (so no wallet) has this clientId."""

    message = "User not found"
    reason = "user_not_found"


class InsufficientBalance(WalletRefusal):
    """A debit larger than the balance; nothing was applied."""

    reason = "insufficient_balance"

    def __init__(self, balance: Decimal, amount: Decimal) -> None:
        super().__init__("insufficient balance")
        self.balance = balance
        self.amount = amount


class DuplicateReference(WalletRefusal):
    """The reference was already used for a different amount; nothing was applied."""

    reason = "duplicate_reference"

    def __init__(self, transaction_id: int) -> None:
        super().__init__("duplicate reference")
        self.transaction_id = transaction_id


class OutcomeUnknown(StoreUnavailable):
    """The database went away during the statement: it may or may not have committed."""


class ReconcileFailed(PlatformError):
    """reconcile (CLI): some wallets do not add up; `problems` maps each clientId to what
    is wrong."""

    def __init__(self, problems: dict[str, list[str]]) -> None:
        super().__init__("reconcile failed")
        self.problems = problems
