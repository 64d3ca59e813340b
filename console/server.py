"""`notify console`: uvicorn serving the console until SIGTERM; it refuses to start without
users (CONTRACT section 12)."""

from __future__ import annotations

import socket
import sys

import uvicorn
from starlette.types import ASGIApp

from console import api, pages, product, users
from console.app import Console
from notify import logs
from notify.settings import Settings

log = logs.get("console")


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            c = self.config
            log.info("console listening", extra=logs.fields(host=c.host, port=c.port))


def build(settings: Settings, known: dict[str, users.User]) -> ASGIApp:
    console = Console(settings, known)
    return console.build([*api.routes(console), *pages.routes(console), *product.routes(console)])


def serve(settings: Settings) -> int:
    try:
        known = users.load(settings.console_users)
    except users.UsersError as exc:
        print(f"notify console: {exc}", file=sys.stderr)
        return 2
    if not known:
        print(
            f"notify console: no users in {settings.console_users}; add one with "
            "`notify console add-user NAME --role viewer|support|operator`",
            file=sys.stderr,
        )
        return 2
    config = uvicorn.Config(
        build(settings, known),
        host=settings.console_host,
        port=settings.console_port,
        lifespan="on",
        log_config=None,  # our structured logs (notify/logs.py)
        access_log=False,  # URLs carry searched numbers: they stay out of the logs
        server_header=False,
        # Behind a TLS proxy on this host, X-Forwarded-Proto marks the cookie Secure.
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
    server = _Server(config)
    server.run()
    log.info("console stopped")
    return 0 if server.started else 1
