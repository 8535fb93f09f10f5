"""The admin dashboard (`admin-dashboard.ipynb`, served by `smartlabel dashboard`).

Numbers come from plain functions of the database (tested against it); the page
draws them with matplotlib (PNG images in ipywidgets) and escaped HTML tables:

- learning curve: CV accuracy, macro-F1 and audit accuracy (on the random
  exploration sample, unbiased) against the number of labels, over `model_runs`
  with status 'ok', with a fitted curve acc(n) = a - b * n^-c when there are
  enough runs;
- labels per class (every label given, and agreed labels), the current run's
  predicted class distribution on the unlabelled pool;
- labellers: labels, speed (view `labeller_stats`), agreement with others, and labels
  retracted (an undo retracts, it never deletes: who retracted what is listed too);
- agreement (table `agreement`, newest run; see smartlabel.quality);
- a stopping suggestion from the rule below, and how much accuracy more labels
  should add.

Stopping rule (both must hold):
1. stable predictions: fewer than STABLE_SHARE (1%) of the unlabelled posts
   changed predicted label between the current run and the run WINDOW (3) runs
   before it (the "stabilising predictions" criterion of Bloodgood and
   Vijay-Shanker, 2009, measured as a share of changed labels);
2. flat curve: the fitted learning curve predicts less than FLAT_GAIN (1 accuracy
   point) from the next max(100, 10% of the current) labels; with too few runs to
   fit, CV accuracy gained over the last WINDOW runs is below FLAT_GAIN.
"""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass, field
from typing import Sequence

from sqlalchemy.engine import Engine

from smartlabel import heartbeat
from smartlabel.db import make_engine
from smartlabel.errors import describe_error
from smartlabel.store import labels as store_labels
from smartlabel.store import predictions, reports
from smartlabel.store import quality as store_quality
from smartlabel.store import runs as store_runs

WINDOW = 3
STABLE_SHARE = 0.01
FLAT_GAIN = 0.01
MIN_FIT_RUNS = 4
EXTRA_LABELS = (50, 100, 250, 500, 1000, 2500)
RETRACTED_SHOWN = 20  # newest retractions listed

# --- numbers --------------------------------------------------------------------------


def learning_curve(engine: Engine) -> list[dict]:
    """Training runs with status 'ok' that have a label count, fewest labels first."""
    return store_runs.learning_curve(engine)


def labels_per_class(engine: Engine, labels: Sequence[str] = ()) -> dict[str, dict[str, int]]:
    """Per label: every label given (`labels`) and posts whose agreed label it is (`agreed`)."""
    return store_labels.per_class(engine, labels)


def labellers(engine: Engine) -> list[dict]:
    """Per labeller (imported labels left out): labels, items, speed, and agreement with others."""
    from smartlabel.quality import latest_agreement

    stats = store_labels.labeller_stats(engine)
    agree = {r["worker_a"]: r for r in latest_agreement(engine)
             if r["scope"] == "worker" and r["metric"] == "agreement_with_others"}
    for s in stats:
        a = agree.get(s["worker_id"])
        s["labels"] = int(s["labels"])
        s["items"] = int(s["items"])
        for key in ("labels_per_hour", "avg_seconds_per_label"):
            s[key] = None if s[key] is None else float(s[key])
        s["agreement_with_others"] = None if a is None else a["value"]
        s["shared_items"] = 0 if a is None else a["n_items"]
    return stats


def prediction_churn(engine: Engine, window: int = WINDOW) -> dict | None:
    """Share of unlabelled posts whose predicted label differs between the current run and the
    stored run `window` runs before it (or the oldest stored one, then `window_used` says so).
    None without a current run or an earlier stored run."""
    current = store_runs.current_id(engine)
    if current is None:
        return None
    earlier = store_runs.earlier_with_predictions(engine, current)
    if not earlier:
        return None
    old = earlier[min(window, len(earlier)) - 1]
    n, changed = predictions.changed(engine, old, current)
    return {"old_run": old, "new_run": current, "window_used": min(window, len(earlier)), "n": n,
            "changed": changed, "share": changed / n if n else None}


