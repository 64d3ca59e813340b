"""Types that cross a boundary: events, rules, notifications, errors.

Imports nothing else of ours, so every other package can depend on it.
"""

from schemas.errors import (
    ConfigurationError,
    DeliveryError,
    EventError,
    NotifyError,
    PermanentDeliveryError,
    RulesError,
    TransientDeliveryError,
)
from schemas.event import Event
from schemas.notification import Channel, NewNotification, Notification, Status
from schemas.rules import Rule, RulesFile

__all__ = [
    "Channel",
    "ConfigurationError",
    "DeliveryError",
    "Event",
    "EventError",
    "NewNotification",
    "Notification",
    "NotifyError",
    "PermanentDeliveryError",
    "Rule",
    "RulesError",
    "RulesFile",
    "Status",
    "TransientDeliveryError",
]
