"""Small helpers shared by tests (seeding posts without going through the importer)."""

from __future__ import annotations

import hashlib
import random

from sqlalchemy import insert

from smartlabel.db import items, make_engine, utcnow


def seed_items(url_or_engine, n: int, *, seed: int = 0, prefix: str = "post") -> list[int]:
    """Insert n posts directly; return their ids in insertion order."""
    engine = make_engine(url_or_engine)
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        title = f"{prefix} {k} title"
        body = f"body of {prefix} {k}: " + " ".join(rng.choice(["rice", "oil", "grain", "bank", "rate"]) for _ in range(8))
        rows.append({
            "title": title, "selftext": body, "clean_selftext": body.lower(),
            "content_hash": hashlib.sha256(f"{title}\0{body}".encode()).hexdigest(),
            "imported_at": utcnow(), "rand_key": rng.random(), "label_count": 0, "done": False,
        })
    with engine.begin() as conn:
        conn.execute(insert(items), rows)
        ids = [r[0] for r in conn.exec_driver_sql("SELECT id FROM items ORDER BY id")]
    return ids[-n:]


class LoggedProcess:
    """A child process (stdout and stderr together) whose log is read line by line in a thread."""

    def __init__(self, argv, env, cwd):
        import subprocess
        import threading

        self.p = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, needle: str, timeout: float = 120) -> str:
        """The first log line holding `needle`; AssertionError with the whole log if none comes."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if needle in line:
                    return line
            if self.p.poll() is not None:
                self._t.join(5)
                break
            time.sleep(0.02)
        raise AssertionError(f"{needle!r} never appeared; log:\n" + "\n".join(self.lines))