def curve(n, a, b, c):
    import numpy as np

    return a - b * np.power(np.asarray(n, dtype=float), -c)


@dataclass
class CurveFit:
    a: float  # accuracy the curve levels off at
    b: float
    c: float
    rmse: float
    n_runs: int

    def predict(self, n: float) -> float:
        return float(curve(n, self.a, self.b, self.c))

    def labels_for_gain(self, n_now: float, gain: float) -> float | None:
        """Extra labels the curve needs to add `gain` accuracy; None if it never does."""
        target = self.predict(n_now) + gain
        if target >= self.a or self.b <= 0:
            return None
        return max(0.0, ((self.a - target) / self.b) ** (-1.0 / self.c) - n_now)


def fit_learning_curve(points: Sequence[tuple[float, float]]) -> tuple[CurveFit | None, str]:
    """Fit acc(n) = a - b * n^-c (a in [0, 1], b >= 0, c in [0.01, 3]) by least squares.

    Returns (fit, "") or (None, why not)."""
    import numpy as np

    pts = [(float(n), float(acc)) for n, acc in points
           if n is not None and acc is not None and n > 0 and math.isfinite(float(acc))]
    distinct = len({n for n, _ in pts})
    if distinct < MIN_FIT_RUNS:
        return None, (f"too few runs to fit a learning curve: {distinct} with different label counts, "
                      f"{MIN_FIT_RUNS} needed")
    from scipy.optimize import curve_fit

    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    a0 = min(1.0, float(y.max()) + 0.05)
    try:
        (a, b, c), _ = curve_fit(curve, x, y, p0=[a0, max(a0 - float(y.min()), 0.05) * x.min() ** 0.5, 0.5],
                                 bounds=([0.0, 0.0, 0.01], [1.0, np.inf, 3.0]), maxfev=20000)
    except (RuntimeError, ValueError) as exc:
        return None, f"the learning curve could not be fitted ({exc})"
    rmse = float(np.sqrt(np.mean((curve(x, a, b, c) - y) ** 2)))
    return CurveFit(float(a), float(b), float(c), rmse, len(pts)), ""


def gain_estimates(fit: CurveFit, n_now: int, pool_left: int) -> list[dict]:
    """Predicted accuracy after more labels (only as many as the pool still has)."""
    now = fit.predict(n_now)
    extras = [e for e in EXTRA_LABELS if e <= pool_left]
    if pool_left and pool_left not in extras and (not extras or pool_left > extras[-1]):
        extras.append(pool_left)
    return [{"extra_labels": e, "accuracy": fit.predict(n_now + e), "gain": fit.predict(n_now + e) - now}
            for e in extras]


@dataclass
class Suggestion:
    stop: bool
    reason: str
    churn: dict | None = None
    gain: float | None = None
    gain_basis: str = ""
    fit: CurveFit | None = None
    fit_note: str = ""
    estimates: list = field(default_factory=list)


