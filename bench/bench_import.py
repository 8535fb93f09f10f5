#!/usr/bin/env python3
"""Import speed: rows per second for a generated CSV on SQLite and PostgreSQL.

    python bench/bench_import.py                       # 100,000 rows, both backends
    python bench/bench_import.py --rows 20000 --backends sqlite
    python bench/bench_import.py --postgres-url postgresql+psycopg2://...   # an existing server

The file has Reddit-like posts (title, a 40-160 word markdown body with links and
entities, an id, a subreddit column kept as extra, a label on 10% of rows) and no
`clean_selftext`, so the importer also cleans every body: the slowest realistic
case. Each backend gets a fresh database; the first import adds every row, the
second finds every row present (the re-import path). PostgreSQL is a throw-away
pgserver instance unless --postgres-url is given. Results: bench/results/import.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from smartlabel import LABEL_PRESETS  # noqa: E402

LABELS = list(LABEL_PRESETS["article"])  # the Reddit-like posts carry the article's tags

WORDS = (
    "the a to and of in is it for that you this on my with be have are not but was they so what "
    "can just like about if people would do all i get one from or me how there more think your "
    "know when any time out up no some only them will really government housing school job work "
    "family friends parents singapore hdb mrt covid vaccine salary rent food hawker bus train news "
    "policy community support help advice story experience question share issue discussion"
).split()
DECOR = ["**{}**", "_{}_", "[{}](https://example.com/{})", "{} &amp;", "<b>{}</b>", "{}!!!", "{}?", "`{}`"]


def make_file(path: Path, rows: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    labels = LABELS
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "title", "selftext", "subreddit", "label"])
        for i in range(rows):
            title = " ".join(rng.choices(WORDS, k=rng.randint(4, 12))).capitalize() + f" #{i}"
            body_words = []
            for _ in range(rng.randint(40, 160)):
                word = rng.choice(WORDS)
                if rng.random() < 0.05:
                    word = rng.choice(DECOR).format(word, word)
                body_words.append(word)
                if rng.random() < 0.02:
                    body_words.append("\n\n")
            label = rng.choice(labels) if rng.random() < 0.1 else ""
            w.writerow([f"b{i}", title, " ".join(body_words), rng.choice(["singapore", "askSG", "SGExams"]), label])
    return path.stat().st_size


def pg_admin_url(args, workdir: Path):
    if args.postgres_url:
        return args.postgres_url, None
    import pgserver

    srv = pgserver.get_server(str(workdir / "pg"), cleanup_mode="stop")
    return srv.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1), srv


def fresh_pg_database(admin_url: str) -> tuple[str, str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = "bench_import_" + uuid.uuid4().hex[:8]
    eng = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    eng.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), name


def drop_pg_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    eng.dispose()


def measure(csv_path: Path, url: str, batch_size: int) -> dict:
    from smartlabel.importer import import_file
    from smartlabel.migrate import upgrade
    from smartlabel.settings import load_settings

    settings = load_settings(database_url=url, labels=LABELS)
    upgrade(url).dispose()  # not part of the timing
    t0 = time.perf_counter()
    first = import_file(csv_path, url, settings=settings, batch_size=batch_size, progress=False, seed=0)
    t1 = time.perf_counter()
    second = import_file(csv_path, url, settings=settings, batch_size=batch_size, progress=False, seed=0)
    t2 = time.perf_counter()
    return {
        "rows": first.rows,
        "added": first.added,
        "labels_added": first.labels_added,
        "seconds": round(t1 - t0, 3),
        "rows_per_second": round(first.rows / (t1 - t0)),
        "reimport_added": second.added,
        "reimport_seconds": round(t2 - t1, 3),
        "reimport_rows_per_second": round(second.rows / (t2 - t1)),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    ap.add_argument("--postgres-url", help="an admin URL of an existing PostgreSQL (default: start pgserver)")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="rows per batch (default: the importer's, 1000 on SQLite and 10000 on PostgreSQL)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "import.json")
    args = ap.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    results: dict = {
        "benchmark": "import",
        "rows": args.rows,
        "batch_size": args.batch_size,
        "file": "generated CSV: id, title, markdown body (40-160 words), subreddit, label on 10% of rows; "
        "no clean_selftext (computed on import)",
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench_import_") as tmp:
        work = Path(tmp)
        csv_path = work / "posts.csv"
        t0 = time.perf_counter()
        size = make_file(csv_path, args.rows)
        results["file_mb"] = round(size / 1e6, 1)
        print(f"generated {args.rows:,} rows ({size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s")
        for backend in backends:
            if backend == "sqlite":
                url = f"sqlite:///{work / 'bench.db'}"
                results["backends"]["sqlite"] = measure(csv_path, url, args.batch_size)
            elif backend == "postgresql":
                admin, srv = pg_admin_url(args, work)
                url, name = fresh_pg_database(admin)
                try:
                    results["backends"]["postgresql"] = measure(csv_path, url, args.batch_size)
                finally:
                    drop_pg_database(admin, name)
                    if srv is not None:
                        srv.cleanup()
            else:
                ap.error(f"unknown backend {backend!r}")
            r = results["backends"][backend]
            print(
                f"{backend:>10}: {r['rows']:,} rows in {r['seconds']:.1f} s = {r['rows_per_second']:,} rows/s; "
                f"re-import {r['reimport_seconds']:.1f} s = {r['reimport_rows_per_second']:,} rows/s"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
