"""Types that cross a boundary: events, rules, notifications, errors.

Imports nothing else of ours, so every other package can depend on it.
"""

from schemas.errors import (
    AmbiguousDeliveryError,
    ConfigurationError,
    DeliveryError,
    EventError,
    NotifyError,
    PermanentDeliveryError,
    RefusedDeliveryError,
    RulesError,
    TransientDeliveryError,
)
from schemas.event import DeadLetterReason, Event
from schemas.notification import (
    FINAL,
    IN_FLIGHT,
    TERMINAL,
    TRANSITIONS,
    AttemptOutcome,
    Channel,
    NewNotification,
    Notification,
    Provider,
    PushId,
    Resolution,
    Status,
    TaskResult,
    ThrottleKey,
    can_move,
    sql_list,
)
from schemas.receipts import Receipt, ReceiptSource, Settled
from schemas.rules import Rule, RulesFile
from schemas.suppression import (
    NOT_E164,
    SUPPRESSED,
    InboundResult,
    InboundSms,
    Keyword,
    Reason,
    Suppression,
)

__all__ = [
    "FINAL",
    "IN_FLIGHT",
    "NOT_E164",
    "SUPPRESSED",
    "TERMINAL",
    "TRANSITIONS",
    "AmbiguousDeliveryError",
    "AttemptOutcome",
    "Channel",
    "ConfigurationError",
    "DeadLetterReason",
    "DeliveryError",
    "Event",
    "EventError",
    "InboundResult",
    "InboundSms",
    "Keyword",
    "NewNotification",
    "Notification",
    "NotifyError",
    "PermanentDeliveryError",
    "Provider",
    "PushId",
    "Reason",
    "Receipt",
    "ReceiptSource",
    "RefusedDeliveryError",
    "Resolution",
    "Rule",
    "RulesError",
    "RulesFile",
    "Settled",
    "Status",
    "Suppression",
    "TaskResult",
    "ThrottleKey",
    "TransientDeliveryError",
    "can_move",
    "sql_list",
]
