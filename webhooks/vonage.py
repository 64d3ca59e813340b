"""Vonage's webhooks (CONTRACT section 13): status callbacks and inbound SMS, as JSON.

Each request carries a JWT in `Authorization: Bearer`, HS256 with VONAGE_SIGNATURE_SECRET,
whose `payload_hash` claim is the SHA-256 of the body. Both are checked before the body is
read as anything: a missing or bad token, or a body that does not hash to its claim, is 403
and changes nothing. What a verified request says goes to the same receipt and opt-out code
as Twilio's, so STOP at either provider suppresses the number for both.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import jwt
import msgspec

from notify.costs import Price
from notify.inbound_messages import InboundMessage
from schemas import InboundSms, Receipt, ReceiptSource
from webhooks.forms import Rejected

_UUID = re.compile(r"[0-9a-fA-F-]{16,64}")
_STATUS = re.compile(r"[a-z_]{1,32}")
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,32}")


class VonageSignatures:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def problem(self, authorization: str, body: bytes) -> str | None:
        """None when the token is Vonage's and covers this body, else the rejection reason."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "missing_signature"
        try:
            claims = jwt.decode(
                token.strip(), self._secret, algorithms=["HS256"],
                options={"require": ["iat", "payload_hash"]},
            )  # fmt: skip
        except jwt.PyJWTError:
            return "bad_signature"
        digest = hashlib.sha256(body).hexdigest()
        if not hmac.compare_digest(str(claims["payload_hash"]).lower(), digest):
            return "tampered"
        return None


def payload(body: bytes) -> dict[str, Any]:
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise Rejected(400, "malformed", "body is not JSON") from None
    if not isinstance(decoded, dict):
        raise Rejected(400, "malformed", "body is not a JSON object")
    return decoded


def number(raw: object) -> str:
    """Vonage writes numbers without `+`; the suppression ledger keeps E.164."""
    text = str(raw or "").strip()
    return f"+{text}" if text.isdigit() else text


def receipt_from(data: Mapping[str, Any], now: datetime) -> Receipt:
    uuid = str(data.get("message_uuid") or "")
    status = str(data.get("status") or "").lower()
    if not _UUID.fullmatch(uuid):
        raise Rejected(400, "malformed", "message_uuid missing or not a UUID")
    if not _STATUS.fullmatch(status):
        raise Rejected(400, "malformed", "status missing or not a status")
    return Receipt(
        provider_message_id=uuid,
        provider_status=status,
        error_code=_error_code(data.get("error")),
        received_at=now,
        source=ReceiptSource.CALLBACK,
    )


def _error_code(error: object) -> str | None:
    """The code of a status's `error`: its `type`'s fragment, else its `title`."""
    if not isinstance(error, dict):
        return None
    kind = str(error.get("type") or "")
    code = kind.rsplit("#", 1)[1] if "#" in kind else str(error.get("title") or "")
    return code if _CODE.fullmatch(code) else None


def price_from(data: Mapping[str, Any]) -> Price | None:
    """Vonage's `usage` (`{"currency": "EUR", "price": "0.0333"}`), when it reports one."""
    usage = data.get("usage")
    if not isinstance(usage, dict) or not usage.get("price") or not usage.get("currency"):
        return None
    try:
        price = Decimal(str(usage["price"]))
    except InvalidOperation:
        return None
    if price <= 0:
        return None
    return Price(str(data["message_uuid"]), price, str(usage["currency"])[:8])


def inbound_from(data: Mapping[str, Any]) -> tuple[InboundMessage, InboundSms]:
    uuid = str(data.get("message_uuid") or "")
    if not _UUID.fullmatch(uuid):
        raise Rejected(400, "malformed", "message_uuid missing or not a UUID")
    sender = number(data.get("from"))
    if not sender:
        raise Rejected(400, "malformed", "from missing")
    to, text = number(data.get("to")), str(data.get("text") or "")
    params = {
        k: v if isinstance(v, str) else msgspec.json.encode(v).decode() for k, v in data.items()
    }
    message = InboundMessage(
        message_sid=uuid, from_number=sender, to_number=to or None, body=text,
        account_sid=None, opt_out_type=None, params=params,
    )  # fmt: skip
    return message, InboundSms(message_sid=uuid, from_=sender, to=to, body=text)
