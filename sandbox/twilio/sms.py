"""Twilio Programmable Messaging (2010-04-01 Messages) emulator."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from typing import Any

from sandbox.control.faults import Fault, split
from sandbox.server.protocol import Reply, Request, json_reply, retry_after
from sandbox.server.records import RecordedMessage, RequestRecord
from sandbox.server.state import State
from sandbox.twilio import listing
from sandbox.twilio.addresses import is_valid_number, is_valid_sender
from sandbox.twilio.lifecycle import initial_status, rfc2822
from sandbox.twilio.rewriting import smart_encode
from sandbox.twilio.segments import segments

PREFIX = "/2010-04-01/Accounts/"
_ROUTE = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages(?:/([^/]+))?\.json$")
MAX_BODY = 1600


def route(state: State, req: Request) -> Reply:
    match = _ROUTE.match(req.path)
    if match is None:
        return _error(Fault(status=404, code=20404, message=_not_found(req.path)))
    account, sid = match.group(1), match.group(2)
    if req.method == "POST" and sid is None:
        return _create(state, req, account)
    if req.method != "GET":
        return _error(Fault(status=405, code=20004, message="Method not allowed"))
    return _read(state, req, account, sid)


def _read(state: State, req: Request, account: str, sid: str | None) -> Reply:
    """A fetch or a list: credentials, then the read fault (`fail_sms_reads`), then the read.

    Logged like creates (recipient: the fetched message's `To`), so tests can count lookups.
    """
    denied = _check_auth(state, req, account)
    if denied is not None:
        state.recorder.log(RequestRecord("sms", "GET", req.path, 401, None, "20003"))
        return denied
    connection, fault = split(state.script.sms_read_fault())
    if connection is not None and connection.action == "reset":
        state.recorder.log(RequestRecord("sms", "GET", req.path, 0, None, "reset"))
        return Reply(0, action="reset")
    answer: Fault | dict[str, Any]
    if fault is not None:
        answer = fault
    else:
        answer = _list(state, req, account) if sid is None else _fetch(state, req, account, sid)
    if isinstance(answer, Fault):
        reply = _error(answer)
        record = RequestRecord(
            "sms", "GET", req.path, answer.status, None, str(answer.twilio_code())
        )
    else:
        reply = json_reply(200, answer)
        recipient = None if sid is None else str(answer["to"])
        action = None if connection is None else connection.action
        record = RequestRecord("sms", "GET", req.path, 200, recipient, action)
    state.recorder.log(record)
    if connection is None:
        return reply
    return reply.with_connection_fault(connection.action, connection.delay_s)


def _fetch(state: State, req: Request, account: str, sid: str) -> Fault | dict[str, Any]:
    found = state.recorder.find(sid)
    if found is None or found.channel != "sms" or found.response["account_sid"] != account:
        return Fault(status=404, code=20404, message=_not_found(req.path))
    return found.response


def _create(state: State, req: Request, account: str) -> Reply:
    form = req.form()
    to = form.get("To", "").strip()
    from_ = form.get("From", "").strip()
    service = form.get("MessagingServiceSid", "").strip()
    body = form.get("Body", "")
    state.script.delay("sms")
    denied = _check_auth(state, req, account)
    if denied is not None:
        state.recorder.log(RequestRecord("sms", "POST", req.path, 401, to, "20003"))
        return denied
    # Server-side trouble first, then what Twilio checks in the request, then the number.
    connection, fault = split(
        state.script.next_fault("sms", None),
        _validate(to, from_, service, body, form),
        # Through a Messaging Service the opt-out comes later, as a failed callback.
        Fault(status=400, code=21610) if to in state.optouts and from_ else None,
        state.script.sticky_fault(to),
    )
    if connection is not None and connection.action == "reset":
        state.recorder.log(RequestRecord("sms", "POST", req.path, 0, to, "reset"))
        return Reply(0, action="reset")
    if fault is not None:
        code = str(fault.twilio_code())
        state.recorder.log(RequestRecord("sms", "POST", req.path, fault.status, to, code))
        reply = _error(fault, to, from_)
    else:
        action = None if connection is None else connection.action
        state.recorder.log(RequestRecord("sms", "POST", req.path, 201, to, action))
        credentials = _basic_auth(req.headers.get("authorization", ""))
        reply = json_reply(201, _accept(state, account, form, credentials).response)
    if connection is None:
        return reply
    return reply.with_connection_fault(connection.action, connection.delay_s)


def _accept(
    state: State, account: str, form: dict[str, str], credentials: tuple[str, str] | None
) -> RecordedMessage:
    """Create the message and put it in its sender's queue."""
    to, from_ = form.get("To", "").strip(), form.get("From", "").strip()
    service, body = form.get("MessagingServiceSid", "").strip(), form.get("Body", "")
    if state.script.smart_encoding() or form.get("SmartEncoded", "").lower() == "true":
        body = smart_encode(body)
    now = time.time()
    sid = "SM" + secrets.token_hex(16)
    resource = _resource(account, sid, to, from_, service, body, now)
    message = RecordedMessage(
        channel="sms",
        id=sid,
        to=to,
        sender=from_ or service,
        body=body,
        payload=dict(form),
        response=resource,
        received_at=now,
        status=resource["status"],
    )
    state.recorder.record(message)
    # Before it is queued: its first callback may go out at once.
    state.callbacks.created(sid, credentials)
    state.outbox.submit(message)
    return message


def _validate(to: str, from_: str, service: str, body: str, form: dict[str, str]) -> Fault | None:
    # In the order Twilio checks them: the first that applies is the answer.
    problems = (
        (21604, not to),
        (21211, not is_valid_number(to)),
        (21603, not from_ and not service),
        (21212, bool(from_) and not is_valid_sender(from_)),
        (21602, not body and "MediaUrl" not in form and "ContentSid" not in form),
        (21617, len(body) > MAX_BODY),
    )
    code = next((code for code, applies in problems if applies), None)
    return None if code is None else Fault(status=400, code=code)


def _check_auth(state: State, req: Request, account: str) -> Reply | None:
    if state.twilio_auth is None:
        return None
    expected_sid, expected_token = state.twilio_auth
    given = _basic_auth(req.headers.get("authorization", ""))
    if given == (expected_sid, expected_token) and account == expected_sid:
        return None
    return _error(
        Fault(status=401, code=20003),
        headers=(("WWW-Authenticate", 'Basic realm="Twilio API"'),),
    )


def _basic_auth(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _error(
    fault: Fault,
    to: str = "",
    from_: str = "",
    headers: tuple[tuple[str, str], ...] = (),
) -> Reply:
    code = fault.twilio_code()
    payload = {
        "code": code,
        "message": fault.twilio_message(to, from_),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": fault.status,
    }
    return json_reply(fault.status, payload, headers + retry_after(fault.retry_after))


def _resource(
    account: str, sid: str, to: str, from_: str, service: str, body: str, now: float
) -> dict[str, Any]:
    date = rfc2822(now)
    uri = f"{PREFIX}{account}/Messages/{sid}"
    return {
        "account_sid": account,
        "api_version": "2010-04-01",
        "body": body,
        "date_created": date,
        "date_sent": None,
        "date_updated": date,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": from_ or None,
        "messaging_service_sid": service or None,
        "num_media": "0",
        "num_segments": str(segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": initial_status(from_),
        "subresource_uris": {
            "media": f"{uri}/Media.json",
            "feedback": f"{uri}/Feedback.json",
        },
        "to": to,
        "uri": f"{uri}.json",
    }


def _list(state: State, req: Request, account: str) -> Fault | dict[str, Any]:
    try:
        query = listing.parse_query(req.params())
    except listing.ListError as exc:
        return Fault(status=400, code=20001, message=str(exc))
    lag_s, queued_last = state.script.sms_list()
    newest = time.time() - lag_s
    visible = [
        m.response
        for m in reversed(state.recorder.messages("sms"))  # newest created first
        if m.response["account_sid"] == account and listing.matches(m.response, query)
        and (lag_s == 0 or (m.received_at or 0.0) <= newest)
    ]  # fmt: skip
    matching = listing.by_date_sent(visible, queued_last)
    try:
        return listing.build_page(matching, query, req.path)
    except listing.ListError as exc:
        return Fault(status=400, code=20001, message=str(exc))


def _not_found(path: str) -> str:
    return f"The requested resource {path} was not found"
