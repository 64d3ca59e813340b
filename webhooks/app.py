"""The ASGI app (Starlette): the four routes of docs/interfaces.md section 6.

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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from notify import inbound, logs, suppressions
from notify.inbound import handle_inbound
from notify.inbound_messages import InboundMessage, InboundStore
from notify.outage import TRANSIENT, OutageLog
from notify.settings import Settings
from notify.store import OutcomeStore
from notify.webhook_paths import (
    INBOUND_PATH,
    STATUS_CALLBACK_PATH,
    VONAGE_INBOUND_PATH,
    VONAGE_STATUS_PATH,
)
from schemas import InboundSms
from webhooks import metrics
from webhooks.callbacks import inbound_from, receipt_from
from webhooks.forms import Disconnected, Rejected, body_chunks, parse_form, read_body
from webhooks.recorder import ReceiptRecorder
from webhooks.signature import Signatures
from webhooks.vonage import VonageSignatures, price_from
from webhooks.vonage import inbound_from as vonage_inbound_from
from webhooks.vonage import payload as vonage_payload
from webhooks.vonage import receipt_from as vonage_receipt_from

log = logs.get("webhooks")

EMPTY_TWIML = inbound.EMPTY_TWIML.encode()
IDEMPOTENCY_HEADER = b"i-twilio-idempotency-token"


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


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()


Headers = dict[bytes, bytes]
Handler = Callable[[dict[str, str], Headers], Awaitable[Answer]]
ASGIMessage = dict[str, Any]


class Webhook:
    """One webhook as a bare ASGI app. Starlette routes to it (405 for other methods), but
    the per-request Request and Response objects are skipped: on the status route they cost
    about a third of the CPU of a callback. Every request goes the same way: a bounded body,
    the route's own checks and handling (`answer`), a refusal counted and logged."""

    def __init__(self, webhooks: Webhooks, route: str) -> None:
        self.webhooks = webhooks
        self.route = route

    async def answer(self, scope: ASGIMessage, headers: Headers, body: bytes) -> Answer:
        raise NotImplementedError

    async def __call__(
        self,
        scope: ASGIMessage,
        receive: Callable[[], Awaitable[ASGIMessage]],
        send: Callable[[ASGIMessage], Awaitable[None]],
    ) -> None:
        headers: Headers = dict(scope["headers"])  # names are lower case in ASGI
        try:
            length = headers.get(b"content-length")
            body = await read_body(
                None if length is None else length.decode("latin-1"), body_chunks(receive)
            )
            answer = await self.answer(scope, headers, body)
        except Rejected as exc:
            client = scope.get("client")
            answer = self.webhooks.rejected(self.route, exc, client[0] if client else None)
        except Disconnected:
            return
        await respond(send, answer)


class TwilioRoute(Webhook):
    """A Twilio webhook: a strict form, the signature, then the route's own `handle`."""

    def __init__(self, webhooks: Webhooks, route: str, path: str, handle: Handler) -> None:
        super().__init__(webhooks, route)
        self.path = path
        self.handle = handle

    async def answer(self, scope: ASGIMessage, headers: Headers, body: bytes) -> Answer:
        form = parse_form(body, headers.get(b"content-type", b"").decode("latin-1"))
        signature = headers.get(b"x-twilio-signature", b"").decode("latin-1")
        problem = self.webhooks.signatures.problem(
            self.path, scope["query_string"], form, signature
        )
        if problem is not None:
            raise Rejected(403, problem, f"MessageSid {form.get('MessageSid', '')[:64]!r}")
        return await self.handle(form, headers)


async def respond(send: Callable[[ASGIMessage], Awaitable[None]], answer: Answer) -> None:
    """Send an answer as a bare ASGI response, with its length."""
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [(b"content-length", str(len(answer.body)).encode()), *answer.headers],
        }
    )
    await send({"type": "http.response.body", "body": answer.body})


JsonHandler = Callable[[dict[str, Any]], Awaitable[Answer]]


class VonageRoute(Webhook):
    """A Vonage webhook: the signed JWT and its payload hash over the exact bytes, then the
    JSON and the route's own `handle`."""

    def __init__(self, webhooks: Webhooks, route: str, handle: JsonHandler) -> None:
        super().__init__(webhooks, route)
        self.handle = handle

    async def answer(self, scope: ASGIMessage, headers: Headers, body: bytes) -> Answer:
        vonage = self.webhooks.vonage
        if vonage is None:  # mounted only with a signature secret; never unchecked
            raise Rejected(403, "vonage webhooks are not configured")
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        problem = vonage.problem(authorization, body)
        if problem is not None:
            raise Rejected(403, problem)
        return await self.handle(vonage_payload(body))


@dataclass(frozen=True)
class Live:
    """What the lifespan opens; requests are served only while it is open."""

    store: OutcomeStore
    recorder: ReceiptRecorder
    inbound: InboundStore


