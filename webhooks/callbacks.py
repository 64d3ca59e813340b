"""What a signed Twilio form means: a receipt or an inbound message. Pure, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from notify.inbound_messages import InboundMessage
from schemas import Receipt, ReceiptSource
from webhooks.forms import Rejected

# Loose on purpose (Twilio adds prefixes over time), tight enough to keep junk out of the
# tables and the metrics.
_SID = re.compile(r"[A-Za-z0-9]{2,64}")
_STATUS = re.compile(r"[a-z_]{1,32}")
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
MAX_TOKEN = 200


def receipt_from(form: Mapping[str, str], token: str | None, now: datetime) -> Receipt:
    """A status callback as a receipt; Twilio's older Sms* names are accepted too."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    code = form.get("ErrorCode") or None
    if not _SID.fullmatch(sid):
        raise Rejected(400, "malformed", "MessageSid missing or not a SID")
    if not _STATUS.fullmatch(status):
        raise Rejected(400, "malformed", "MessageStatus missing or not a status")
    if code is not None and not _CODE.fullmatch(code):
        raise Rejected(400, "malformed", "ErrorCode is not a code")
    return Receipt(
        provider_message_id=sid,
        provider_status=status,
        error_code=code,
        received_at=now,
        source=ReceiptSource.CALLBACK,
        idempotency_token=(token or None) and token[:MAX_TOKEN],
    )


def inbound_from(form: Mapping[str, str]) -> InboundMessage:
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not _SID.fullmatch(sid):
        raise Rejected(400, "malformed", "MessageSid missing or not a SID")
    if not form.get("From"):
        raise Rejected(400, "malformed", "From missing")
    return InboundMessage.from_form({**form, "MessageSid": sid})
