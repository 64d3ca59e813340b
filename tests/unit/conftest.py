"""Unit fixtures: no servers."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from notify import logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The notify loggers' JSON lines, written to a string instead of stderr."""
    stream = io.StringIO()
    logs.configure("INFO", stream)
    yield stream
    logging.getLogger("notify").handlers.clear()
