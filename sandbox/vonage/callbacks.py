"""Status and inbound webhooks, signed (sandbox/vonage/signing.py), from one sender thread.

Each accepted SMS gets `submitted` and then, `delivery_delay_s` later, its final status:
`delivered`, or what `set_outcome` set for the number (`rejected`, `undeliverable`, with an
error). Duplicate and reversed deliveries are modes (`duplicate_callbacks`,
`reverse_callbacks`); every delivery and the application's answer is logged.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.vonage.problems import BASE
from sandbox.vonage.signing import Signature, signed_request
from sandbox.vonage.state import VonageMessage, VonageState

PRICE = "0.0333"  # EUR per message, as in Vonage's examples


@dataclass(frozen=True)
class Delivery:
    kind: str  # "status" or "inbound"
    url: str
    body: dict[str, Any]
    signature: Signature
    answer: int  # the application's HTTP status; 0: no answer


def timestamp(at: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def status_body(
    message: VonageMessage, status: str, error: tuple[str, str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_uuid": message.uuid,
        "to": message.to,
        "from": message.from_,
        "timestamp": timestamp(),
        "status": status,
        "channel": "sms",
        "sms": {"count_total": "1"},
    }
    if status in ("submitted", "delivered"):
        body["usage"] = {"currency": "EUR", "price": PRICE}
    if message.client_ref:
        body["client_ref"] = message.client_ref
    if error is not None:
        code, detail = error
        body["error"] = {"type": f"{BASE}/messages#{code}", "title": int(code), "detail": detail}
    return body


class Callbacks:
    """A heap of webhooks due, sent in time order by one daemon thread."""

    def __init__(self, state: VonageState, proxy: str | None = None) -> None:
        self.state = state
        self.proxy = proxy.rstrip("/") if proxy else None
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, str, str, dict[str, Any], Signature]] = []
        self._seq = itertools.count()
        self.deliveries: list[Delivery] = []
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="vonage-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)

    def reset(self) -> None:
        with self._cond:
            self._due.clear()
            self.deliveries.clear()

    def on_accept(self, message: VonageMessage) -> None:
        url = message.webhook_url or self.state.status_url
        if not url:
            return
        now = time.time()
        outcome = self.state.outcome(message.to)
        detail = {"rejected": "Message rejected", "undeliverable": "Message undeliverable"}
        final: tuple[str, tuple[str, str] | None] = (
            ("delivered", None)
            if outcome is None
            else (outcome[0], (outcome[1], detail.get(outcome[0], "failed")))
        )
        steps = [
            (now, status_body(message, "submitted")),
            (now + self.state.delivery_delay_s, status_body(message, final[0], final[1])),
        ]
        if self.state.reverse_callbacks:  # the final report first, then `submitted`
            steps = [(now, steps[1][1]), (now + 0.05, steps[0][1])]
        times = 2 if self.state.duplicate_callbacks else 1
        for at, body in steps:
            for _ in range(times):
                self.post(url, "status", body, at=at)

    def post(
        self,
        url: str,
        kind: str,
        body: dict[str, Any],
        *,
        at: float | None = None,
        signature: Signature = "valid",
    ) -> None:
        with self._cond:
            due = time.time() if at is None else at
            heapq.heappush(self._due, (due, next(self._seq), url, kind, body, signature))
            self._cond.notify_all()

    def send_now(
        self, url: str, kind: str, body: dict[str, Any], signature: Signature = "valid"
    ) -> Delivery:
        """Deliver on the caller's thread and return the answer (tests' direct calls)."""
        return self._deliver(url, kind, body, signature)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._due or self._due[0][0] > time.time()):
                    wait = None if not self._due else max(0.0, self._due[0][0] - time.time())
                    self._cond.wait(wait)
                if self._stopping:
                    return
                _, _, url, kind, body, signature = heapq.heappop(self._due)
            self._deliver(url, kind, body, signature)

    def _deliver(self, url: str, kind: str, body: dict[str, Any], signature: Signature) -> Delivery:
        raw = json.dumps(body, separators=(",", ":")).encode()
        s = self.state
        if self.proxy is not None:
            parts = urllib.parse.urlsplit(url)
            url = self.proxy + urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))
        data, headers = signed_request(
            raw, s.signature_secret, s.api_key, s.application_id or "", signature
        )
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status = int(answer.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = 0
        delivery = Delivery(kind, url, body, signature, status)
        with self._cond:
            self.deliveries.append(delivery)
            self._cond.notify_all()
        if kind == "status":
            for message in s.snapshot():
                if message.uuid == body.get("message_uuid"):
                    message.statuses.append(str(body.get("status")))
        return delivery

    def wait_for(self, count: int, timeout: float, kind: str | None = None) -> list[Delivery]:
        def seen() -> list[Delivery]:
            return [d for d in self.deliveries if kind in (None, d.kind)]

        with self._cond:
            if not self._cond.wait_for(lambda: len(seen()) >= count, timeout):
                raise TimeoutError(f"expected {count} Vonage webhooks, got {len(seen())}")
            return seen()
