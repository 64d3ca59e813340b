"""Hypothesis profiles: `dev` (the default) runs about 100 examples a property, `ci` (when
`CI` is set, as `.ci/run` does) the full counts each test asks for."""

from __future__ import annotations

import os

from hypothesis import settings

DEV_EXAMPLES = 100
PROFILE = "ci" if os.environ.get("CI") else "dev"

settings.register_profile("dev", max_examples=DEV_EXAMPLES, deadline=None)
settings.register_profile("ci", deadline=None, print_blob=True)


def examples(count: int) -> int:
    """A property's example count: `count` under `ci`, at most DEV_EXAMPLES under `dev`."""
    return count if PROFILE == "ci" else min(count, DEV_EXAMPLES)


def services_required() -> bool:
    """A missing service fails the test instead of skipping it (CI, and `make test`)."""
    return bool(os.environ.get("CI") or os.environ.get("NOTIFY_REQUIRE_SERVICES"))
