"""`make compose-check`: does the committed stack come up in a real Docker engine and work?

    python3 scripts/compose_check.py [--engine auto|host|private] [--keep] [--workdir DIR]

Clones the committed HEAD of this repository into a fresh folder (so uncommitted files never
count), follows the README's Docker steps (`make env`, `docker compose up -d --build`) and
checks what an operator relies on:

- `init` ran to completion (exit 0: schema, roles, import); every service with a healthcheck
  is healthy (db, orchestrator, voila, dashboard, adminer), the proxy runs;
- `smartlabel health` in the orchestrator container: its heartbeat is fresh;
- a personal link from `docker compose run --rm init smartlabel labellers add NAME` opens the
  page through the HTTPS proxy (no token: refused; http: redirected), and a click in Chromium
  (Playwright) lands in PostgreSQL as that labeller;
- after enough labels (imported through `init`) the orchestrator writes
  `models/<timestamp> <score>.pkl` and an `ok` row in `model_runs`;
- Adminer on 127.0.0.1:8080 logs in as `smartlabel_reader` and refuses a wrong password;
- published ports: the proxy's 80 and 443, Adminer and the dashboard on 127.0.0.1 only, the
  database, the page and the orchestrator not at all;
- the orchestrator killed (SIGKILL) in the middle of a run loses no label, comes back by
  itself, marks the run failed and finishes a new one;
- a bad row in a replaced `aldata.csv` fails `init` (exit 1, a log line naming the file, line
  and column), `docker compose up` says so, nothing is imported, the page keeps serving;
- `docker compose down` then `up -d` keeps every label and post.

The engine: the host's Docker when one answers (`docker version`), else the private engine of
`../shared/compose-check/engine.sh` (its own dockerd, socket and data-root; stand-ins for the
base images, so always `--pull never`). `--engine` chooses explicitly. The stack runs as
compose project `smartlabel-check` (so a real `smartlabel` deployment on the same engine is
left alone; it needs ports 80, 443, 8080 and 8867 free). Afterwards `down -v` removes it
(`--keep` leaves it running), and a private engine this script started is stopped again.

Prints one line per check and, last, `compose: N/M checks passed`; exit status 0 only when
all passed. Not part of `make test`: it takes minutes (the first build about ten) and a few GB.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
PROJECT_NAME = "smartlabel-check"
LABELLER = "Compose Check"
# services with a healthcheck in docker-compose.yml, and those without one (only "running")
HEALTHY = ("db", "orchestrator", "voila", "dashboard", "adminer")
RUNNING = ("proxy",)
ONE_SHOT = "init"
MODEL_FILE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ(?:[-_.][0-9A-Za-z]+)* (?:\d+\.\d+|nan)\.pkl$")
# what the importer says about a bad line: "FILE, line N, column C (NAME): ..."
IMPORT_ERROR = re.compile(r"(?P<file>\S*aldata\.csv), line (?P<line>\d+), column (?P<column>\d+)")
# the words of each demo tag's posts (for the labelled posts the check imports)
VOCABULARY = (
    "profit net income dividend quarter earnings share revenue results",
    "merger acquire takeover stake bid shareholders deal company buys",
    "inflation growth economy trade deficit central bank rates gdp",
    "oil crude opec barrels gas energy refinery pipeline prices",
    "wheat corn grain harvest farmers crop soybeans export tonnes",
    "gold copper zinc steel aluminium mine metals ounce smelter",
)


# --- pure parts (tests/test_compose_check.py) ---------------------------------------------------


def choose_engine(requested: str, host_answers: bool) -> str:
    """'host' or 'private' for --engine auto|host|private, given whether the host's Docker answers."""
    if requested not in ("auto", "host", "private"):
        raise ValueError(f"--engine must be auto, host or private, not {requested!r}")
    if requested == "auto":
        return "host" if host_answers else "private"
    return requested


def find_engine_script(project: Path, override: str | None = None) -> Path | None:
    """engine.sh: $COMPOSE_CHECK_ENGINE, else shared/compose-check/engine.sh beside the project or
    beside one of its parent folders (a git worktree lives deeper than the main checkout)."""
    if override:
        return Path(override)
    for folder in [project, *project.parents]:
        candidate = folder.parent / "shared" / "compose-check" / "engine.sh"
        if candidate.is_file():
            return candidate
    return None


