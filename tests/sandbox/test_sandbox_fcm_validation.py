"""What the FCM emulator refuses before it looks at the device, answered as FCM answers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import firebase_admin
import pytest
import requests
from firebase_admin import credentials

from sandbox import Sandbox
from sandbox.google.credentials import write_service_account
from sandbox.google.identifiers import registration_token
from tests.sandbox.helpers import PROJECT

TOKEN = registration_token("validation")


# One sandbox for the module, overriding conftest's per-test one: a refused message
# leaves nothing behind, so the cases cannot see each other.
@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module")
def bearer(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    key = write_service_account(tmp_path_factory.mktemp("sa") / "sa.json", sandbox.token_uri,
                                PROJECT)  # fmt: skip
    app = firebase_admin.initialize_app(credentials.Certificate(str(key)),
                                        name=f"v-{uuid.uuid4().hex}")  # fmt: skip
    yield app.credential.get_access_token().access_token
    firebase_admin.delete_app(app)


def send(sandbox: Sandbox, bearer: str, **fields: Any) -> tuple[int, dict[str, Any]]:
    message = {"token": TOKEN, "notification": {"body": "hi"}, **fields}
    reply = requests.post(sandbox.fcm_url(PROJECT), json={"message": message},
                          headers={"Authorization": f"Bearer {bearer}"}, timeout=10)  # fmt: skip
    return reply.status_code, reply.json()


@pytest.mark.parametrize(
    ("fields", "text", "fcm_detail"),
    [
        ({"data": {"k": "x" * 4100}}, "Message is too big", True),
        ({"notification": {"body": "é" * 2100}}, "Message is too big", True),
        ({"data": {"from": "me"}}, "Invalid data payload key: from", True),
        ({"data": {"google.sent_time": "1"}}, "Invalid data payload key", True),
        ({"data": {"gcm.notification.x": "1"}}, "Invalid data payload key", True),
        ({"android": {"ttl": "1h"}}, "'message.android.ttl'", True),
        ({"android": {"ttl": "2419201s"}}, "'message.android.ttl'", True),
        ({"data": {"n": 12}}, "Invalid value at 'message.data[0].value' (TYPE_STRING), 12", False),
        ({"notification": {"title": 5}}, "'message.notification.title' (TYPE_STRING)", False),
        ({"colour": "red"}, "Unknown name \"colour\" at 'message'", False),
        ({"android": {"notification": {"tagg": "x"}}}, 'Unknown name "tagg"', False),
    ],
)
def test_what_fcm_refuses_is_a_400_invalid_argument(
    sandbox: Sandbox, bearer: str, fields: dict[str, Any], text: str, fcm_detail: bool
) -> None:
    status, body = send(sandbox, bearer, **fields)
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    assert text in body["error"]["message"]
    assert ("details" in body["error"]) is fcm_detail
    assert not [m for m in sandbox.messages("push") if m.to == TOKEN]


def test_what_fcm_allows_is_sent(sandbox: Sandbox, bearer: str) -> None:
    tagged = {
        "android": {"ttl": "2419200s", "notification": {"tag": "notify-1"}},
        "apns": {"headers": {"apns-collapse-id": "notify-1"}},
        "data": {"collapse_key": "allowed", "k": "x" * 3000},
    }
    assert send(sandbox, bearer, **tagged)[0] == 200