def stopping_suggestion(engine: Engine, runs: list[dict] | None = None, pool: dict | None = None) -> Suggestion:
    """Whether labelling could stop, by the rule in this module's docstring, with its reason."""
    runs = learning_curve(engine) if runs is None else runs
    pool = reports.pool(engine) if pool is None else pool
    curve_runs = [r for r in runs if r["cv_accuracy"] is not None]
    fit, note = fit_learning_curve([(r["n_labels"], r["cv_accuracy"]) for r in curve_runs])
    churn = prediction_churn(engine)
    s = Suggestion(stop=False, reason="", churn=churn, fit=fit, fit_note=note)
    n_now = curve_runs[-1]["n_labels"] if curve_runs else 0
    if fit is not None:
        step = max(100, int(0.1 * n_now))
        s.gain = fit.predict(n_now + step) - fit.predict(n_now)
        s.gain_basis = f"the fitted curve predicts {_pts(s.gain)} from {step} more labels"
        s.estimates = gain_estimates(fit, n_now, pool["unlabelled"])
    elif len(curve_runs) > WINDOW:
        latest = sorted(curve_runs, key=lambda r: r["run_id"])
        s.gain = latest[-1]["cv_accuracy"] - latest[-1 - WINDOW]["cv_accuracy"]
        s.gain_basis = f"CV accuracy changed by {_pts(s.gain)} over the last {WINDOW} runs"
    if pool["items"] and pool["unlabelled"] == 0:
        s.stop, s.reason = True, "Every post has a label: there is nothing left to label."
        return s
    if len(curve_runs) < 2:
        s.reason = (f"Keep labelling: {len(curve_runs)} successful model run(s) so far; the rule compares "
                    f"predictions over {WINDOW} runs and the learning curve's gain.")
        return s
    stable = churn is not None and churn["share"] is not None and churn["share"] < STABLE_SHARE
    flat = s.gain is not None and s.gain < FLAT_GAIN
    if churn is None or churn["share"] is None:
        churn_text = "no earlier run's predictions to compare with"
    else:
        churn_text = (f"{churn['share'] * 100:.1f}% of {churn['n']} unlabelled posts changed predicted label "
                      f"between run {churn['old_run']} and run {churn['new_run']}")
    gain_text = s.gain_basis or note
    if stable and flat:
        s.stop = True
        s.reason = (f"You could stop: predictions are stable ({churn_text}; threshold "
                    f"{STABLE_SHARE * 100:.0f}%) and the curve is flat ({gain_text}; threshold "
                    f"{_pts(FLAT_GAIN)}).")
    else:
        why = []
        if not stable:
            why.append(f"predictions still change ({churn_text}; stop below {STABLE_SHARE * 100:.0f}%)")
        if not flat:
            why.append(f"accuracy may still grow ({gain_text}; stop below {_pts(FLAT_GAIN)})"
                       if s.gain is not None else f"the gain is unknown ({gain_text})")
        s.reason = "Keep labelling: " + "; ".join(why) + "."
    return s


def _pts(x: float) -> str:
    return f"{x * 100:+.1f} accuracy points" if abs(x) >= 0.0005 else "+0.0 accuracy points"


def check_schema(engine: Engine) -> None:
    """ConfigError unless the database is migrated to this code's schema."""
    from smartlabel.errors import ConfigError
    from smartlabel.migrate import current_revision, head_revision

    have, need = current_revision(engine), head_revision()
    if have != need:
        raise ConfigError(f"the database schema is at revision {have or 'none'}, this dashboard needs {need}: "
                          "run `smartlabel db upgrade` (the orchestrator also does it when it starts)")


def dashboard_data(engine: Engine | str, labels: Sequence[str] | None = None) -> dict:
    """Everything the page shows, as plain data."""
    from smartlabel.quality import latest_agreement

    engine = make_engine(engine)
    if labels is None:
        from smartlabel.settings import load_settings

        labels = load_settings().labels
    curve_runs = learning_curve(engine)
    pool = reports.pool(engine)
    return {
        "pool": pool,
        "runs": curve_runs,
        "labels_per_class": labels_per_class(engine, labels),
        "predicted": predictions.distribution(engine),
        "labellers": labellers(engine),
        "agreement": latest_agreement(engine),
        "suspects": store_quality.suspects_summary(engine),
        "retracted": store_labels.retracted(engine, RETRACTED_SHOWN),
        "suggestion": stopping_suggestion(engine, curve_runs, pool),
        "heartbeat": heartbeat.latest(engine),
    }


# --- drawing --------------------------------------------------------------------------


