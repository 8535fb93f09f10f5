"""Finishing the job: auto-label the rest, export the data set.

- `autolabel`: the newest model file in MODELS_DIR scores every post without an
  agreed human label (unlabelled posts and ties). Its predictions go into a new
  `model_runs` row of kind `autolabel`, which the queue never follows (the
  labelling page keeps the orchestrator's priorities).
- `export`: every post with its human labels; final label = the agreed human
  label, else the model's prediction; `label_source` human | model | none;
  `confidence` = share of the post's votes for the agreed label (human) or the
  model's probability (model); `model_run` = the run the prediction came from.
  Predictions come from the newest auto-label run that still has predictions,
  else from the queue's current run (open posts only). Streams in id order
  (bounded memory), CSV or JSON Lines, written to a temporary file then renamed.
- Safe CSV (OWASP's advice against formula injection): a text cell that starts with
  `=`, `+`, `-`, `@`, a tab or a carriage return is written with a leading `'`, so a
  spreadsheet shows it as text instead of running it (`=HYPERLINK(...)`, `+cmd|...`, a
  labeller named `=...`). Text such as "-5 degrees" gets the `'` too: a spreadsheet would
  otherwise try to read it as a formula, and the cost is one visible character in a
  cell that is text anyway. Numbers are written as numbers. `raw=True` (`--raw`) writes
  cells as they are, for programs that read the CSV; JSON Lines is never changed.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sqlalchemy.engine import Engine

from smartlabel import acquisition, modelstore
from smartlabel.db import make_engine
from smartlabel.errors import SmartlabelError
from smartlabel.store import items as store_items
from smartlabel.store import predictions, reports, runs
from smartlabel.text import model_input

log = logging.getLogger("smartlabel.export")

EXPORT_BATCH = 2000
# an auto-label run's priorities: least sure first, for a human review
AUTOLABEL_ACQUISITION = "certainty"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EXPORT_COLUMNS = ["id", "external_id", "title", "selftext", "clean_selftext", "human_labels", "n_labels",
                  "agreed_label", "agreement", "suspect", "final_label", "label_source", "confidence",
                  "model_run", "extra"]


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


def autolabel(settings=None, *, engine: Engine | str | None = None, models_dir=None,
              model_file: str | os.PathLike | None = None, progress: bool = True) -> AutolabelResult:
    from tqdm import tqdm

    if settings is None:
        from smartlabel.settings import load_settings

        settings = load_settings()
    engine = make_engine(engine or settings.database_url)
    path = Path(model_file) if model_file else modelstore.latest(models_dir or settings.models_dir)
    model = modelstore.load(path)
    meta = getattr(model, "smartlabel_meta_", {}) or {}  # files written before the metadata have none
    t0 = time.monotonic()
    total = reports.unagreed_count(engine)
    run_id = runs.start(
        engine, kind=runs.AUTOLABEL, model_kind=meta.get("model_kind"), acquisition=AUTOLABEL_ACQUISITION,
        model_path=str(path), n_labels=meta.get("n_labels"), n_classes=len(model.classes_),
        cv_accuracy=meta.get("cv_accuracy"),
        message=f"auto-label with {path.name}" + (f" (trained in run {meta['run_id']})" if meta.get("run_id") else ""),
    )
    n = 0
    try:
        with tqdm(total=total, desc="auto-labelling", unit="post", disable=not progress) as bar:
            for rows in reports.unagreed_pages(engine, int(settings.score_batch_size)):
                ids = [r[0] for r in rows]
                proba = model.predict_proba([model_input(r[1], r[2]) for r in rows])
                l1, p1, l2, p2 = acquisition.top_two(proba, model.classes_)
                pri = acquisition.priorities(AUTOLABEL_ACQUISITION, proba)
                predictions.write(engine, run_id, ids, pri.tolist(), predicted_labels=l1.tolist(),
                                  confidences=p1.tolist(), second_labels=l2.tolist(),
                                  second_confidences=p2.tolist())
                n += len(ids)
                bar.update(len(ids))
    except BaseException as exc:
        runs.finish(engine, run_id, "failed", f"auto-label failed: {type(exc).__name__}: {exc}")
        raise
    seconds = time.monotonic() - t0
    runs.finish(engine, run_id, "ok", n_scored=n, seconds_score=round(seconds, 3))
    return AutolabelResult(run_id, n, path, seconds)


# --- export ----------------------------------------------------------------------------------


def prediction_run(engine: Engine) -> tuple[int | None, str]:
    """The run export takes model labels from, and why."""
    auto = runs.latest_autolabel_with_predictions(engine)
    if auto is not None:
        return int(auto), f"auto-label run {auto}"
    cur = runs.current_id(engine)
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
    escaped: int = 0  # CSV cells written with a leading ' (see safe_cell)

    def summary(self) -> str:
        text = (f"wrote {self.rows} post(s) to {self.path}: {self.human} human-labelled, {self.model} "
                f"model-labelled, {self.none} without a label; model labels from {self.source}")
        if self.escaped:
            text += (f"; {self.escaped} cell(s) starting with = + - @ tab or CR were written with a leading ' "
                     "so a spreadsheet shows them as text (--raw writes them as they are)")
        return text


def safe_cell(value):
    """A CSV cell a spreadsheet will not run as a formula: text starting with = + - @ tab or CR
    gets a leading `'`; anything else (numbers included) is returned as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_row(row: dict, raw: bool) -> tuple[dict, int]:
    """The row as CSV cells (votes and extra flattened), and how many cells were escaped."""
    flat = dict(row)
    flat["human_labels"] = "; ".join(f"{v['worker_id']}: {v['label']}" for v in row["human_labels"])
    flat["extra"] = json.dumps(row["extra"], ensure_ascii=False) if row["extra"] else ""
    cells = {k: ("" if v is None else v) for k, v in flat.items()}
    if raw:
        return cells, 0
    safe = {k: safe_cell(v) for k, v in cells.items()}
    return safe, sum(safe[k] is not cells[k] for k in cells)


def _export_rows(engine: Engine, run_id: int | None) -> Iterator[dict]:
    from smartlabel.quality import item_quality

    for rows, votes in reports.export_pages(engine, run_id, EXPORT_BATCH):
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


def export(out: str | os.PathLike, settings=None, *, engine: Engine | str | None = None,
           fmt: str | None = None, progress: bool = True, raw: bool = False) -> ExportResult:
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
    total = store_items.count(engine)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    counts = {"human": 0, "model": 0, "none": 0}
    n = escaped = 0
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
                    cells, k = _csv_row(row, raw)
                    writer.writerow(cells)
                    escaped += k
                else:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                if n % 500 == 0:
                    bar.update(500)
            bar.update(n % 500)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return ExportResult(out, n, counts["human"], counts["model"], counts["none"], source, escaped)
