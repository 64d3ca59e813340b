"""Hot reload of the rules file: a valid new version swaps in, a broken one is refused."""

from __future__ import annotations

import os
import time

from consumer import metrics
from notify import logs
from rules.ruleset import RuleSet, load_file
from schemas import RulesError

log = logs.get("rules")


class RulesWatcher:
    """Polls the file's stat between batches; the caller swaps `current` atomically."""

    def __init__(self, path: str, poll_seconds: float = 1.0) -> None:
        self.path = path
        self.poll_seconds = poll_seconds
        self.current: RuleSet = load_file(path)  # the first load must succeed
        self._stamp = self._stat()
        self._next_check = time.monotonic() + poll_seconds
        metrics.RULES.info({"version": self.current.version, "rules": str(len(self.current.rules))})
        metrics.start_types_at_zero(self.current.event_types())

    def _stat(self) -> tuple[float, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime, st.st_size, st.st_ino)

    def poll(self, *, force: bool = False) -> bool:
        """Reload if the file changed; True when a new version was swapped in."""
        now = time.monotonic()
        if not force and now < self._next_check:
            return False
        self._next_check = now + self.poll_seconds
        stamp = self._stat()
        if stamp == self._stamp and not force:
            return False
        self._stamp = stamp
        try:
            candidate = load_file(self.path)
        except RulesError as exc:
            metrics.RULES_RELOADS.labels(result="error").inc()
            log.error(
                "rules file rejected; keeping version %s",
                self.current.version,
                extra=logs.fields(problems=exc.problems, path=self.path),
            )
            return False
        except Exception:
            metrics.RULES_RELOADS.labels(result="error").inc()
            log.exception("rules file could not be loaded; keeping version %s",
                          self.current.version, extra=logs.fields(path=self.path))  # fmt: skip
            return False
        if candidate.version == self.current.version:
            return False
        old = self.current.version
        self.current = candidate
        metrics.RULES_RELOADS.labels(result="ok").inc()
        metrics.RULES.info({"version": candidate.version, "rules": str(len(candidate.rules))})
        metrics.start_types_at_zero(candidate.event_types())
        log.info(
            "rules reloaded", extra=logs.fields(old=old, new=candidate.version, path=self.path)
        )
        return True