def _plain(s) -> str:
    """Text for matplotlib: `$` would start mathtext."""
    return str(s).replace("$", r"\$")


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def plot_learning_curve(runs: list[dict], fit: CurveFit | None = None) -> bytes | None:
    if not runs:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    x = [r["n_labels"] for r in runs]
    for key, name, style in (("cv_accuracy", "CV accuracy", "o-"), ("cv_macro_f1", "CV macro-F1", "s--"),
                             ("audit_accuracy", "audit accuracy (random sample)", "^:")):
        pts = [(n, r[key]) for n, r in zip(x, runs) if r[key] is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=name, markersize=4)
    if fit is not None:
        import numpy as np

        xs = np.linspace(min(x), max(x) * 1.5, 100)
        ax.plot(xs, curve(xs, fit.a, fit.b, fit.c), "-", color="grey", alpha=0.6,
                label=f"fit: {fit.a:.3f} - {fit.b:.2f}·n^-{fit.c:.2f}")
    ax.set_xlabel("labels")
    ax.set_ylabel("score")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def plot_bars(counts: dict[str, float], title: str, second: dict[str, float] | None = None,
              names: tuple[str, str] = ("", "")) -> bytes | None:
    if not counts or not any(counts.values()):
        return None
    from matplotlib.figure import Figure

    labels = list(counts)
    fig = Figure(figsize=(6.4, 0.45 * len(labels) + 1.2))
    ax = fig.add_subplot()
    ys = list(range(len(labels)))
    if second is None:
        ax.barh(ys, [counts[k] for k in labels], color="#4c72b0")
        for y, k in zip(ys, labels):
            ax.text(counts[k], y, f" {counts[k]:g}", va="center", fontsize=8)
    else:
        h = 0.4
        ax.barh([y - h / 2 for y in ys], [counts[k] for k in labels], height=h, label=names[0], color="#4c72b0")
        ax.barh([y + h / 2 for y in ys], [second.get(k, 0) for k in labels], height=h, label=names[1],
                color="#dd8452")
        ax.legend(fontsize=8)
    ax.set_yticks(ys)
    ax.set_yticklabels([_plain(k) for k in labels], fontsize=8)
    ax.invert_yaxis()
    ax.set_title(_plain(title), fontsize=10)
    return _png(fig)


def _num(x, fmt="{:.3f}") -> str:
    return "–" if x is None else fmt.format(x)


def _table(headers: Sequence[str], rows: Sequence[Sequence], css: str) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


STYLE = """<style>
.sl-dash table { border-collapse: collapse; font-size: 13px; margin: 4px 0 12px 0; }
.sl-dash th, .sl-dash td { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; }
.sl-dash h3 { margin: 14px 0 4px 0; font-size: 15px; }
.sl-stop { padding: 8px 12px; border-radius: 4px; margin: 6px 0; }
.sl-stop-yes { background: #e6f4ea; border: 1px solid #34a853; }
.sl-stop-no { background: #fef7e0; border: 1px solid #f9ab00; }
</style>"""


