"""Reading a Twilio request without a server: body limits, strict forms, signatures, fields."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from schemas import ReceiptSource
from webhooks.app import WarningLimiter
from webhooks.callbacks import inbound_from, receipt_from
from webhooks.forms import MAX_BODY_BYTES, Rejected, parse_form, read_body
from webhooks.signature import Signatures

FORM = "application/x-www-form-urlencoded"
NOW = datetime(2026, 11, 25, tzinfo=UTC)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def read(length: str | None, *parts: bytes) -> bytes:
    return asyncio.run(read_body(length, chunks(*parts)))


def test_a_body_within_the_limit_is_read_whole() -> None:
    assert read("6", b"a=1", b"&b=") == b"a=1&b="
    assert read(None, b"x" * MAX_BODY_BYTES) == b"x" * MAX_BODY_BYTES


@pytest.mark.parametrize(
    ("length", "parts"),
    [(str(MAX_BODY_BYTES + 1), [b""]),  # refused before reading
     (None, [b"x" * 40_000, b"x" * 40_000]),  # chunked, refused mid-way
     ("10", [b"x" * (MAX_BODY_BYTES + 1)])],  # a Content-Length that lies
)  # fmt: skip
def test_a_body_over_the_limit_is_413(length: str | None, parts: list[bytes]) -> None:
    with pytest.raises(Rejected) as info:
        read(length, *parts)
    assert (info.value.status, info.value.reason) == (413, "too_large")


def test_a_content_length_that_is_not_a_number_is_400() -> None:
    with pytest.raises(Rejected) as info:
        read("-1", b"")
    assert info.value.status == 400


def test_a_form_decodes_percent_encoding_and_keeps_blank_values() -> None:
    body = b"MessageSid=SM1&Body=Hi+there%21+%E2%9C%93&ErrorCode="
    assert parse_form(body, f"{FORM}; charset=UTF-8") == {
        "MessageSid": "SM1",
        "Body": "Hi there! ✓",
        "ErrorCode": "",
    }


@pytest.mark.parametrize(
    ("content_type", "status"),
    [(None, 415), ("application/json", 415), ("multipart/form-data; boundary=x", 415),
     ("text/plain", 415)],
)  # fmt: skip
def test_only_urlencoded_forms_are_read(content_type: str | None, status: int) -> None:
    with pytest.raises(Rejected) as info:
        parse_form(b"a=1", content_type)
    assert info.value.status == status


@pytest.mark.parametrize(
    "body",
    [b"a=%ff", b"a=\xff\xfe", b"a=1&a=2", b"a=%00", b"%00=1",
     b"&".join(b"f%d=1" % i for i in range(300))],
)  # fmt: skip
def test_malformed_forms_are_400(body: bytes) -> None:
    with pytest.raises(Rejected) as info:
        parse_form(body, FORM)
    assert (info.value.status, info.value.reason) == (400, "malformed")


@given(st.binary(max_size=300))
def test_any_bytes_are_a_form_or_a_400(body: bytes) -> None:
    try:
        form = parse_form(body, FORM)
    except Rejected as exc:
        assert exc.status == 400
    else:
        assert all("\x00" not in k + v for k, v in form.items())


def test_signatures_are_checked_over_the_public_url_and_its_query() -> None:
    signatures = Signatures("token", "https://notify.example.com/")
    form = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    sign = RequestValidator("token").compute_signature
    good = sign("https://notify.example.com/webhooks/twilio/status", form)
    path = "/webhooks/twilio/status"
    assert signatures.problem(path, b"", form, good) is None
    # Twilio treats https://host and https://host:443 alike.
    with_port = sign("https://notify.example.com:443/webhooks/twilio/status", form)
    assert signatures.problem(path, b"", form, with_port) is None
    with_query = sign("https://notify.example.com/webhooks/twilio/status?x=1", form)
    assert signatures.problem(path, b"x=1", form, with_query) is None
    assert signatures.problem(path, b"x=2", form, with_query) == "bad_signature"
    assert signatures.problem(path, b"", {**form, "ErrorCode": "1"}, good) == "bad_signature"
    assert signatures.problem("/webhooks/twilio/inbound", b"", form, good) == "bad_signature"
    assert signatures.problem(path, b"", form, None) == "missing_signature"
    assert signatures.problem(path, b"", form, "") == "missing_signature"
    other = Signatures("another-token", "https://notify.example.com")
    assert other.problem(path, b"", form, good) == "bad_signature"


def test_a_status_callback_is_a_receipt() -> None:
    form = {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    receipt = receipt_from(form, "token-1", NOW)
    assert (receipt.provider_message_id, receipt.provider_status, receipt.error_code) == (
        "SM1",
        "undelivered",
        "30003",
    )
    assert receipt.idempotency_token == "token-1" and receipt.source is ReceiptSource.CALLBACK
    legacy = receipt_from({"SmsSid": "SM2", "SmsStatus": "Delivered", "ErrorCode": ""}, None, NOW)
    assert (legacy.provider_message_id, legacy.provider_status, legacy.error_code) == (
        "SM2",
        "delivered",
        None,
    )


@pytest.mark.parametrize(
    "form",
    [{}, {"MessageSid": "SM1"}, {"MessageStatus": "sent"},
     {"MessageSid": "SM 1", "MessageStatus": "sent"},
     {"MessageSid": "SM1", "MessageStatus": "x" * 40},
     {"MessageSid": "SM1", "MessageStatus": "sent", "ErrorCode": "30003; DROP"}],
)  # fmt: skip
def test_a_callback_without_usable_fields_is_400(form: dict[str, str]) -> None:
    with pytest.raises(Rejected) as info:
        receipt_from(form, None, NOW)
    assert info.value.status == 400


def test_an_inbound_message_needs_a_sid_and_a_sender() -> None:
    message = inbound_from({"MessageSid": "SM9", "From": "+14155550100", "Body": "STOP"})
    assert (message.message_sid, message.from_number, message.body) == (
        "SM9",
        "+14155550100",
        "STOP",
    )
    for form in ({"From": "+14155550100"}, {"MessageSid": "SM9"}):
        with pytest.raises(Rejected):
            inbound_from(form)


def test_warnings_are_limited_per_key_and_count_what_they_skipped() -> None:
    limiter = WarningLimiter(interval=60)
    key = ("status", "bad_signature")
    assert limiter.allow(key) == 0
    assert limiter.allow(key) is None and limiter.allow(key) is None
    assert limiter.allow(("status", "too_large")) == 0
    limiter.interval = 0
    assert limiter.allow(key) == 2
