"""`notify webhooks`: uvicorn (uvloop, httptools) serving the app until SIGTERM.

On SIGTERM or SIGINT it stops accepting connections, lets in-flight requests finish (their
receipts committed), closes the pool and exits 0.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
from collections.abc import Generator

import uvicorn

from notify import logs
from notify.settings import Settings
from webhooks.app import Webhooks
from webhooks.protocol import BoundedHttpToolsProtocol

log = logs.get("webhooks")

# Below the compose stop_grace_period (30 s), so a slow request is cut, not the process.
GRACEFUL_SECONDS = 25


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """uvicorn re-raises the signal after its graceful shutdown, so the process would die
        of SIGTERM; an operator (and compose) expects a clean stop to exit 0."""
        previous = {
            sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            c = self.config
            log.info("webhooks listening", extra=logs.fields(host=c.host, port=c.port))


def problems(settings: Settings) -> list[str]:
    """Settings without which no signature can be checked: refuse to start."""
    missing = []
    if not settings.twilio_auth_token:
        missing.append("TWILIO_AUTH_TOKEN is not set (signatures are HMACs with it)")
    if "vonage" in settings.sms_providers and not settings.vonage_signature_secret:
        missing.append(
            "VONAGE_SIGNATURE_SECRET is not set (Vonage's webhooks are JWTs signed with it)"
        )
    if not settings.public_url:
        missing.append(
            "NOTIFY_PUBLIC_URL is not set (signatures cover the URL Twilio calls, e.g. "
            "https://notify.example.com)"
        )
    return missing


def serve(settings: Settings) -> int:
    missing = problems(settings)
    token, public_url = settings.twilio_auth_token, settings.public_url
    if missing or token is None or public_url is None:
        for line in missing:
            print(f"notify webhooks: {line}", file=sys.stderr)
        return 2
    webhooks = Webhooks(settings, token, public_url)
    config = uvicorn.Config(
        webhooks.app,
        host=settings.webhook_host,
        port=settings.webhook_port,
        loop="uvloop",
        http=BoundedHttpToolsProtocol,  # httptools, with a bound on header size
        lifespan="on",
        log_config=None,  # our structured logs (notify/logs.py), not uvicorn's
        access_log=False,  # one line per callback would be the busiest log in the system
        server_header=False,
        # Signatures are checked over NOTIFY_PUBLIC_URL, so X-Forwarded-* are not needed.
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        # Beyond this many open connections uvicorn answers 503 instead of growing memory.
        limit_concurrency=4096,
        backlog=4096,
    )
    server = _Server(config)
    server.run()
    log.info("webhooks stopped")
    return 0 if server.started else 1