def render_html(data: dict) -> dict[str, str]:
    """The page's text parts (all values escaped), by section name."""
    pool, sug = data["pool"], data["suggestion"]
    parts = {}
    parts["summary"] = (
        f"<p class='sl-summary'>{pool['items']} posts, {pool['labelled']} labelled "
        f"({pool['labels']} labels), {pool['unlabelled']} unlabelled; "
        f"{len(data['runs'])} successful model runs; current run: "
        f"{html.escape(str(pool['current_run'] if pool['current_run'] is not None else 'none'))}.</p>"
        f"<p class='sl-heartbeat'>Orchestrator: {html.escape(heartbeat.describe(data.get('heartbeat')))}.</p>")
    css = "sl-stop-yes" if sug.stop else "sl-stop-no"
    parts["stop"] = (f"<div class='sl-stop {css}'><b>{'Stopping suggestion' if sug.stop else 'Not yet'}:</b> "
                     f"<span class='sl-stop-reason'>{html.escape(sug.reason)}</span></div>")
    if sug.fit is not None:
        rows = [(e["extra_labels"], f"{e['accuracy']:.3f}", f"{e['gain'] * 100:+.1f}") for e in sug.estimates]
        one = sug.fit.labels_for_gain(data["runs"][-1]["n_labels"] if data["runs"] else 0, 0.01)
        note = (f"Fitted on {sug.fit.n_runs} runs: acc(n) = {sug.fit.a:.3f} - {sug.fit.b:.3f}·n^-{sug.fit.c:.3f} "
                f"(RMSE {sug.fit.rmse:.3f}); it levels off at {sug.fit.a:.3f}. "
                + ("One more accuracy point needs about "
                   f"{one:.0f} more labels" if one is not None else "It never gains one more accuracy point")
                + f" ({pool['unlabelled']} posts are still unlabelled).")
        parts["estimate"] = (f"<p class='sl-fit'>{html.escape(note)}</p>"
                             + _table(["more labels", "predicted CV accuracy", "gain (points)"], rows, "sl-estimate"))
    else:
        parts["estimate"] = f"<p class='sl-fit'>{html.escape(sug.fit_note)}</p>"
    parts["labellers"] = _table(
        ["labeller", "labels", "posts", "labels/hour", "s/label", "agreement with others", "shared posts",
         "retracted"],
        [(r["worker_id"], r["labels"], r["items"], _num(r["labels_per_hour"], "{:.1f}"),
          _num(r["avg_seconds_per_label"], "{:.1f}"), _num(r["agreement_with_others"], "{:.2f}"),
          r["shared_items"], int(r.get("retracted") or 0)) for r in data["labellers"]],
        "sl-labellers") if data["labellers"] else "<p>No labels yet.</p>"
    parts["retracted"] = _retracted_html(data.get("retracted") or {"count": 0, "newest": []})
    sus = data.get("suspects") or {"run_id": None}
    if sus["run_id"] is None:
        parts["suspects"] = "<p>No quality pass yet: the orchestrator runs one after each model run.</p>"
    else:
        parts["suspects"] = (
            f"<p class='sl-suspect-counts'>Run {html.escape(str(sus['run_id']))}: {sus['model']} labels the model "
            f"confidently contradicts, {sus['tie']} ties between labellers; {sus['reviewed']} of them reviewed. "
            "REVIEW_SHARE of hand-outs send them to another labeller.</p>"
            + (_table(["post", "title", "kind", "label", "model says", "score"],
                      [(r["item_id"], (r["title"] or "")[:80], r["kind"], r["given_label"] or "–",
                        r["suggested_label"] or "–", f"{r['score']:.2f}") for r in sus["top"]], "sl-suspects")
               if sus["top"] else ""))
    agree = data["agreement"]
    overall = {r["metric"]: r for r in agree if r["scope"] == "overall"}
    if overall and overall.get("alpha", {}).get("n_items"):
        rows = [("overall", "Krippendorff's alpha", _num(overall["alpha"]["value"]), overall["alpha"]["n_items"]),
                ("overall", "observed agreement", _num(overall["percent_agreement"]["value"]),
                 overall["percent_agreement"]["n_items"])]
        names = {"alpha": "alpha (label vs rest)", "specific_agreement": "specific agreement",
                 "cohen_kappa": "Cohen's kappa", "percent_agreement": "observed agreement"}
        rows += [(f"label {r['label']}", names[r["metric"]], _num(r["value"]), r["n_items"])
                 for r in agree if r["scope"] == "label"]
        rows += [(f"{r['worker_a']} & {r['worker_b']}", names[r["metric"]], _num(r["value"]), r["n_items"])
                 for r in agree if r["scope"] == "pair"]
        parts["agreement"] = _table(["who", "measure", "value", "posts"], rows, "sl-agreement")
    else:
        parts["agreement"] = ("<p>No post has two labels yet: agreement appears once posts are labelled twice "
                              "(OVERLAP above 1, or AUDIT_SHARE audits).</p>")
    return parts


