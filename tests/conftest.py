"""Shared fixtures. Real services are skipped locally when absent but fail under CI."""

from __future__ import annotations

import os
import socket
import urllib.parse

import pytest
from hypothesis import settings

from tests.profiles import PROFILE, services_required

settings.load_profile(PROFILE)

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://localhost/notifications")


def reachable(url: str, default_port: int) -> bool:
    parts = urllib.parse.urlsplit(url)
    try:
        socket.create_connection(
            (parts.hostname or "localhost", parts.port or default_port), 1
        ).close()
    except OSError:
        return False
    return True


def require_services() -> None:
    missing = [
        name
        for name, url, port in (("redis", REDIS_URL, 6379), ("postgres", DATABASE_URL, 5432))
        if not reachable(url, port)
    ]
    if missing:
        message = f"{', '.join(missing)} not reachable (run `make services`)"
        if services_required():
            pytest.fail(message)  # in CI a missing service is a failure, never a skip
        pytest.skip(message)
