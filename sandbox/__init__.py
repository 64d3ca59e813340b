"""Local emulators for the Twilio Messages, Google OAuth2 and FCM v1 APIs.

    from sandbox import Sandbox
    with Sandbox() as sb:
        ...  # point SDKs at sb.url, then assert on sb.messages()

Run standalone with ``python -m sandbox --port 8099``. What each emulator checks, the
message lifecycle, faults, webhooks and the whole API: sandbox/README.md.
"""

from sandbox.control.client import SandboxClient
from sandbox.control.faults import Channel, Fault
from sandbox.server.emulator import Sandbox
from sandbox.server.records import RecordedMessage, RequestRecord
from sandbox.twilio.webhooks import WebhookDelivery

__all__ = [
    "Channel",
    "Fault",
    "RecordedMessage",
    "RequestRecord",
    "Sandbox",
    "SandboxClient",
    "WebhookDelivery",
]
