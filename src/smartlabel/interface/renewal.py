"""Keeping the lease on the post a labeller is reading: renewed every LEASE_SECONDS / 3.

One daemon thread per page: it renews the lease of the post on screen (`track`), nothing
while none is (`stop`), and ends with the kernel (a daemon thread dies with its process;
`close` ends it sooner). It writes nothing to the page and prints at most one line, so it
never counts as kernel activity: a kernel whose tab is gone is still culled.
"""

from __future__ import annotations

import sys
import threading
from typing import Callable

from smartlabel.errors import LinkNotValidError


class LeaseRenewer:
    def __init__(self, renew: Callable[[int], bool], interval: float):
        """`renew(item_id)` extends the lease and says whether it still held."""
        self._renew = renew
        self.interval = float(interval)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._item: int | None = None
        self._generation = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._warned = False
        self.renewals = 0  # leases extended (for tests and the benchmark)
        self.lost: int | None = None  # the post whose lease could not be kept, if any

    @property
    def item_id(self) -> int | None:
        return self._item

    def track(self, item_id: int) -> None:
        """Renew `item_id`'s lease from now on (the post on screen changed)."""
        with self._lock:
            if self._closed:
                return
            self._item, self._generation = int(item_id), self._generation + 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="smartlabel-lease", daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """No post on screen: renew nothing."""
        with self._lock:
            self._item, self._generation = None, self._generation + 1
        self._wake.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._item, self._generation = None, self._generation + 1
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.clear()  # before reading the state: a change after this wakes the wait
            with self._lock:
                if self._closed:
                    return
                item, generation = self._item, self._generation
            if item is None:
                self._wake.wait()
                continue
            if self._wake.wait(self.interval):
                continue  # the post changed (or the page closed) before it was time
            with self._lock:
                if generation != self._generation:
                    continue
            try:
                kept = bool(self._renew(item))
            except LinkNotValidError:  # the key was rotated or disabled: this page is done
                kept = False
            except Exception as exc:  # the database is away or busy: try again next time
                self._warn(f"could not renew the lease on post {item}: {exc!r}".splitlines()[0])
                continue
            if kept:
                self.renewals += 1
                continue
            with self._lock:  # lost (labelled elsewhere, expired): nothing to keep for this post
                if generation == self._generation:
                    self._item, self.lost = None, item

    def _warn(self, line: str) -> None:
        if not self._warned:  # once: output from a kernel counts as activity
            self._warned = True
            print(f"smartlabel labelling page: {line}", file=sys.stderr)
