"""The webhook routes (docs/interfaces.md section 6): workers name them in StatusCallback, and
`notify webhooks` serves them; signatures are computed over NOTIFY_PUBLIC_URL plus these."""

from __future__ import annotations

STATUS_CALLBACK_PATH = "/webhooks/twilio/status"
INBOUND_PATH = "/webhooks/twilio/inbound"
VONAGE_STATUS_PATH = "/webhooks/vonage/status"
VONAGE_INBOUND_PATH = "/webhooks/vonage/inbound"
