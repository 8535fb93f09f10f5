"""`smartlabel status`: counts, labels per class, the latest runs and per-class scores, as tables,
and the orchestrator's last heartbeat."""

from __future__ import annotations

import json

from sqlalchemy.engine import Engine

from smartlabel import heartbeat
from smartlabel.store import labels as store_labels
from smartlabel.store import reports, runs


def status_data(engine: Engine) -> dict:
    """What `smartlabel status` shows, as plain data."""
    return {"counts": reports.status(engine), "per_class": store_labels.per_class(engine),
            "runs": runs.latest(engine, 5), "latest_ok": runs.latest_ok(engine),
            "current_run_id": runs.current_id(engine), "heartbeat": heartbeat.latest(engine)}


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    if hasattr(v, "strftime"):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    return str(v)


def print_status(engine: Engine, labels: list[str], console=None) -> dict:
    """Print the status tables (rich); returns what they show."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # a pipe or a file: do not squeeze the tables into 80 columns
            console = Console(width=max(console.width, 120))
    data = status_data(engine)
    console.print(f"Orchestrator: {heartbeat.describe(data['heartbeat'])}", highlight=False)
    c = data["counts"]
    t = Table(title="Posts", show_header=True)
    for col in ("items", "labelled", "agreed label", "done", "leased now", "labels", "labellers", "retracted"):
        t.add_column(col, justify="right")
    t.add_row(*(str(c[k]) for k in ("items", "labelled", "agreed", "done", "leased", "labels", "labellers",
                                    "retracted")))
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
        how = r["acquisition"] if r["kind"] == runs.TRAIN else r["kind"]
        model = "/".join(x for x in (r["model_kind"], how) if x) or "-"
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