def parse_env_exports(text: str) -> dict[str, str]:
    """`export A=1 B=2` (engine.sh env) -> {'A': '1', 'B': '2'}."""
    out = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if words and words[0] == "export":
            for word in words[1:]:
                key, sep, value = word.partition("=")
                if sep:
                    out[key] = value
    return out


def personal_link_params(output: str) -> dict[str, str]:
    """token and key of the personal link `smartlabel labellers add` printed."""
    for word in output.split():
        if word.startswith(("http://", "https://")) and "key=" in word:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(word).query)
            return {k: v[0] for k, v in query.items() if k in ("token", "key")}
    raise ValueError("no personal link (http...?key=...) in the output:\n" + output)


def page_address(params: dict[str, str], base: str = "https://localhost/") -> str:
    """The link as a labeller opens it through the proxy."""
    return base + "?" + urllib.parse.urlencode(params)


def labelled_posts_csv(labels: list[str], n: int, *, prefix: str, seed: int = 1) -> str:
    """n posts with a label each (cycling through the first three tags, words that fit each), as
    the importer reads them: id, title, selftext, label, worker_id."""
    rng = random.Random(f"{prefix}-{seed}")
    tags = list(labels)[:3]
    if len(tags) < 2:
        raise ValueError("need at least two labels")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "title", "selftext", "label", "worker_id"])
    for i in range(n):
        k = i % len(tags)
        words = VOCABULARY[k % len(VOCABULARY)].split()
        rng.shuffle(words)
        writer.writerow([f"{prefix}-{i}", f"{prefix} {i}: " + " ".join(words[:4]), " ".join(words * 2), tags[k],
                         f"cli-{i % 2}"])
    return buf.getvalue()


def bad_row(columns: list[str], max_chars: int = 100_000) -> str:
    """A CSV line whose selftext is one character longer than MAX_FIELD_CHARS allows."""
    values = {"id": "compose-check-bad-row", "title": "a title", "selftext": "x" * (max_chars + 1)}
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([values.get(c, "") for c in columns])
    return buf.getvalue()


def import_error(log: str) -> dict | None:
    """file, line and column the importer's error names in a log, or None."""
    m = IMPORT_ERROR.search(log)
    return {"file": m["file"], "line": int(m["line"]), "column": int(m["column"])} if m else None


def model_files(names: list[str]) -> list[str]:
    return sorted(n for n in names if MODEL_FILE.match(n))


def health_of(inspect: dict) -> str:
    """'healthy', 'unhealthy', 'starting', or the container's status when it has no healthcheck."""
    state = inspect.get("State") or {}
    health = state.get("Health")
    return health.get("Status", "?") if health else state.get("Status", "?")


def published(inspect: dict) -> dict[str, list[str]]:
    """container port -> ['HOST_IP:HOST_PORT', ...] that docker published for it (every address,
    IPv4 or IPv6, written 0.0.0.0)."""
    out = {}
    for port, bindings in ((inspect.get("NetworkSettings") or {}).get("Ports") or {}).items():
        if bindings:
            hosts = {("0.0.0.0" if b.get("HostIp") in ("", "::", None) else b["HostIp"]) + f":{b.get('HostPort')}"
                     for b in bindings}
            out[port] = sorted(hosts)
    return out


def ports_problems(by_service: dict[str, dict[str, list[str]]]) -> list[str]:
    """What differs from: proxy 80 and 443 public and 8867 on 127.0.0.1, adminer 8080 on
    127.0.0.1, nothing else published."""
    want = {"proxy": {"80/tcp": ["0.0.0.0:80"], "443/tcp": ["0.0.0.0:443"], "8867/tcp": ["127.0.0.1:8867"]},
            "adminer": {"8080/tcp": ["127.0.0.1:8080"]}}
    problems = []
    for service, ports in sorted(by_service.items()):
        expected = want.get(service, {})
        for port, bindings in sorted(ports.items()):
            if port not in expected:
                problems.append(f"{service} publishes {port} on {', '.join(bindings)}")
            elif sorted(bindings) != sorted(expected[port]):
                problems.append(f"{service} {port} on {', '.join(bindings)}, expected {', '.join(expected[port])}")
        for port in expected:
            if port not in ports:
                problems.append(f"{service} does not publish {port}")
    return problems


