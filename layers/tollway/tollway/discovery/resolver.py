"""One discovered service's instances: looked up at cold start, then kept fresh in the background.

`Resolver.current()` is the request path's view and never waits for AWS: when its value is
older than the TTL it starts one refresh in a background thread and answers with the value
it has. A refresh that fails, or finds no instance, keeps the last good value (with a
warning in the log) and is tried again after `retry_s`.

On Lambda a thread runs only while the environment is awake (during an invocation, or
while the usage extension flushes after one). A refresh frozen mid-call fails when the
environment thaws; that keeps the last good value, and a later request tries again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tollway.observability import logger
from tollway.table.targets import Reference

Lookup = Callable[[str], tuple[str, ...]]  # blocking: a reference's name -> its instance URLs
Spawn = Callable[[Callable[[], None]], None]


def in_thread(work: Callable[[], None]) -> None:
    # A daemon thread: a refresh stuck on the network never holds up the process's exit.
    threading.Thread(target=work, name="tollway-discovery", daemon=True).start()


class Resolver:
    def __init__(
        self,
        reference: Reference,
        lookup: Lookup,
        *,
        ttl_s: float,
        retry_s: float,
        clock: Callable[[], float] = time.monotonic,
        spawn: Spawn = in_thread,
    ) -> None:
        self.reference = reference
        self.lookup = lookup
        self.ttl_s = ttl_s
        self.retry_s = retry_s
        self.clock = clock
        self.spawn = spawn
        self.urls: tuple[str, ...] = ()
        self.due = clock()  # when the next lookup is due
        self.refreshing = False

    def current(self) -> tuple[str, ...]:
        if not self.refreshing and self.clock() >= self.due:
            self.refreshing = True
            self.spawn(self.refresh)
        return self.urls

    def refresh(self) -> bool:
        """Look up now (blocking); True if a value was found. Never raises."""
        try:
            urls = self.lookup(self.reference.name)
            if not urls:
                raise LookupError("no instances")
        except Exception as exc:  # noqa: BLE001 - any failure keeps the last good value
            self.due = self.clock() + self.retry_s
            logger.warning(
                "service discovery failed; keeping the last good instances",
                extra={"reference": str(self.reference), "error": repr(exc), "kept": list(self.urls)},
            )
            return False
        else:
            self.urls = urls
            self.due = self.clock() + self.ttl_s
            return True
        finally:
            self.refreshing = False
