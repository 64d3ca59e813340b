"""One background thread that runs callables when they fall due.

Message lifecycles (a send slot, a delivery receipt) are timed events; one thread with a
heap runs them in time order, so thousands of queued messages cost no thread each.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("sandbox")

Action = Callable[[], None]


class Timeline:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Action]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def at(self, due: float, action: Action) -> None:
        """Run `action` at time.monotonic() >= due (now if already past)."""
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), action))
            self._ensure_thread()
            self._cond.notify()

    def soon(self, action: Action) -> None:
        self.at(time.monotonic(), action)

    def clear(self) -> None:
        """Forget everything scheduled (reset); an action already running still finishes."""
        with self._cond:
            self._heap.clear()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._heap.clear()
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._cond:
            self._stopping = False

    def _ensure_thread(self) -> None:
        # Started on first use, so a Sandbox that never sends runs no extra thread.
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._run, name="sandbox-timeline", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
                if self._stopping:
                    return
                _, _, action = heapq.heappop(self._heap)
            try:
                action()
            except Exception:
                # One broken action must not stop every later message's lifecycle.
                logger.exception("sandbox timeline action failed")
