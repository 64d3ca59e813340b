"""What differs between the Celery brokers we support: Redis and RabbitMQ (AMQP).

The consumer's publisher and the workers' app both take their broker options from here, so
a message the consumer publishes and one a worker re-publishes (a retry, a send-slot wait,
beat's dispatch) are held to the same guarantee.
"""

from __future__ import annotations

from typing import Any

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def is_redis(url: str) -> bool:
    return url.startswith(_REDIS_SCHEMES)


def broker_options(url: str, visibility_timeout: float | None = None) -> dict[str, Any]:
    """Celery settings for the broker `url` names.

    Redis: unacknowledged messages come back after the visibility timeout. AMQP: publisher
    confirms, so a publish returns only once RabbitMQ has taken the message (without them a
    message in flight when a connection drops is lost silently, and quorum queues drop what
    a closed channel published); RabbitMQ itself redelivers what a dead connection held.
    """
    if is_redis(url):
        options = {} if visibility_timeout is None else {"visibility_timeout": visibility_timeout}
        return {"broker_transport_options": options}
    return {"broker_transport_options": {"confirm_publish": True}}