def _retracted_html(retracted: dict) -> str:
    """Who retracted what: the count, and the newest retractions (escaped)."""
    if not retracted["count"]:
        return "<p>No label has been retracted (an undo on the page retracts a label; it stays in `labels`).</p>"
    shown = len(retracted["newest"])
    note = (f"<p class='sl-retracted-count'>{retracted['count']} label(s) retracted by an undo; they stay in "
            f"<code>labels</code> (columns <code>retracted_at</code>, <code>retracted_by</code>) and count nowhere. "
            f"The newest {shown}:</p>")
    return note + _table(
        ["post", "title", "label", "given by", "given UTC", "retracted UTC", "retracted by"],
        [(r["item_id"], (r["title"] or "")[:80], r["label"], r["worker_id"], str(r["created_at"])[:16],
          str(r["retracted_at"])[:16], r["retracted_by"]) for r in retracted["newest"]], "sl-retracted")


def build_dashboard(database_url: str | Engine | None = None, labels: Sequence[str] | None = None):
    """The dashboard widget: sections with plots and tables, and a Refresh button."""
    import ipywidgets as w

    root = w.VBox(layout=w.Layout(max_width="960px"))
    root.add_class("sl-dash")
    button = w.Button(description="Refresh", icon="refresh")
    button.add_class("sl-refresh")
    status = w.HTML()

    def section(title: str, css: str, *children):
        box = w.VBox([w.HTML(f"<h3>{html.escape(title)}</h3>"), *children])
        box.add_class(css)
        return box

    def image(png: bytes | None, empty: str):
        if png is None:
            return w.HTML(f"<p class='sl-empty'>{html.escape(empty)}</p>")
        width = int.from_bytes(png[16:20], "big")  # PNG header: shown at its own size, never blurred up
        img = w.Image(value=png, format="png", layout=w.Layout(width=f"{width}px", max_width="100%"))
        img.add_class("sl-plot")
        return img

    engines: list[Engine] = []

    def refresh(_=None):
        button.disabled = True
        status.value = "<i>loading…</i>"
        try:
            if not engines:
                engines.append(make_engine(database_url))
            check_schema(engines[0])
            data = dashboard_data(engines[0], labels)
        except Exception as exc:  # the page says what is wrong and offers Refresh, it does not die
            message = describe_error(exc, engines[0] if engines else None)
            status.value = f"<span class='sl-error'>{html.escape(message)}</span>"
            button.disabled = False
            return
        parts = render_html(data)
        counts = data["labels_per_class"]
        children = [
            w.HTML(STYLE + "<h2>smartlabel: admin dashboard</h2>" + parts["summary"]),
            w.HTML(parts["stop"]),
            section("Learning curve", "sl-learning-curve",
                    image(plot_learning_curve(data["runs"], data["suggestion"].fit),
                          "No successful model run yet: the curve appears after the first retraining."),
                    w.HTML(parts["estimate"])),
            section("Labels per class", "sl-labels-per-class",
                    image(plot_bars({k: v["labels"] for k, v in counts.items()}, "labels per class",
                                    {k: v["agreed"] for k, v in counts.items()}, ("labels given", "agreed posts")),
                          "No labels yet.")),
            section("Predicted classes on the unlabelled pool", "sl-predicted",
                    image(plot_bars(data["predicted"], f"current run {data['pool']['current_run']}"),
                          "No current run with predictions yet.")),
            section("Labellers", "sl-labellers-box", w.HTML(parts["labellers"])),
            section("Agreement", "sl-agreement-box", w.HTML(parts["agreement"])),
            section("Suspect labels", "sl-suspects-box", w.HTML(parts["suspects"])),
            section("Retracted labels", "sl-retracted-box", w.HTML(parts["retracted"])),
            w.HBox([button, status]),
        ]
        root.children = children
        status.value = ""
        button.disabled = False

    button.on_click(refresh)
    root.children = [w.HBox([button, status])]
    refresh()
    return root


def dashboard_page(database_url: str | None = None):
    """What admin-dashboard.ipynb runs: build the widget and display it."""
    from IPython.display import display

    display(build_dashboard(database_url))
