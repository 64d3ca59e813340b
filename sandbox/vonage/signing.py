"""Signed webhooks: a JWT in `Authorization: Bearer`, HS256 with the account's signature
secret, whose `payload_hash` claim is the SHA-256 (hex) of the exact body sent.

Variants for tests: `forged` (signed with another secret), `missing` (no header), and
`tampered` (signed over one body, another sent).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Literal

import jwt

Signature = Literal["valid", "forged", "missing", "tampered"]
SIGNATURES: tuple[Signature, ...] = ("valid", "forged", "missing", "tampered")


def claims(body: bytes, api_key: str, application_id: str) -> dict[str, object]:
    return {
        "iat": int(time.time()),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        "api_key": api_key,
        "application_id": application_id,
    }


def signed_request(
    body: bytes,
    secret: str,
    api_key: str,
    application_id: str,
    signature: Signature = "valid",
) -> tuple[bytes, dict[str, str]]:
    """The body to send and its headers, signed as `signature` says."""
    headers = {"Content-Type": "application/json"}
    if signature == "missing":
        return body, headers
    key = "not-the-signature-secret-but-as-long-as-one" if signature == "forged" else secret
    token = jwt.encode(claims(body, api_key, application_id), key, algorithm="HS256")
    headers["Authorization"] = f"Bearer {token}"
    if signature == "tampered":
        body = body.replace(b'"', b'"', 1) + b" "  # one byte more after signing
    return body, headers
