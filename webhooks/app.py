"""The ASGI app (Starlette): the four routes of CONTRACT section 6.

Every Twilio request goes the same way: a bounded body, a strict form, the signature, then
the route's own fields. Anything refused is answered 4xx, counted in
notify_webhook_rejected_total{route,reason}, logged at WARNING (at most once a second per
route and reason, never with the signature or a secret), and changes nothing. A request that
was fine but could not be recorded gets 503, so Twilio may try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from notify import logs
from notify.inbound import InboundStore
from notify.outage import TRANSIENT, OutageLog
from notify.settings import Settings
from notify.store import OutcomeStore
from notify.webhook_paths import INBOUND_PATH, STATUS_CALLBACK_PATH
from webhooks import metrics
from webhooks.callbacks import inbound_from, receipt_from
from webhooks.forms import Rejected, parse_form, read_body
from webhooks.recorder import ReceiptRecorder
from webhooks.signature import Signatures

log = logs.get("webhooks")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
IDEMPOTENCY_HEADER = "i-twilio-idempotency-token"


class WarningLimiter:
    """One WARNING per key per second; the lines in between are counted, not printed."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._last: dict[tuple[str, str], float] = {}
        self._quiet: dict[tuple[str, str], int] = {}

    def allow(self, key: tuple[str, str]) -> int | None:
        """None to stay quiet, else how many lines were suppressed since the last one."""
        now = time.monotonic()
        if now - self._last.get(key, -self.interval) < self.interval:
            self._quiet[key] = self._quiet.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._quiet.pop(key, 0)


class Webhooks:
    """The app and what its handlers share; the pool lives as long as the app runs."""

    def __init__(self, settings: Settings, auth_token: str, public_url: str) -> None:
        self.settings = settings
        self.signatures = Signatures(auth_token, public_url)
        self.warnings = WarningLimiter()
        self.outage = OutageLog("postgres", "answering 503")
        self.store: OutcomeStore | None = None
        self.recorder: ReceiptRecorder | None = None
        self.inbound_store: InboundStore | None = None
        self.app = Starlette(
            routes=[
                Route(STATUS_CALLBACK_PATH, self.status, methods=["POST"]),
                Route(INBOUND_PATH, self.inbound, methods=["POST"]),
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
            ],
            lifespan=self.lifespan,
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        # min_size=0: start (and answer /healthz with 503) even while Postgres is away.
        self.store = await OutcomeStore.connect(self.settings.database_url, min_size=0, max_size=8)
        self.recorder = ReceiptRecorder(self.store.receipts)
        self.inbound_store = InboundStore(self.store.pool)
        try:
            await self.store.pool.fetchval("SELECT 1", timeout=5)
        except Exception as exc:  # noqa: BLE001 - reported, and /healthz says so
            self.outage.started(exc)
        try:
            yield
        finally:
            # uvicorn has let in-flight requests finish; their writes are done or queued.
            await self.recorder.commits.idle()
            await self.store.close()

    async def _signed_form(self, request: Request, route: str, path: str) -> dict[str, str]:
        body = await read_body(request.headers.get("content-length"), request.stream())
        form = parse_form(body, request.headers.get("content-type"))
        signature = request.headers.get("x-twilio-signature")
        problem = self.signatures.problem(path, request.scope["query_string"], form, signature)
        if problem is not None:
            raise Rejected(403, problem, f"MessageSid {form.get('MessageSid', '')[:64]!r}")
        return form

    def _rejected(self, request: Request, route: str, exc: Rejected) -> Response:
        metrics.REJECTED.labels(route, exc.reason).inc()
        suppressed = self.warnings.allow((route, exc.reason))
        if suppressed is not None:
            client = request.client.host if request.client else None
            log.warning(
                "request rejected",
                extra=logs.fields(
                    route=route,
                    reason=exc.reason,
                    status=exc.status,
                    detail=exc.detail or None,
                    client=client,
                    suppressed=suppressed or None,
                ),
            )
        # A body we stopped reading cannot share the connection with the next request.
        headers = {"connection": "close"} if exc.status == 413 else None
        return Response(status_code=exc.status, headers=headers)

    def _unavailable(self, route: str, exc: Exception) -> Response:
        metrics.UNAVAILABLE.labels(route).inc()
        if isinstance(exc, TRANSIENT):
            self.outage.started(exc)
        else:
            log.error(
                "could not record a request",
                extra=logs.fields(route=route, error=f"{type(exc).__name__}: {exc}"[:300]),
            )
        return Response(status_code=503, headers={"retry-after": "5"})

    async def status(self, request: Request) -> Response:
        """A status callback: a receipt, committed before the answer."""
        assert self.recorder is not None
        try:
            form = await self._signed_form(request, "status", STATUS_CALLBACK_PATH)
            receipt = receipt_from(form, request.headers.get(IDEMPOTENCY_HEADER), datetime.now(UTC))
        except Rejected as exc:
            return self._rejected(request, "status", exc)
        try:
            await self.recorder.record(receipt)
        except Exception as exc:  # noqa: BLE001 - never a 500: Twilio may retry a 503
            return self._unavailable("status", exc)
        self.outage.ended()
        return Response(status_code=200)

    async def inbound(self, request: Request) -> Response:
        """An incoming SMS: recorded once per MessageSid, answered with empty TwiML."""
        assert self.inbound_store is not None
        try:
            form = await self._signed_form(request, "inbound", INBOUND_PATH)
            message = inbound_from(form)
        except Rejected as exc:
            return self._rejected(request, "inbound", exc)
        try:
            new = await self.inbound_store.record(message)
        except Exception as exc:  # noqa: BLE001
            return self._unavailable("inbound", exc)
        self.outage.ended()
        if new:
            metrics.INBOUND.inc()
            log.info(
                "inbound message",
                extra=logs.fields(
                    message_sid=message.message_sid,
                    sender=logs.mask(message.from_number),
                    opt_out_type=message.opt_out_type,
                ),
            )
        return Response(EMPTY_TWIML, media_type="text/xml")

    async def healthz(self, _: Request) -> Response:
        """200 when Postgres answers within two seconds, else 503."""
        assert self.store is not None
        try:
            await asyncio.wait_for(self.store.pool.fetchval("SELECT 1"), timeout=2)
        except (asyncpg.PostgresError, *TRANSIENT) as exc:
            return JSONResponse(
                {"status": "unavailable", "postgres": type(exc).__name__}, status_code=503
            )
        return JSONResponse({"status": "ok"})

    async def metrics(self, _: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
