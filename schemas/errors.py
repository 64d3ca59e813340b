"""The one error tree. Branches say what the caller must do, not where it failed."""

from __future__ import annotations

from schemas.event import DeadLetterReason


class NotifyError(Exception):
    """Root of every error this project raises on purpose."""


class EventError(NotifyError):
    """A stream entry that can never be processed: dead-letter it and acknowledge it."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class RulesError(NotifyError):
    """A rules file that must be rejected; `problems` are `FILE:LINE:COL: message` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class DeliveryError(NotifyError):
    """A provider call that did not succeed. `code` is the provider's code or one of ours."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TransientDeliveryError(DeliveryError):
    """Worth retrying later; `retry_after` is the provider's hint in seconds, if any."""

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class AmbiguousDeliveryError(TransientDeliveryError):
    """The request left, and no answer came back: the provider may have accepted it.

    Worth retrying, but only after asking the provider whether it has the message (SMS), so
    the retry cannot send it twice. A request that never left is a plain transient error.
    """


class RefusedDeliveryError(TransientDeliveryError):
    """The provider did not take the message, and says so: no connection could be made, or it
    answered with a documented refusal before accepting anything (429, 503). Worth retrying,
    and the one failure after which another provider may send it (CONTRACT section 13).
    """


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help: the recipient, the content or the account is wrong."""


class ConfigurationError(PermanentDeliveryError):
    """Our side is misconfigured (credentials, sender); operators must act, so it is loud."""
