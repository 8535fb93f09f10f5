"""Finishing the job: auto-label the rest, export the data set, show the status.

- `autolabel`: the newest model file in MODELS_DIR scores every post without an
  agreed human label (unlabelled posts and ties). Its predictions go into a new
  `model_runs` row with `acquisition = 'autolabel'`, which the queue never
  follows (the labelling page keeps the orchestrator's priorities).
- `export`: every post with its human labels; final label = the agreed human
  label, else the model's prediction; `label_source` human | model | none;
  `confidence` = share of the post's votes for the agreed label (human) or the
  model's probability (model); `model_run` = the run the prediction came from.
  Predictions come from the newest auto-label run that still has predictions,
  else from the queue's current run (open posts only). Streams in id order
  (bounded memory), CSV or JSON Lines, written to a temporary file then renamed.
- `status`: counts, labels per class and the latest runs as rich tables.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Engine

from smartlabel import acquisition
from smartlabel.db import make_engine, model_runs, utcnow
from smartlabel.errors import SmartlabelError
from smartlabel.orchestrator import list_model_files, model_input

log = logging.getLogger("smartlabel.export")

EXPORT_BATCH = 2000
EXPORT_COLUMNS = ["id", "external_id", "title", "selftext", "clean_selftext", "human_labels", "n_labels",
                  "agreed_label", "agreement", "suspect", "final_label", "label_source", "confidence",
                  "model_run", "extra"]


class NoModelError(SmartlabelError):
    """There is no model file to apply."""


# --- autolabel -----------------------------------------------------------------------------


@dataclass
class AutolabelResult:
    run_id: int
    n_scored: int
    model_path: Path
    seconds: float

    def summary(self) -> str:
        return (f"auto-labelled {self.n_scored} post(s) without an agreed human label with {self.model_path.name} "
                f"(run {self.run_id}, {self.seconds:.1f} s); `smartlabel export --out FILE` writes them out")


def latest_model_file(models_dir) -> Path:
    files = list_model_files(models_dir)
    if not files:
        raise NoModelError(
            f"no model file in {models_dir}: run `smartlabel orchestrate --once` first "
            "(it needs agreed labels of at least two classes)"
        )
    return files[-1]


def load_model(path: Path):
    try:
        with open(path, "rb") as fh:
            model = pickle.load(fh)
    except Exception as exc:
        raise NoModelError(f"cannot read model file {path}: {type(exc).__name__}: {exc}") from None
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise NoModelError(f"{path} does not hold a fitted classifier with predict_proba")
    return model


def _unlabelled_batches(engine: Engine, batch: int) -> Iterator[list]:
    """Posts without an agreed label, in id order, `batch` at a time (keyset pagination)."""
    after = 0
    sql = text("""
        SELECT i.id, i.title, i.clean_selftext FROM items i
        WHERE i.id > :after AND NOT EXISTS (SELECT 1 FROM agreed_labels a WHERE a.item_id = i.id)
        ORDER BY i.id LIMIT :n""")
    while True:
        with engine.connect() as conn:
            rows = conn.execute(sql, {"after": after, "n": batch}).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def autolabel(settings=None, *, engine: Engine | str | None = None, models_dir=None,
              model_file: str | os.PathLike | None = None, progress: bool = True) -> AutolabelResult:
    from tqdm import tqdm

    from smartlabel.queue import write_predictions

    if settings is None:
        from smartlabel.settings import load_settings

        settings = load_settings()
    engine = make_engine(engine or settings.database_url)
    path = Path(model_file) if model_file else latest_model_file(models_dir or settings.models_dir)
    model = load_model(path)
    meta = getattr(model, "smartlabel_meta_", {}) or {}
    t0 = time.monotonic()
    with engine.connect() as conn:
        total = conn.execute(text(
            "SELECT COUNT(*) FROM items i WHERE NOT EXISTS (SELECT 1 FROM agreed_labels a WHERE a.item_id = i.id)"
        )).scalar_one()
    with engine.begin() as conn:
        run_id = conn.execute(insert(model_runs).values(
            started_at=utcnow(), status="running", model_kind=meta.get("model_kind"), acquisition="autolabel",
            model_path=str(path), n_labels=meta.get("n_labels"), n_classes=len(model.classes_),
            cv_accuracy=meta.get("cv_accuracy"),
            message=f"auto-label with {path.name}" + (f" (trained in run {meta['run_id']})" if meta.get("run_id") else ""),
        ).returning(model_runs.c.id)).scalar_one()
    n = 0
    try:
        with tqdm(total=total, desc="auto-labelling", unit="post", disable=not progress) as bar:
            for rows in _unlabelled_batches(engine, int(settings.score_batch_size)):
                ids = [r[0] for r in rows]
                proba = model.predict_proba([model_input(r[1], r[2]) for r in rows])
                l1, p1, l2, p2 = acquisition.top_two(proba, model.classes_)
                pri = acquisition.priorities("certainty", proba)  # least sure first, for a human review
                write_predictions(engine, run_id, ids, pri.tolist(), predicted_labels=l1.tolist(),
                                  confidences=p1.tolist(), second_labels=l2.tolist(),
                                  second_confidences=p2.tolist())
                n += len(ids)
                bar.update(len(ids))
    except BaseException as exc:
        with engine.begin() as conn:
            conn.execute(update(model_runs).where(model_runs.c.id == run_id).values(
                status="failed", finished_at=utcnow(), message=f"auto-label failed: {type(exc).__name__}: {exc}"[:2000]))
        raise
    seconds = time.monotonic() - t0
    with engine.begin() as conn:
        conn.execute(update(model_runs).where(model_runs.c.id == run_id).values(
            status="ok", finished_at=utcnow(), n_scored=n, seconds_score=round(seconds, 3)))
    return AutolabelResult(run_id, n, path, seconds)


# --- export ----------------------------------------------------------------------------------


def prediction_run(engine: Engine) -> tuple[int | None, str]:
    """The run export takes model labels from, and why."""
    with engine.connect() as conn:
        auto = conn.execute(text("""
            SELECT r.id FROM model_runs r WHERE r.acquisition = 'autolabel' AND r.status = 'ok'
              AND EXISTS (SELECT 1 FROM predictions p WHERE p.run_id = r.id)
            ORDER BY r.id DESC LIMIT 1""")).scalar()
        if auto is not None:
            return int(auto), f"auto-label run {auto}"
        cur = conn.execute(text("SELECT current_run_id FROM queue_state WHERE id = 1")).scalar()
    if cur is not None:
        return int(cur), f"the queue's current run {cur} (open posts only; run `smartlabel autolabel` for all)"
    return None, "no model run yet: final labels are human labels only"


@dataclass
class ExportResult:
    path: Path
    rows: int
    human: int
    model: int
    none: int
    source: str

    def summary(self) -> str:
        return (f"wrote {self.rows} post(s) to {self.path}: {self.human} human-labelled, {self.model} "
                f"model-labelled, {self.none} without a label; model labels from {self.source}")


def _export_rows(engine: Engine, run_id: int | None) -> Iterator[dict]:
    from smartlabel.quality import item_quality

    sql = text("""
        SELECT i.id, i.external_id, i.title, i.selftext, i.clean_selftext, i.extra,
               a.agreed_label, a.votes, p.predicted_label, p.confidence
        FROM items i
        LEFT JOIN agreed_labels a ON a.item_id = i.id
        LEFT JOIN predictions p ON p.item_id = i.id AND p.run_id = :run
        WHERE i.id > :after ORDER BY i.id LIMIT :n""")
    after = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(sql, {"after": after, "n": EXPORT_BATCH, "run": run_id if run_id is not None else -1}).all()
            if not rows:
                return
            votes: dict[int, list] = {}
            for item_id, worker, label in conn.execute(
                text("SELECT item_id, worker_id, label FROM labels WHERE item_id BETWEEN :lo AND :hi ORDER BY id"),
                {"lo": rows[0].id, "hi": rows[-1].id},
            ):
                votes.setdefault(item_id, []).append({"worker_id": worker, "label": label})
        quality = item_quality(engine, [r.id for r in rows])
        for r in rows:
            human = votes.get(r.id, [])
            q = quality.get(r.id, {})
            extra = r.extra
            if isinstance(extra, str):  # JSON read through raw SQL on some drivers
                try:
                    extra = json.loads(extra)
                except ValueError:
                    pass
            if r.agreed_label is not None:
                final, source, conf, run = r.agreed_label, "human", round(r.votes / len(human), 4), None
            elif r.predicted_label is not None:
                final, source, conf, run = r.predicted_label, "model", float(r.confidence), run_id
            else:
                final, source, conf, run = None, "none", None, None
            yield {"id": r.id, "external_id": r.external_id, "title": r.title, "selftext": r.selftext,
                   "clean_selftext": r.clean_selftext, "human_labels": human, "n_labels": len(human),
                   "agreed_label": r.agreed_label, "agreement": q.get("agreement"),
                   "suspect": bool(q.get("suspect", False)), "final_label": final, "label_source": source,
                   "confidence": conf, "model_run": run, "extra": extra}
        after = rows[-1].id


def export(out: str | os.PathLike, settings=None, *, engine: Engine | str | None = None,
           fmt: str | None = None, progress: bool = True) -> ExportResult:
    from tqdm import tqdm

    out = Path(out)
    fmt = (fmt or out.suffix.lstrip(".")).lower()
    if fmt not in ("csv", "jsonl"):
        raise SmartlabelError(f"cannot export to {out.name!r}: name the file .csv or .jsonl (or pass --format)")
    if settings is None:
        from smartlabel.settings import load_settings

        settings = load_settings()
    engine = make_engine(engine or settings.database_url)
    run_id, source = prediction_run(engine)
    with engine.connect() as conn:
        total = conn.execute(text("SELECT COUNT(*) FROM items")).scalar_one()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    counts = {"human": 0, "model": 0, "none": 0}
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh, \
                tqdm(total=total, desc=f"exporting to {out.name}", unit="post", disable=not progress) as bar:
            writer = None
            if fmt == "csv":
                writer = csv.DictWriter(fh, fieldnames=EXPORT_COLUMNS)
                writer.writeheader()
            for row in _export_rows(engine, run_id):
                counts[row["label_source"]] += 1
                n += 1
                if writer is not None:
                    flat = dict(row)
                    flat["human_labels"] = "; ".join(f"{v['worker_id']}: {v['label']}" for v in row["human_labels"])
                    flat["extra"] = json.dumps(row["extra"], ensure_ascii=False) if row["extra"] else ""
                    writer.writerow({k: ("" if v is None else v) for k, v in flat.items()})
                else:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                if n % 500 == 0:
                    bar.update(500)
            bar.update(n % 500)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return ExportResult(out, n, counts["human"], counts["model"], counts["none"], source)


# --- status --------------------------------------------------------------------------------------


def status_data(engine: Engine) -> dict:
    with engine.connect() as conn:
        one = lambda sql, **p: conn.execute(text(sql), p).scalar_one()  # noqa: E731
        counts = {
            "items": one("SELECT COUNT(*) FROM items"),
            "labelled": one("SELECT COUNT(DISTINCT item_id) FROM labels"),
            "agreed": one("SELECT COUNT(*) FROM agreed_labels"),
            "done": one("SELECT COUNT(*) FROM items WHERE done"),
            "leased": one("SELECT COUNT(*) FROM leases WHERE expires_at > :now", now=utcnow()),
            "labels": one("SELECT COUNT(*) FROM labels"),
            "labellers": one("SELECT COUNT(DISTINCT worker_id) FROM labels"),
        }
        per_class = {}
        for label, n in conn.execute(text("SELECT label, COUNT(*) FROM labels GROUP BY label")):
            per_class.setdefault(label, {"labels": 0, "agreed": 0})["labels"] = int(n)
        for label, n in conn.execute(text("SELECT agreed_label, COUNT(*) FROM agreed_labels GROUP BY agreed_label")):
            per_class.setdefault(label, {"labels": 0, "agreed": 0})["agreed"] = int(n)
        runs = [dict(r._mapping) for r in conn.execute(
            select(model_runs).order_by(model_runs.c.id.desc()).limit(5))]
        latest_ok = conn.execute(
            select(model_runs).where(model_runs.c.status == "ok")
            .where((model_runs.c.acquisition != "autolabel") | model_runs.c.acquisition.is_(None))
            .order_by(model_runs.c.id.desc()).limit(1)).first()
        current = conn.execute(text("SELECT current_run_id FROM queue_state WHERE id = 1")).scalar()
    return {"counts": {k: int(v) for k, v in counts.items()}, "per_class": per_class, "runs": runs,
            "latest_ok": dict(latest_ok._mapping) if latest_ok else None, "current_run_id": current}


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    if hasattr(v, "strftime"):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    return str(v)


def print_status(engine: Engine, labels: list[str], console=None) -> dict:
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # a pipe or a file: do not squeeze the tables into 80 columns
            console = Console(width=max(console.width, 120))
    data = status_data(engine)
    c = data["counts"]
    t = Table(title="Posts", show_header=True)
    for col in ("items", "labelled", "agreed label", "done", "leased now", "labels", "labellers"):
        t.add_column(col, justify="right")
    t.add_row(*(str(c[k]) for k in ("items", "labelled", "agreed", "done", "leased", "labels", "labellers")))
    console.print(t)

    t = Table(title="Labels per class", show_header=True)
    t.add_column("class")
    t.add_column("labels", justify="right")
    t.add_column("agreed posts", justify="right")
    names = list(labels) + sorted(set(data["per_class"]) - set(labels))
    for name in names:
        pc = data["per_class"].get(name, {"labels": 0, "agreed": 0})
        t.add_row(name + ("" if name in labels else " (not in LABELS)"), str(pc["labels"]), str(pc["agreed"]))
    console.print(t)

    t = Table(title=f"Latest model runs (the queue follows run {_fmt(data['current_run_id'])})", show_header=True)
    for col in ("run", "status", "started UTC", "model", "labels", "cv acc", "macro-F1", "audit", "scored"):
        t.add_column(col, justify="left" if col in ("status", "started UTC", "model") else "right", no_wrap=True)
    for r in data["runs"]:
        audit = "-" if r["audit_accuracy"] is None else f"{r['audit_accuracy']:.3f} n={r['n_audit']}"
        started = r["started_at"].strftime("%m-%d %H:%M:%S") if r["started_at"] else "-"
        model = "/".join(x for x in (r["model_kind"], r["acquisition"]) if x) or "-"
        score = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        t.add_row(str(r["id"]), r["status"], started, model, _fmt(r["n_labels"]), score(r["cv_accuracy"]),
                  score(r["cv_macro_f1"]), audit, _fmt(r["n_scored"]))
    if not data["runs"]:
        t.add_row("-", "no runs yet", *["" for _ in range(7)])
    console.print(t)
    if data["runs"]:
        r = data["runs"][0]
        console.print(f"run {r['id']} ({r['status']}): {r['message'] or 'no message'}"
                      + (f"; model file {r['model_path']}" if r["model_path"] else ""), highlight=False)

    ok = data["latest_ok"]
    if ok and ok.get("per_class"):
        per = ok["per_class"] if isinstance(ok["per_class"], dict) else json.loads(ok["per_class"])
        t = Table(title=f"Per class, run {ok['id']} (out-of-fold)", show_header=True)
        for col in ("class", "precision", "recall", "F1", "support"):
            t.add_column(col, justify="left" if col == "class" else "right")
        for name, m in per.items():
            t.add_row(name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
        console.print(t)
    return data
