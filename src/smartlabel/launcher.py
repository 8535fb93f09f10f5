"""`smartlabel run`: the whole service on one machine (what `make run` starts).

Two child processes, the orchestrator and the labelling page, each started
through the real `smartlabel` command, so what runs here is what runs in the
containers. Signals are forwarded; when one child dies the other is stopped.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from smartlabel.db import check_connection, make_engine
from smartlabel.migrate import upgrade
from smartlabel.serve import LABELLING, page_url
from smartlabel.store import items


def prepare(settings, data: Path) -> int:
    """Migrate, and import `data` when the database holds no posts. Returns the number of posts."""
    engine = make_engine(settings.database_url)
    check_connection(engine)
    upgrade(engine)
    n = items.count(engine)
    if n == 0:
        if not data.exists():
            print(f"no posts yet and {data} does not exist: import some with `smartlabel import FILE`",
                  file=sys.stderr)
        else:
            from smartlabel.importer import import_file

            print(f"loading {data} into {engine.url.render_as_string(hide_password=True)} ...", flush=True)
            result = import_file(data, engine, settings=settings)
            print(result.summary(), flush=True)
            n = items.count(engine)
    engine.dispose()
    return n


def run_all(settings, *, data: Path, host: str = "127.0.0.1") -> int:
    n = prepare(settings, data)
    cmd = [sys.executable, "-m", "smartlabel"]
    children = {
        "orchestrator": subprocess.Popen(cmd + ["orchestrate"]),
        "labelling page": subprocess.Popen(cmd + ["serve", "--host", host]),
    }
    url = page_url(host, LABELLING.port(settings), LABELLING.token(settings))
    print(f"{n} posts. Labelling page: {url}  (Ctrl+C stops everything)", flush=True)

    stopping = {"signal": None}

    def forward(signum, _frame):
        stopping["signal"] = signum

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        while stopping["signal"] is None:
            dead = [name for name, p in children.items() if p.poll() is not None]
            if dead:
                name = dead[0]
                status = children[name].returncode or 1
                print(f"the {name} stopped (exit status {children[name].returncode}); stopping the rest",
                      file=sys.stderr, flush=True)
                break
            time.sleep(0.5)
    finally:
        for p in children.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for p in children.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for s, handler in old.items():
            signal.signal(s, handler)
    return status
