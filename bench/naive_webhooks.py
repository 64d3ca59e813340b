"""The simple design, for comparison: one status callback, one transaction (INSERT the
receipt, UPDATE the row, COMMIT) on a pooled connection, before the answer. Same parsing and
signature check as `notify webhooks`; run as `python -m bench.naive_webhooks`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from notify.settings import Settings
from notify.webhook_paths import STATUS_CALLBACK_PATH
from webhooks.forms import Rejected, parse_form
from webhooks.signature import Signatures


def build(settings: Settings) -> Starlette:
    assert settings.twilio_auth_token and settings.public_url
    signatures = Signatures(settings.twilio_auth_token, settings.public_url)
    pool: list[asyncpg.Pool] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        pool.append(await asyncpg.create_pool(settings.database_url, min_size=10, max_size=10))
        yield
        await pool[0].close()

    async def status(request: Request) -> Response:
        try:
            form = parse_form(await request.body(), request.headers.get("content-type"))
        except Rejected as exc:
            return Response(status_code=exc.status)
        signature = request.headers.get("x-twilio-signature")
        if signatures.problem(STATUS_CALLBACK_PATH, b"", form, signature):
            return Response(status_code=403)
        sid, status = form["MessageSid"], form["MessageStatus"]
        async with pool[0].acquire() as conn, conn.transaction():
            nid = await conn.fetchval(
                "SELECT id FROM notifications WHERE provider_message_id = $1", sid
            )
            await conn.execute(
                """INSERT INTO notification_receipts (notification_id, provider_message_id,
                       provider_status, error_code, source)
                   VALUES ($1, $2, $3, $4, 'callback')""",
                nid, sid, status, form.get("ErrorCode"),
            )  # fmt: skip
            if status in ("delivered", "undelivered", "failed"):
                await conn.execute(
                    """UPDATE notifications SET status = $2, updated_at = now()
                       WHERE id = $1 AND status = 'sent'""",
                    nid, status,
                )  # fmt: skip
        return Response(status_code=200)

    return Starlette(routes=[Route(STATUS_CALLBACK_PATH, status, methods=["POST"])],
                     lifespan=lifespan)  # fmt: skip


def main() -> None:
    settings = Settings.from_env()
    uvicorn.run(build(settings), host="127.0.0.1", port=settings.webhook_port, loop="uvloop",
                http="httptools", log_config=None, access_log=False)  # fmt: skip


if __name__ == "__main__":
    main()