class Webhooks:
    """The app and what its handlers share; the pool lives as long as the app runs."""

    def __init__(self, settings: Settings, auth_token: str, public_url: str) -> None:
        self.settings = settings
        self.signatures = Signatures(auth_token, public_url)
        self.warnings = WarningLimiter()
        self.outage = OutageLog("postgres", "answering 503")
        self._live: Live | None = None
        status = TwilioRoute(self, "status", STATUS_CALLBACK_PATH, self.status)
        inbound = TwilioRoute(self, "inbound", INBOUND_PATH, self.inbound)
        secret = settings.vonage_signature_secret
        self.vonage = VonageSignatures(secret) if secret else None
        vonage = [
            Route(VONAGE_STATUS_PATH, VonageRoute(self, "vonage_status", self.vonage_status),
                  methods=["POST"]),
            Route(VONAGE_INBOUND_PATH, VonageRoute(self, "vonage_inbound", self.vonage_inbound),
                  methods=["POST"]),
        ] if secret else []  # fmt: skip
        self.app = Starlette(
            routes=[
                Route(STATUS_CALLBACK_PATH, status, methods=["POST"]),
                Route(INBOUND_PATH, inbound, methods=["POST"]),
                *vonage,
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
            ],
            lifespan=self.lifespan,
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        # min_size=0: start (and answer /healthz with 503) even while Postgres is away.
        store = await OutcomeStore.connect(
            self.settings.database_url,
            min_size=0,
            max_size=8,
            statement_cache_size=self.settings.statement_cache_size,
        )
        live = self._live = Live(store, ReceiptRecorder(store.receipts), InboundStore(store.pool))
        suppressions.start_at_zero()  # STOP and START arrive here
        try:
            await store.pool.fetchval("SELECT 1", timeout=5)
        except Exception as exc:  # noqa: BLE001 - reported, and /healthz says so
            self.outage.started(exc)
        try:
            yield
        finally:
            # uvicorn has let in-flight requests finish; their writes are done or queued.
            await live.recorder.commits.idle()
            await store.close()
            self._live = None

    @property
    def live(self) -> Live:
        if self._live is None:
            raise RuntimeError("a request outside the app's lifespan: nothing is connected")
        return self._live

    def rejected(self, route: str, exc: Rejected, client: str | None) -> Answer:
        metrics.REJECTED.labels(route, exc.reason).inc()
        suppressed = self.warnings.allow((route, exc.reason))
        if suppressed is not None:
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
        headers = ((b"connection", b"close"),) if exc.status == 413 else ()
        return Answer(exc.status, headers=headers)

    def _unavailable(self, route: str, exc: Exception) -> Answer:
        metrics.UNAVAILABLE.labels(route).inc()
        if isinstance(exc, TRANSIENT):
            self.outage.started(exc)
        else:
            log.error(
                "could not record a request",
                extra=logs.fields(route=route, error=f"{type(exc).__name__}: {exc}"[:300]),
            )
        return Answer(503, headers=((b"retry-after", b"5"),))

    async def status(self, form: dict[str, str], headers: Headers) -> Answer:
        """A status callback: a receipt, committed before the answer."""
        token = headers.get(IDEMPOTENCY_HEADER, b"").decode("latin-1") or None
        receipt = receipt_from(form, token, datetime.now(UTC))
        try:
            await self.live.recorder.record(receipt)
        except Exception as exc:  # noqa: BLE001 - never a 500: Twilio may retry a 503
            return self._unavailable("status", exc)
        self.outage.ended()
        return Answer(200)

    async def inbound(self, form: dict[str, str], _: Headers) -> Answer:
        """An incoming SMS: recorded once per MessageSid, answered with empty TwiML."""
        message = inbound_from(form)
        failed = await self._take_inbound(message, InboundSms.from_form(form), "inbound")
        if failed is not None:
            return failed
        return Answer(200, EMPTY_TWIML, ((b"content-type", b"text/xml; charset=utf-8"),))

    async def _take_inbound(
        self, message: InboundMessage, sms: InboundSms, route: str
    ) -> Answer | None:
        """Record an inbound SMS and apply it (STOP, START); None when done, else the 503."""
        live = self.live
        try:
            # The message and what it asks for (STOP, START) commit together, once per
            # message id: a provider's retry of a recorded message changes nothing again.
            async with live.store.pool.acquire() as conn, conn.transaction():
                new = await live.inbound.record(message, conn)
                if new:
                    await handle_inbound(conn, sms)
        except Exception as exc:  # noqa: BLE001 - never a 500: providers may retry a 503
            return self._unavailable(route, exc)
        self.outage.ended()
        if new:
            metrics.INBOUND.inc()
            log.info(
                "inbound message",
                extra=logs.fields(
                    message_sid=message.message_sid,
                    sender=logs.mask(message.from_number),
                    opt_out_type=message.opt_out_type,
                    route=route,
                ),
            )
        return None

    async def vonage_status(self, data: dict[str, Any]) -> Answer:
        """A Vonage status webhook: the same receipt path as Twilio's; its price, if any."""
        live = self.live
        receipt = vonage_receipt_from(data, datetime.now(UTC))
        price = price_from(data)
        try:
            await live.recorder.record(receipt)
            if price is not None:
                await live.store.record_prices([price])
        except Exception as exc:  # noqa: BLE001 - never a 500: Vonage retries non-2xx
            return self._unavailable("vonage_status", exc)
        self.outage.ended()
        return Answer(200)

    async def vonage_inbound(self, data: dict[str, Any]) -> Answer:
        """A Vonage inbound SMS: the same opt-out path as Twilio's (one ledger)."""
        message, sms = vonage_inbound_from(data)
        failed = await self._take_inbound(message, sms, "vonage_inbound")
        return failed or Answer(200)

    async def healthz(self, _: Request) -> Response:
        """200 when Postgres answers within two seconds, else 503."""
        try:
            await asyncio.wait_for(self.live.store.pool.fetchval("SELECT 1"), timeout=2)
        except (asyncpg.PostgresError, *TRANSIENT) as exc:
            return JSONResponse(
                {"status": "unavailable", "postgres": type(exc).__name__}, status_code=503
            )
        return JSONResponse({"status": "ok"})

    async def metrics(self, _: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
