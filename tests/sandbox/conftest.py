"""The emulator fixtures: a fresh sandbox per test, SDK clients aimed at it, a receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import firebase_admin
import pytest
from twilio.rest import Client

from sandbox import Sandbox
from tests.sandbox import helpers
from tests.sandbox.helpers import Receiver, twilio_client


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def twilio(sandbox: Sandbox) -> Iterator[Client]:
    client = twilio_client(sandbox)
    yield client
    client.http_client.session.close()


@pytest.fixture
def fcm_app(sandbox: Sandbox, tmp_path: Path) -> Iterator[firebase_admin.App]:
    with helpers.fcm_app(sandbox, tmp_path) as app:
        yield app


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