def summary(results: list[tuple[str, bool, str]]) -> str:
    return f"compose: {sum(ok for _, ok, _ in results)}/{len(results)} checks passed"


# --- running docker ------------------------------------------------------------------------------


class CheckFailed(Exception):
    pass


@dataclass
class Stack:
    """docker compose in the clone, on the chosen engine."""

    folder: Path
    env: dict[str, str]
    log_dir: Path
    dotenv: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, input: str | None = None, timeout: float = 600, check: bool = False,
            nice: bool = False) -> subprocess.CompletedProcess:
        argv = (["nice", "-n", "10"] if nice else []) + list(args)
        try:
            result = subprocess.run(argv, cwd=self.folder, env=self.env, input=input, capture_output=True,
                                    text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise CheckFailed(f"{' '.join(args[:4])}... took longer than {timeout:.0f} s") from None
        if check and result.returncode != 0:
            raise CheckFailed(f"{' '.join(args[:5])} exited {result.returncode}: "
                              f"{(result.stderr or result.stdout).strip()[-800:]}")
        return result

    def compose(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run("docker", "compose", *args, **kw)

    def container(self, service: str) -> str | None:
        ids = self.compose("ps", "-a", "-q", service).stdout.split()
        return ids[0] if ids else None

    def inspect(self, service: str) -> dict:
        cid = self.container(service)
        if not cid:
            return {}
        out = self.run("docker", "inspect", cid)
        return json.loads(out.stdout)[0] if out.returncode == 0 else {}

    def logs(self, service: str) -> str:
        out = self.compose("logs", "--no-color", service, timeout=120)
        (self.log_dir / f"logs-{service}.txt").write_text(out.stdout + out.stderr)
        return out.stdout + out.stderr

    def psql(self, sql: str) -> str:
        user, db = self.dotenv.get("POSTGRES_USER", "smartlabel"), self.dotenv.get("POSTGRES_DB", "smartlabel")
        out = self.compose("exec", "-T", "db", "psql", "-U", user, "-d", db, "-tAc", sql, timeout=60)
        if out.returncode != 0:
            raise CheckFailed(f"psql {sql!r}: {out.stderr.strip()}")
        return out.stdout.strip()

    def count(self, sql: str) -> int:
        return int(self.psql(sql) or 0)


def wait_for(predicate: Callable[[], object], timeout: float, what: str, every: float = 3.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except CheckFailed as exc:
            value, last = None, exc
        if value:
            return value
        time.sleep(every)
    raise CheckFailed(f"{what}: not within {timeout:.0f} s" + (f" ({last})" if last else ""))


def http_get(url: str, timeout: float = 60) -> tuple[int, str, dict]:
    """status, body, headers; no redirects followed; certificates of Caddy's own CA accepted."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), NoRedirect)
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace"), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace"), dict(exc.headers)


def host_docker_answers(env: dict[str, str]) -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], env=env,
                              capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


# --- the checks ----------------------------------------------------------------------------------


class Checks:
    def __init__(self, stack: Stack, project: Path):
        self.s = stack
        self.project = project
        self.results: list[tuple[str, bool, str]] = []
        self.labels: list[str] = []
        self.link: dict[str, str] = {}

    def check(self, name: str, fn: Callable[[], str | None]) -> bool:
        started = time.monotonic()
        try:
            note = fn() or ""
            ok = True
        except CheckFailed as exc:
            note, ok = str(exc), False
        except Exception as exc:  # a bug in a check counts as a failed check, and says what
            note, ok = f"{type(exc).__name__}: {exc}", False
        self.results.append((name, ok, note))
        took = time.monotonic() - started
        print(f"[{time.strftime('%H:%M:%S')}] {'PASS' if ok else 'FAIL'} {name} ({took:.0f} s)"
              + (f": {note}" if note else ""), flush=True)
        return ok

    # -- bring-up --

    def up(self) -> str:
        t0 = time.monotonic()
        out = self.s.compose("up", "-d", "--build", "--pull", "never", timeout=3600, nice=True)
        (self.s.log_dir / "up.log").write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            raise CheckFailed(f"exit {out.returncode}: {out.stderr.strip()[-1200:]}")
        return f"{time.monotonic() - t0:.0f} s"

    def init_completed(self) -> str:
        state = wait_for(lambda: (self.s.inspect(ONE_SHOT).get("State") or {}).get("Status") == "exited"
                         and self.s.inspect(ONE_SHOT)["State"], 300, "init exited")
        log = self.s.logs(ONE_SHOT)
        if state["ExitCode"] != 0:
            raise CheckFailed(f"init exited {state['ExitCode']}: {log.strip()[-600:]}")
        missing = [w for w in ("schema at revision", "roles ready", "posts added") if w not in log]
        if missing:
            raise CheckFailed(f"init's log lacks {missing}")
        return "exit 0; " + " / ".join(line.strip() for line in log.splitlines() if "posts added" in line)[-120:]

    def all_healthy(self, timeout: float = 420) -> str:
        def states():
            now = {s: health_of(self.s.inspect(s)) for s in HEALTHY + RUNNING}
            ok = all(now[s] == "healthy" for s in HEALTHY) and all(now[s] == "running" for s in RUNNING)
            self._last_states = now
            return now if ok else None

        self._last_states = {}
        try:
            now = wait_for(states, timeout, "every service healthy", every=5)
        except CheckFailed:
            raise CheckFailed(f"states: {self._last_states}") from None
        return ", ".join(f"{k} {v}" for k, v in now.items())

    def orchestrator_health(self) -> str:
        out = self.s.compose("exec", "-T", "orchestrator", "smartlabel", "health", timeout=120)
        if out.returncode != 0:
            raise CheckFailed((out.stderr or out.stdout).strip())
        return out.stdout.strip()

    # -- the page --

    def add_labeller(self) -> str:
        out = self.s.compose("run", "--rm", "-T", ONE_SHOT, "smartlabel", "labellers", "add", LABELLER, timeout=300)
        if out.returncode != 0:
            raise CheckFailed((out.stderr or out.stdout).strip()[-600:])
        self.link = personal_link_params(out.stdout)
        if "token" not in self.link:
            raise CheckFailed("the link carries no token")
        printed = next(w for w in out.stdout.split() if "key=" in w)
        return f"link printed as {printed.split('?')[0]}?token=...&key=..."

    def page_through_proxy(self) -> str:
        if not self.link:
            raise CheckFailed("no personal link (the previous check failed)")
        status, body, _ = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(http_get(page_address(self.link))),
                                   120, "the page through the proxy", every=3)
        refused, _, _ = http_get("https://localhost/")
        redirect, _, headers = http_get("http://localhost/")
        if refused not in (302, 401, 403):
            raise CheckFailed(f"without the token the page answered {refused}")
        if redirect not in (301, 302, 307, 308) or not headers.get("Location", "").startswith("https://"):
            raise CheckFailed(f"http://localhost/ answered {redirect} {headers.get('Location')}")
        return f"200 with the link, {refused} without the token, http -> {redirect} https"

    def read_labels(self) -> list[str]:
        out = self.s.compose("exec", "-T", "voila", "python3", "-c",
                             "import json; from smartlabel.settings import load_settings; "
                             "print(json.dumps(load_settings().labels))", timeout=120, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def click_in_chromium(self) -> str:
        if not self.link:
            raise CheckFailed("no personal link (an earlier check failed)")
        try:
            from playwright.sync_api import expect, sync_playwright
        except ImportError:
            raise CheckFailed("playwright is missing: run with the project's .venv (make install-dev)") from None
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if not chromium:
            raise CheckFailed("chromium is missing: apt-get install -y chromium")
        self.labels = self.labels or self.read_labels()
        tag = self.labels[0]
        before = self.s.count(f"SELECT COUNT(*) FROM labels WHERE worker_id = '{LABELLER}' AND label = '{tag}'")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            try:
                page = browser.new_context(ignore_https_errors=True).new_page()
                page.set_default_timeout(120_000)
                page.goto(page_address(self.link))
                post = page.locator(".sl-post")
                post.wait_for()
                first = post.get_attribute("data-item-id")
                if LABELLER not in page.content():
                    raise CheckFailed(f"the page does not say it labels as {LABELLER}")
                page.locator("button").filter(has_text=re.compile(rf"^\W*{re.escape(tag)}\s*$")).first.click()
                expect(page.locator(".sl-post")).not_to_have_attribute("data-item-id", first, timeout=60_000)
                page.screenshot(path=str(self.s.log_dir / "page.png"))
            finally:
                browser.close()
        after = wait_for(lambda: (lambda n: n if n > before else None)(self.s.count(
            f"SELECT COUNT(*) FROM labels WHERE worker_id = '{LABELLER}' AND label = '{tag}' "
            f"AND item_id = {int(first)}")), 30, "the label row")
        return f"post {first} labelled {tag!r} as {LABELLER!r} ({after} row)"

    # -- training --

    def import_labels(self, n: int, prefix: str) -> int:
        self.labels = self.labels or self.read_labels()
        data = labelled_posts_csv(self.labels, n, prefix=prefix)
        out = self.s.compose("run", "--rm", "-T", ONE_SHOT, "sh", "-c",
                             "cat > /tmp/labels.csv && smartlabel import --no-progress /tmp/labels.csv",
                             input=data, timeout=300)
        m = re.search(r"labels imported:\s*([\d,]+)", out.stdout)
        if out.returncode != 0 or not m:
            raise CheckFailed(f"import exited {out.returncode}: {(out.stderr or out.stdout).strip()[-600:]}")
        return int(m[1].replace(",", ""))

    def training_writes_a_model(self) -> str:
        n = self.import_labels(40, "compose-check")
        if n != 40:
            raise CheckFailed(f"imported {n} labels, not 40")
        models = self.s.folder / "models"
        files = wait_for(lambda: model_files(os.listdir(models)), 300, "a model file in models/", every=5)
        ok = self.s.count("SELECT COUNT(*) FROM model_runs WHERE status = 'ok'")
        if ok < 1:
            raise CheckFailed("a model file but no ok row in model_runs")
        return f"{files[-1]!r}; {ok} ok run(s)"

    # -- adminer, ports --

    def adminer_reader_login(self) -> str:
        import http.cookiejar

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open("http://127.0.0.1:8080/", timeout=60) as r:
            form = r.read().decode(errors="replace")
        if 'name="auth[server]" value="db"' not in form:
            raise CheckFailed("Adminer's login form does not have server 'db' filled in")

        def login(password: str) -> str:
            data = urllib.parse.urlencode({"auth[driver]": "pgsql", "auth[server]": "db",
                                           "auth[username]": "smartlabel_reader", "auth[password]": password,
                                           "auth[db]": self.s.dotenv.get("POSTGRES_DB", "smartlabel")}).encode()
            try:
                with opener.open("http://127.0.0.1:8080/", data=data, timeout=60) as r:
                    return r.read().decode(errors="replace")
            except urllib.error.HTTPError as exc:  # Adminer answers a refused login with 403
                return exc.read().decode(errors="replace")

        page = login(self.s.dotenv["READER_DB_PASSWORD"])
        if "Logout" not in page or "model_runs" not in page:
            said = re.search(r"<div class=['\"]error['\"]>(.*?)</div>", page, re.S)
            raise CheckFailed("no Logout / table list after logging in as smartlabel_reader"
                              + (f": {said[1].strip()[:200]}" if said else ""))
        jar.clear()
        with opener.open("http://127.0.0.1:8080/", timeout=60):
            pass
        wrong = login("wrong-password")
        if "Logout" in wrong or "authentication failed" not in wrong:
            raise CheckFailed("a wrong password was not refused with 'password authentication failed'")
        return "reader logged in (tables listed); a wrong password refused"

    def ports(self) -> str:
        services = HEALTHY + RUNNING
        by_service = {s: published(self.s.inspect(s)) for s in services}
        problems = ports_problems(by_service)
        if problems:
            raise CheckFailed("; ".join(problems))
        import socket

        with socket.socket() as sock:
            sock.settimeout(3)
            if sock.connect_ex(("127.0.0.1", 5432)) == 0:
                raise CheckFailed("something answers on 127.0.0.1:5432")
        return "db, voila, dashboard, orchestrator unpublished; adminer/dashboard on 127.0.0.1; proxy 80/443"

    # -- failures --

    def kill_mid_run(self) -> str:
        labels_before = items_before = None
        for attempt in range(3):
            self.import_labels(15, f"compose-check-kill{attempt}")
            labels_before = self.s.count("SELECT COUNT(*) FROM labels")
            items_before = self.s.count("SELECT COUNT(*) FROM items")
            try:
                run_id = int(wait_for(lambda: self.s.psql(
                    "SELECT id FROM model_runs WHERE status = 'running' ORDER BY id DESC LIMIT 1"),
                    120, "a run in progress", every=0.2))
            except CheckFailed:
                continue
            restarts = self.s.inspect("orchestrator")["RestartCount"]
            kill = ("import os, signal\n"
                    "for p in os.listdir('/proc'):\n"
                    "    if p.isdigit() and int(p) != os.getpid():\n"
                    "        try: argv = open(f'/proc/{p}/cmdline', 'rb').read().split(b'\\0')\n"
                    "        except OSError: continue\n"
                    "        if b'orchestrator.py' in argv: os.kill(int(p), signal.SIGKILL); print('killed', p)\n")
            out = self.s.compose("exec", "-T", "orchestrator", "python3", "-c", kill, timeout=60)
            if "killed" not in out.stdout:
                raise CheckFailed(f"could not kill the orchestrator: {out.stdout} {out.stderr}")
            still = self.s.psql(f"SELECT status FROM model_runs WHERE id = {run_id}")
            if still != "running":
                continue  # the run had finished before the kill: try again with more labels
            break
        else:
            raise CheckFailed("never caught a run in progress in 3 tries")
        wait_for(lambda: self.s.inspect("orchestrator")["RestartCount"] > restarts
                 and self.s.inspect("orchestrator")["State"]["Running"], 120, "the orchestrator restarted")
        status = wait_for(lambda: (lambda v: v if v and v != "running" else None)(
            self.s.psql(f"SELECT status FROM model_runs WHERE id = {run_id}")), 120, "the killed run marked")
        newer = wait_for(lambda: self.s.count(f"SELECT COUNT(*) FROM model_runs WHERE id > {run_id} AND status = 'ok'"),
                         300, "a new ok run after the restart", every=5)
        labels_after = self.s.count("SELECT COUNT(*) FROM labels")
        items_after = self.s.count("SELECT COUNT(*) FROM items")
        if (labels_after, items_after) != (labels_before, items_before):
            raise CheckFailed(f"labels {labels_before} -> {labels_after}, items {items_before} -> {items_after}")
        tmp = [n for n in os.listdir(self.s.folder / "models") if n.endswith(".tmp")]
        if tmp:
            raise CheckFailed(f"half-written model files left: {tmp}")
        wait_for(lambda: health_of(self.s.inspect("orchestrator")) == "healthy", 240, "orchestrator healthy again")
        return (f"run {run_id} killed -> {status}; restarted by itself; {newer} ok run(s) after it; "
                f"labels {labels_after} and items {items_after} unchanged; healthy again")

    def bad_row_fails_init(self) -> str:
        path = self.s.folder / "aldata.csv"
        original = path.read_bytes()
        with path.open(newline="", encoding="utf-8") as fh:
            columns = next(csv.reader(fh))
        items_before = self.s.count("SELECT COUNT(*) FROM items")
        try:
            with path.open("a", encoding="utf-8", newline="") as fh:
                fh.write(bad_row(columns))
            up = self.s.compose("up", "-d", "--pull", "never", timeout=900)
            (self.s.log_dir / "up-bad-row.log").write_text(up.stdout + up.stderr)
            state = self.s.inspect(ONE_SHOT).get("State") or {}
            log = self.s.logs(ONE_SHOT)
            where = import_error(log)
            problems = []
            if up.returncode == 0:
                problems.append("`docker compose up -d` exited 0")
            if state.get("ExitCode") in (0, None):
                problems.append(f"init exit code {state.get('ExitCode')}")
            if not where:
                problems.append("no log line naming aldata.csv, line and column")
            if self.s.count("SELECT COUNT(*) FROM items") != items_before:
                problems.append("items changed")
            status, _, _ = http_get(page_address(self.link)) if self.link else (0, "", {})
            if status != 200:
                problems.append(f"the page answered {status}")
            for s in ("voila", "orchestrator"):
                if health_of(self.s.inspect(s)) != "healthy":
                    problems.append(f"{s} is {health_of(self.s.inspect(s))}")
            if problems:
                raise CheckFailed("; ".join(problems))
            said = next((line for line in log.splitlines() if IMPORT_ERROR.search(line)), "").strip()
            return (f"up exit {up.returncode}, init exit {state['ExitCode']}: {said[:160]}; "
                    "page 200, orchestrator still healthy, items unchanged")
        finally:
            path.write_bytes(original)

    def good_file_again(self) -> str:
        up = self.s.compose("up", "-d", "--pull", "never", timeout=900)
        if up.returncode != 0:
            raise CheckFailed(up.stderr.strip()[-600:])
        state = wait_for(lambda: (lambda st: st if st.get("Status") == "exited" else None)(
            self.s.inspect(ONE_SHOT).get("State") or {}), 300, "init exited")
        if state["ExitCode"] != 0:
            raise CheckFailed(f"init exit {state['ExitCode']}")
        return "init exit 0 again"

    def down_up_keeps_labels(self) -> str:
        labels = self.s.count("SELECT COUNT(*) FROM labels")
        mine = self.s.count(f"SELECT COUNT(*) FROM labels WHERE worker_id = '{LABELLER}'")
        items = self.s.count("SELECT COUNT(*) FROM items")
        down = self.s.compose("down", timeout=600)
        if down.returncode != 0:
            raise CheckFailed(f"down: {down.stderr.strip()[-400:]}")
        left = self.s.run("docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT_NAME}")
        if left.stdout.strip():
            raise CheckFailed("containers left after down")
        if self.s.run("docker", "volume", "inspect", f"{PROJECT_NAME}_pgdata").returncode != 0:
            raise CheckFailed("the database volume is gone")
        up = self.s.compose("up", "-d", "--pull", "never", timeout=900)
        if up.returncode != 0:
            raise CheckFailed(f"up: {up.stderr.strip()[-400:]}")
        self.all_healthy()
        after = (self.s.count("SELECT COUNT(*) FROM labels"),
                 self.s.count(f"SELECT COUNT(*) FROM labels WHERE worker_id = '{LABELLER}'"),
                 self.s.count("SELECT COUNT(*) FROM items"))
        if after != (labels, mine, items):
            raise CheckFailed(f"labels/mine/items {labels}/{mine}/{items} -> {'/'.join(map(str, after))}")
        status, _, _ = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(http_get(page_address(self.link))),
                                120, "the page again") if self.link else (0, "", {})
        return f"{labels} labels ({mine} from the page), {items} posts kept; page {status}"

    def run_all(self) -> None:
        if not self.check("docker compose up -d --build --pull never", self.up):
            self.s.logs(ONE_SHOT)
            return
        self.check("init completed (schema, roles, import; exit 0)", self.init_completed)
        self.check("every service healthy (db, orchestrator, voila, dashboard, adminer), proxy running",
                   self.all_healthy)
        self.check("orchestrator heartbeat fresh (smartlabel health)", self.orchestrator_health)
        self.check("labellers add through init prints a personal link", self.add_labeller)
        self.check("page through the HTTPS proxy with the link; refused without token; http redirects",
                   self.page_through_proxy)
        self.check("a click in Chromium lands in PostgreSQL as that labeller", self.click_in_chromium)
        self.check("after 40 labels the orchestrator writes models/<timestamp> <score>.pkl",
                   self.training_writes_a_model)
        self.check("Adminer on 127.0.0.1:8080 logs in as smartlabel_reader", self.adminer_reader_login)
        self.check("published ports: proxy 80/443, 127.0.0.1 only for Adminer and dashboard, no database",
                   self.ports)
        self.check("orchestrator killed mid-run: nothing lost, it restarts and trains again", self.kill_mid_run)
        self.check("bad row in aldata.csv fails init loudly; the page keeps serving", self.bad_row_fails_init)
        self.check("aldata.csv fixed: init completes again", self.good_file_again)
        self.check("down then up keeps every label and post", self.down_up_keeps_labels)
        for s in HEALTHY + RUNNING + (ONE_SHOT,):
            self.s.logs(s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="compose_check.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="auto", choices=["auto", "host", "private"],
                        help="host: the Docker that `docker version` reaches; private: ../shared/compose-check/"
                        "engine.sh; auto (default): host if it answers, else private")
    parser.add_argument("--project", type=Path, default=ROOT, help="the git repository to clone (default: this one)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to clone (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="leave the stack (and a private engine) running")
    args = parser.parse_args(argv)
    started = time.monotonic()

    project = args.project.resolve()
    head = subprocess.run(["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        print(f"error: {project} is not a git repository", file=sys.stderr)
        return 2
    commit = head.stdout.strip()
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="compose-check-"))).resolve()
    folder = work / "project"
    if folder.exists():
        shutil.rmtree(folder)
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(project), str(folder)], check=True)
    subprocess.run(["git", "-C", str(folder), "checkout", "-q", commit], check=True)
    print(f"compose-check of commit {commit[:12]} in {folder}", flush=True)

    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    env["COMPOSE_PROJECT_NAME"] = PROJECT_NAME
    engine = choose_engine(args.engine, host_docker_answers(env) if args.engine != "private" else False)
    engine_script, started_engine = None, False
    if engine == "private":
        engine_script = find_engine_script(project, os.environ.get("COMPOSE_CHECK_ENGINE"))
        if engine_script is None:
            print("compose: 0/1 checks passed (no Docker answers and no ../shared/compose-check/engine.sh; "
                  "set COMPOSE_CHECK_ENGINE)")
            return 1
        private = {**env, **parse_env_exports(subprocess.run([str(engine_script), "env"], capture_output=True,
                                                            text=True).stdout)}
        started_engine = not host_docker_answers(private)
        print(f"engine: private ({engine_script} up; the first time takes about ten minutes)", flush=True)
        up = subprocess.run(["nice", "-n", "10", str(engine_script), "up", str(folder)], capture_output=True, text=True)
        (work / "engine-up.log").write_text(up.stdout + up.stderr)
        if up.returncode != 0:
            print(up.stderr[-2000:])
            print("compose: 0/1 checks passed (the private engine did not start)")
            return 1
        env = private
    else:
        print("engine: the host's Docker", flush=True)

    make_env = subprocess.run(["python3", "scripts/make_env.py"], cwd=folder,
                              capture_output=True, text=True)
    if make_env.returncode != 0:
        print(make_env.stderr)
        print("compose: 0/1 checks passed (make env failed)")
        return 1
    models = folder / "models"
    models.mkdir(exist_ok=True)
    if os.geteuid() == 0:  # README: ./models must be writable by uid 1000
        for path in [models, *models.rglob("*")]:
            os.chown(path, 1000, -1)
    dotenv = {}
    for line in (folder / ".env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            dotenv[key.strip()] = value.strip()
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    stack = Stack(folder, env, logs, dotenv)
    stack.compose("down", "-v", "--remove-orphans", timeout=300)  # a stack an earlier run kept
    checks = Checks(stack, project)
    try:
        checks.run_all()
    finally:
        if not args.keep:
            stack.compose("down", "-v", "--remove-orphans", timeout=600)
            if started_engine and engine_script:
                subprocess.run([str(engine_script), "down"], capture_output=True)
    minutes = (time.monotonic() - started) / 60
    print(f"commit {commit[:12]}, engine {engine}, {minutes:.1f} min; logs in {logs}")
    print(summary(checks.results))
    return 0 if all(ok for _, ok, _ in checks.results) else 1


if __name__ == "__main__":
    sys.exit(main())
