"""Client for the /_sandbox/ control API, for tests in another process."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

import msgspec

from sandbox.control.faults import Channel, FaultSpec, as_fault
from sandbox.control.specs import ControlCalls, InboundSpec, StatusCallbackSpec
from sandbox.server.records import RecordedMessage, RequestRecord
from sandbox.twilio.webhooks import WebhookDelivery


class SandboxClient(ControlCalls):
    """The `Sandbox` methods, for a sandbox in another process (over /_sandbox/)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # Never route loopback control calls through an http_proxy from the env.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "health")
        return result

    def messages(self, channel: Channel | None = None) -> list[RecordedMessage]:
        raw = self._call("GET", "messages", _query(channel=channel))
        return [RecordedMessage.from_json(m) for m in raw]

    def requests(self, channel: str | None = None) -> list[RequestRecord]:
        raw = self._call("GET", "requests", _query(channel=channel))
        return [RequestRecord.from_json(r) for r in raw]

    def wait_for(
        self, count: int, timeout: float = 5.0, channel: Channel | None = None
    ) -> list[RecordedMessage]:
        """Long-polls the server; raises TimeoutError like Sandbox.wait_for."""
        query = _query(channel=channel, wait_for=count, timeout=timeout)
        raw = self._call("GET", "messages", query, wait=timeout)
        return [RecordedMessage.from_json(m) for m in raw]

    def reset(self) -> None:
        self._call("POST", "reset", body={})

    def get_script(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "script")
        return result

    def script(self, spec: Mapping[str, Any]) -> None:
        self._call("POST", "script", body=dict(spec))

    def set_latency(self, ms: float, channel: Channel | None = None) -> None:
        key = "latency_ms" if channel is None else "channel_latency_ms"
        self.script({key: ms if channel is None else {channel: ms}})

    def queue_errors(self, channel: Channel, errors: Iterable[FaultSpec]) -> None:
        self.script({"queue": {channel: [as_fault(e).to_json() for e in errors]}})

    def storm(self, channel: Channel, count: int, error: FaultSpec) -> None:
        self.script({"storm": {channel: {"count": count, "error": as_fault(error).to_json()}}})

    def fail_recipient(self, recipient: str, error: FaultSpec | None) -> None:
        fault = None if error is None else as_fault(error).to_json()
        self.script({"fail_recipients": {recipient: fault}})

    def fail_sms_reads(self, error: FaultSpec | None) -> None:
        fault = None if error is None else as_fault(error).to_json()
        self.script({"fail_sms_reads": fault})

    def set_sms_list(self, lag_s: float = 0.0, queued: str = "first") -> None:
        self.script({"sms_list": {"lag_s": lag_s, "queued": queued}})

    def set_smart_encoding(self, on: bool) -> None:
        self.script({"smart_encoding": on})

    def fail_token_requests(self, faults: Iterable[FaultSpec]) -> None:
        self.script({"token_faults": [as_fault(f).to_json() for f in faults]})

    def refuse_connections(self, seconds: float) -> None:
        """The sandbox stops listening for `seconds`; control calls are refused meanwhile."""
        self._call("POST", "refuse", body={"seconds": seconds})

    # --- the SMS lifecycle ---

    def sms_config(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "sms")
        return result

    def set_sms_rate(self, rate: float | None, sender: str | None = None) -> None:
        spec = {"rate": rate} if sender is None else {"sender_rates": {sender: rate}}
        self._call("POST", "sms", body=spec)

    def release(self, sender: str | None = None, count: int | None = None) -> int:
        result = self._call("POST", "sms/release", body={"sender": sender, "count": count})
        return int(result["released"])

    def set_delivery_delay(self, seconds: float) -> None:
        self._call("POST", "sms", body={"delivery_delay_s": seconds})

    def set_max_queue(self, seconds: float) -> None:
        self._call("POST", "sms", body={"max_queue_s": seconds})

    def set_price_delay(self, seconds: float) -> None:
        self._call("POST", "sms", body={"price_delay_s": seconds})

    def set_sms_outcome(
        self, recipient: str, status: str | None, error_code: int | None = None
    ) -> None:
        outcome = None if status is None else {"status": status, "error_code": error_code}
        self._call("POST", "sms", body={"outcomes": {recipient: outcome}})

    def wait_for_status(self, sid: str, status: str, timeout: float = 5.0) -> RecordedMessage:
        query = _query(sid=sid, status=status, timeout=timeout)
        return RecordedMessage.from_json(self._call("GET", "sms/status", query, wait=timeout))

    # --- webhooks ---

    def set_webhook_auth_token(self, token: str | None) -> None:
        self._call("POST", "webhooks", body={"auth_token": token})

    def deliver_status_callback(self, spec: StatusCallbackSpec) -> list[WebhookDelivery]:
        raw = self._call("POST", "sms/callback", body=spec, wait=spec.repeat * 10.0)
        return [WebhookDelivery.from_json(d) for d in raw]

    def webhooks(self, kind: str | None = None) -> list[WebhookDelivery]:
        raw = self._call("GET", "webhooks", _query(kind=kind))
        return [WebhookDelivery.from_json(d) for d in raw]

    def wait_for_webhooks(
        self, count: int, timeout: float = 5.0, kind: str | None = None
    ) -> list[WebhookDelivery]:
        query = _query(kind=kind, wait_for=count, timeout=timeout)
        raw = self._call("GET", "webhooks", query, wait=timeout)
        return [WebhookDelivery.from_json(d) for d in raw]

    # --- opt-outs and incoming SMS ---

    def opt_out(self, number: str) -> None:
        self._call("POST", "optouts", body={"add": [number]})

    def opt_in(self, number: str) -> None:
        self._call("POST", "optouts", body={"remove": [number]})

    def opted_out(self) -> list[str]:
        return [str(n) for n in self._call("GET", "optouts")]

    def deliver_inbound(self, spec: InboundSpec) -> WebhookDelivery:
        return WebhookDelivery.from_json(self._call("POST", "sms/inbound", body=spec, wait=10.0))

    def _call(
        self,
        method: str,
        name: str,
        query: str = "",
        body: dict[str, Any] | msgspec.Struct | None = None,
        wait: float = 0.0,
    ) -> Any:
        data = None if body is None else msgspec.json.encode(body)
        request = urllib.request.Request(
            f"{self.url}/_sandbox/{name}{query}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=self.timeout + wait) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = _error_text(exc)
            if exc.code == 408:
                raise TimeoutError(detail) from exc
            if exc.code == 400:
                raise ValueError(detail) from exc
            raise


def _query(**params: object) -> str:
    kept = {k: v for k, v in params.items() if v is not None}
    return f"?{urlencode(kept)}" if kept else ""


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        payload = json.loads(exc.read())
    except ValueError:
        return str(exc)
    return str(payload.get("error", payload)) if isinstance(payload, dict) else str(payload)
