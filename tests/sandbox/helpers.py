"""What the emulator tests share: the test account, an SDK client aimed at the sandbox, and a
stand-in webhook receiver. Fixtures built from these live in conftest.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import firebase_admin
from firebase_admin import credentials, messaging
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from sandbox import Sandbox
from sandbox.google.credentials import write_service_account

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "sandbox-auth-token"
PROJECT = "demo-project"
FROM = "+15005550006"
TO = "+14155550100"
TWILIO_BASE = "https://api.twilio.com"
REPO_ROOT = Path(__file__).resolve().parents[2]


class SandboxTwilioHttpClient(TwilioHttpClient):
    """Sends Twilio SDK traffic to the sandbox and keeps the last response.

    TwilioRestException carries status/code/msg/details but no headers, so
    Retry-After is only reachable through the HTTP client's last response.
    """

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url
        self.last_response: TwilioResponse | None = None

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> TwilioResponse:
        url = url.replace(TWILIO_BASE, self.base_url, 1)
        self.last_response = super().request(method, url, *args, **kwargs)
        return self.last_response


def twilio_client(
    sandbox: Sandbox, token: str = AUTH_TOKEN, timeout: float | None = None
) -> Client:
    http = SandboxTwilioHttpClient(sandbox.url)
    http.timeout = timeout
    return Client(ACCOUNT_SID, token, http_client=http)


@contextmanager
def fcm_app(sandbox: Sandbox, key_dir: Path) -> Iterator[firebase_admin.App]:
    """A firebase-admin app whose service account and FCM endpoint are the sandbox's."""
    key = write_service_account(key_dir / "sa.json", sandbox.token_uri, PROJECT)
    app = firebase_admin.initialize_app(
        credentials.Certificate(str(key)), name=f"sandbox-{uuid.uuid4().hex}"
    )
    service = messaging._get_messaging_service(app)
    service._fcm_url = sandbox.fcm_url(PROJECT)
    try:
        yield app
    finally:
        service._client.session.close()
        firebase_admin.delete_app(app)


@contextmanager
def sandbox_cli(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`python -m sandbox ARGS` with its stdout piped: the process and the URL it prints
    first; stopped with SIGTERM after, which it must answer by exiting 0."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        yield proc, proc.stdout.readline().strip().rsplit(" ", 1)[-1]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        if proc.stdout is not None:
            proc.stdout.close()


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    form: dict[str, str]


class Receiver:
    """A stand-in for the application's webhook endpoint; answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[Received] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                with receiver._cond:
                    receiver.received.append(Received(self.path, dict(self.headers), form))
                    receiver._cond.notify_all()
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/webhooks/twilio/status") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.received) >= count, timeout):
                raise TimeoutError(f"got {len(self.received)} of {count} webhooks")
            return list(self.received)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
