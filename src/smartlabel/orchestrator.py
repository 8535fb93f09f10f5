"""The orchestrator: the active-learning loop (the article's Step 3).

Every RETRAIN_INTERVAL_SECONDS it looks at the database. When at least
RETRAIN_EVERY_N_LABELS labels arrived since the last run (or `force`), it runs:

1. a `model_runs` row is inserted with status `running`;
2. training data: every post with an agreed human label (view `agreed_labels`:
   strict majority, ties left out) among the configured LABELS; model input
   `title + " " + clean_selftext`; fewer than two classes -> status `skipped`;
3. features come from the pool's feature cache (`models.FeatureCache`): only
   posts imported since the last run are vectorised;
4. evaluation: `cross_validate(model, X, y, scoring="accuracy", cv=...)` (what
   `cross_val_score` computes, keeping the fold models) with stratified folds,
   cv = min(3, examples of the second-largest class) so that rare classes do not
   crash it (with fewer than 2 examples in two classes there is no CV). From the
   out-of-fold predictions: macro-F1, per-class precision/recall/F1, and the
   accuracy on the audit sample (posts handed out at random, `handout_reason =
   'random'`) once it holds AUDIT_MIN posts: an unbiased estimate, since neither
   the model nor the acquisition chose those posts;
5. the model is fitted on all agreed labels and scores every open post (not done)
   in batches of SCORE_BATCH_SIZE (progress in the log); priorities from ACQUISITION
   (higher = handed out first);
6. predictions go into the new run in bulk (`store.predictions.write`); the
   model file `MODELS_DIR/<timestamp> <cv score>.pkl` is written atomically
   (temporary file + os.replace); then `store.runs.set_current` switches the
   queue to it in one statement; old predictions and model files are pruned;
7. the row is marked `ok` with its scores; one log line sums the run up.

A run that fails (a model error, the database gone) is marked `failed` with its
message, logged as one line, and the loop goes on (retries back off while the
failures last). SIGTERM/SIGINT set a flag checked between steps: the run in
progress stops at the next step, is marked failed ("stopped"), no model file is
half-written, and the process exits. A second signal stops at once. A restart
marks runs left `running` as interrupted and carries on from the database.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
from sqlalchemy.engine import Engine

from smartlabel import acquisition, modelstore
from smartlabel.db import describe_db_error, make_engine, utcnow
from smartlabel.errors import SmartlabelError
from smartlabel.store import items as store_items
from smartlabel.store import labels as store_labels
from smartlabel.store import predictions, runs
from smartlabel.models import ActiveFeatures, FeatureCache, join_pipeline, make_model, split_pipeline

log = logging.getLogger("smartlabel.orchestrator")

AUDIT_MIN = 20  # random hand-outs needed before the audit accuracy is reported
KEEP_PREDICTION_RUNS = 5
MAX_BACKOFF_STEPS = 5  # failed runs retry after interval * 2**k, k <= this


class StopRequested(Exception):
    """Raised between steps once SIGTERM/SIGINT asked the loop to stop."""


@dataclass
class RunResult:
    run_id: int | None
    status: str  # ok | skipped | failed
    message: str = ""
    scores: dict = field(default_factory=dict)
    model_path: str | None = None


def evaluate(head, X, y, audit_mask, random_state: int = 0) -> dict:
    """Cross-validated scores of `head` on (X, y); see the module docstring."""
    from sklearn.base import clone
    from sklearn.metrics import classification_report, f1_score
    from sklearn.model_selection import StratifiedKFold, cross_validate

    classes, counts = np.unique(y, return_counts=True)
    second = int(np.sort(counts)[-2]) if len(counts) >= 2 else 0
    n_splits = min(3, second)
    out = {"cv_accuracy": None, "cv_macro_f1": None, "per_class": None, "audit_accuracy": None,
           "n_audit": int(audit_mask.sum()), "cv_folds": n_splits if n_splits >= 2 else 0}
    if n_splits < 2:
        out["note"] = "no cross-validation: fewer than 2 examples in two classes"
        return out
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        res = cross_validate(clone(head), X, y, cv=cv, scoring="accuracy", return_estimator=True,
                             return_indices=True, error_score="raise")
    oof = np.empty(len(y), dtype=object)
    for est, test_idx in zip(res["estimator"], res["indices"]["test"]):
        oof[test_idx] = est.predict(X[test_idx])
    from smartlabel.quality import fold_proba  # out-of-fold probabilities for the suspect-label pass

    out["oof_proba"], out["oof_classes"] = fold_proba(res["estimator"], res["indices"]["test"], X, classes), classes
    out["cv_accuracy"] = float(np.mean(res["test_score"]))
    out["cv_macro_f1"] = float(f1_score(y, oof, labels=classes, average="macro", zero_division=0))
    report = classification_report(y, oof, labels=classes, output_dict=True, zero_division=0)
    out["per_class"] = {
        str(c): {"precision": round(report[c]["precision"], 4), "recall": round(report[c]["recall"], 4),
                 "f1": round(report[c]["f1-score"], 4), "support": int(report[c]["support"])}
        for c in classes
    }
    if out["n_audit"] >= AUDIT_MIN:
        out["audit_accuracy"] = float(np.mean(oof[audit_mask] == y[audit_mask]))
    return out


class _LogStream:
    """A file-like object that turns tqdm's progress bar into log lines."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger

    def write(self, s: str) -> int:
        s = s.strip("\r\n ")
        if s:
            self.logger.info(s)
        return len(s)

    def flush(self) -> None:
        pass


# --- the loop ---------------------------------------------------------------------------


class Orchestrator:
    def __init__(self, settings=None, *, engine: Engine | str | None = None,
                 models_dir: str | os.PathLike | None = None):
        if settings is None:
            from smartlabel.settings import load_settings

            settings = load_settings()
        self.settings = settings
        self.engine = make_engine(engine or settings.database_url)
        self.models_dir = Path(models_dir or settings.models_dir)
        self.stopping = False
        self._signals = 0
        self._caches: dict[str, FeatureCache] = {}
        self._unfinished: dict[int, tuple[str, str]] = {}  # run id -> (status, message) not yet stored
        self._recovered = False
        self._fresh = True  # first check of this process: no back-off
        self._last_why: str | None = None
        self._last_error: str | None = None

    # -- signals --

    def request_stop(self) -> None:
        self.stopping = True

    def install_signal_handlers(self) -> None:
        def handler(signum, _frame):
            self._signals += 1
            self.stopping = True
            if self._signals == 1:
                log.info("%s received: stopping after the current step", signal.Signals(signum).name)
            else:
                raise KeyboardInterrupt

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handler)

    def _check_stop(self) -> None:
        if self.stopping:
            raise StopRequested()

    # -- the loop --

    def run_forever(self, *, once: bool = False, force: bool = False) -> RunResult | None:
        """Check, maybe retrain, wait; until stopped (or after one check with `once`)."""
        removed = modelstore.remove_temporary(self.models_dir)
        if removed:
            log.info("removed %d temporary file(s) a stopped run left in %s", removed, self.models_dir)
        interval = float(self.settings.retrain_interval_seconds)
        log.info("orchestrator started: model %s, acquisition %s, every %g s when %d new labels; database %s; "
                 "models in %s", self.settings.model, self.settings.acquisition, interval,
                 self.settings.retrain_every_n_labels, self.engine.url.render_as_string(hide_password=True),
                 self.models_dir)
        last = None
        while not self.stopping:
            last = self.tick(force=force)
            if once:
                break
            self._sleep(interval)
        if self.stopping:
            log.info("orchestrator stopped")
        return last

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.2, left))

    def tick(self, *, force: bool = False) -> RunResult | None:
        """One check: retrain when due. Never raises (except on a second signal)."""
        try:
            self._recover()
            due, why = self.due(force=force)
        except Exception as exc:
            msg = self._describe(exc)
            # one line when the problem starts (or changes), not one every interval
            (log.error if msg != self._last_error else log.debug)("check failed: %s", msg)
            self._last_error = msg
            return RunResult(None, "failed", msg)
        finally:
            self._fresh = False
        if self._last_error is not None:
            log.info("the database answers again")
            self._last_error = None
        if not due:
            # said once per change, not every interval
            (log.info if why != self._last_why else log.debug)("no retraining: %s", why)
            self._last_why = why
            return None
        self._last_why = None
        return self.retrain()

    def _recover(self) -> None:
        """Store outcomes we could not store while the database was away; mark orphaned runs."""
        for run_id, (status, message) in list(self._unfinished.items()):
            if self._finish(run_id, status, message, quiet=True):
                del self._unfinished[run_id]
                log.info("recorded run %d as %s now that the database answers", run_id, status)
        if not self._recovered:
            n = runs.mark_interrupted(self.engine)
            if n:
                log.info("marked %d run(s) left running by a previous orchestrator as failed", n)
            self._recovered = True

    def due(self, *, force: bool = False) -> tuple[bool, str]:
        """Is a retrain due? (decision, reason)"""
        need = int(self.settings.retrain_every_n_labels)
        with self.engine.connect() as conn:
            base = runs.last_base(conn)
            base_id, base_started = base if base is not None else (0, None)
            n_new = store_labels.count(conn, since=base_started)
            failures = runs.failures_since(conn, base_id)
        since = f"since run {base_id}" if base else "so far"
        if force:
            return True, f"forced ({n_new} new labels {since})"
        if n_new < need:
            return False, f"{n_new} new label(s) {since}, retraining at {need}"
        if failures and not self._fresh:
            k = min(len(failures), MAX_BACKOFF_STEPS)
            wait = float(self.settings.retrain_interval_seconds) * 2 ** k
            last = failures[0]
            if last is not None and utcnow() < last + timedelta(seconds=wait):
                return False, f"{len(failures)} failed run(s) in a row: next try {wait:g} s after the last"
        return True, f"{n_new} new labels {since}"

    # -- one run --

    def retrain(self) -> RunResult:
        s = self.settings
        try:
            run_id = runs.start(self.engine, model_kind=s.model, acquisition=s.acquisition)
        except Exception as exc:
            msg = self._describe(exc)
            log.error("run not started: %s", msg)
            return RunResult(None, "failed", msg)
        log.info("run %d started (%s, %s)", run_id, s.model, s.acquisition)
        try:
            result = self._train_and_score(run_id)
        except StopRequested:
            msg = "stopped by a signal before finishing; the queue keeps the previous run's priorities"
            self._finish(run_id, "failed", msg)
            log.info("run %d stopped: %s", run_id, msg)
            return RunResult(run_id, "failed", msg)
        except KeyboardInterrupt:
            self._finish(run_id, "failed", "stopped at once by a second signal")
            raise
        except Exception as exc:
            msg = self._describe(exc)
            self._finish(run_id, "failed", msg)
            log.error("run %d failed: %s", run_id, msg)
            return RunResult(run_id, "failed", msg)
        return result

    def _cache_for(self, model) -> FeatureCache | None:
        parts = split_pipeline(model)
        if parts is None:
            return None
        from smartlabel.models import vectorizer_key

        key = vectorizer_key(parts[0])
        if key not in self._caches:
            self._caches[key] = FeatureCache.for_model(model, self.models_dir)
        return self._caches[key]

    def _train_and_score(self, run_id: int) -> RunResult:
        s = self.settings
        t0 = time.monotonic()
        ids, y, audit_mask, dropped = store_labels.training_set(self.engine, s.labels)
        classes, counts = np.unique(y, return_counts=True)
        n_labels = len(y)
        if len(classes) < 2:
            have = ", ".join(f"{c} x{n}" for c, n in zip(classes, counts)) or "none"
            msg = (f"too few labels: need agreed labels of at least two classes, have {n_labels} "
                   f"labelled post(s) ({have})")
            self._finish(run_id, "skipped", msg, n_labels=n_labels, n_classes=len(classes))
            log.info("run %d skipped: %s", run_id, msg)
            return RunResult(run_id, "skipped", msg)
        self._check_stop()
        model = make_model(s.model, labels=s.labels, class_weight=s.class_weight, random_state=0)
        cache = self._cache_for(model)
        pool_ids, hashes, open_ids = store_items.pool(self.engine)
        if cache is not None:
            stats = cache.sync(pool_ids, hashes, lambda some: store_items.texts(self.engine, some))
            log.info("run %d %s", run_id, stats)
            head = ActiveFeatures(split_pipeline(model)[1])
            X = cache.rows(ids)
        else:  # a model without a separable vectoriser reads text every run
            head = model
            X = np.array(list(store_items.texts(self.engine, ids)), dtype=object)
        self._check_stop()
        scores = evaluate(head, X, y, audit_mask, random_state=0)
        self._check_stop()
        from sklearn.base import clone

        fitted = clone(head).fit(X, y)
        seconds_train = time.monotonic() - t0
        self._check_stop()

        # score every open post, in batches
        t1 = time.monotonic()
        batch = int(s.score_batch_size)
        rng = np.random.default_rng(run_id)
        pri, l1, p1, l2, p2 = [], [], [], [], []
        from tqdm import tqdm

        bar = tqdm(total=len(open_ids), desc=f"run {run_id} scoring", unit="post", file=_LogStream(log),
                   mininterval=5, ascii=True, ncols=80)
        try:
            for start in range(0, len(open_ids), batch):
                self._check_stop()
                chunk = open_ids[start:start + batch]
                feats = cache.rows(chunk) if cache is not None else list(store_items.texts(self.engine, chunk))
                proba = fitted.predict_proba(feats)
                pri.append(acquisition.priorities(s.acquisition, proba, rng=rng))
                a, b, c, d = acquisition.top_two(proba, fitted.classes_)
                l1.append(a), p1.append(b), l2.append(c), p2.append(d)
                bar.update(len(chunk))
        finally:
            bar.close()
        cat = (lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dtype=dt))
        priorities, label1, conf1 = cat(pri, float), cat(l1, object), cat(p1, float)
        label2, conf2 = cat(l2, object), cat(p2, float)
        self._check_stop()
        from smartlabel.diversity import diversify

        # near-duplicates among the top candidates are spread apart, so concurrent labellers
        # do not all get copies of the same uncertain post
        priorities, clusters = diversify(open_ids.tolist(), priorities, lambda some: store_items.texts(self.engine, some),
                                         top_k=int(s.diversity_top_k))
        predictions.write(self.engine, run_id, open_ids.tolist(), np.asarray(priorities, dtype=float).tolist(),
                          predicted_labels=label1.tolist(), confidences=conf1.tolist(),
                          second_labels=label2.tolist(), second_confidences=conf2.tolist(), clusters=clusters)
        seconds_score = time.monotonic() - t1
        self._check_stop()
        # the model file: text in, probabilities out
        full = join_pipeline(cache.vectorizer, fitted) if cache is not None else fitted
        full.smartlabel_meta_ = {"run_id": run_id, "model_kind": s.model, "classes": list(map(str, fitted.classes_)),
                                 "n_labels": n_labels, "cv_accuracy": scores["cv_accuracy"],
                                 "trained_at": utcnow().isoformat()}
        path = modelstore.save(full, self.models_dir, scores["cv_accuracy"], run_id=run_id)
        # From here on the run completes even if a signal arrives: each step is short.
        note = [f"cv {scores['cv_folds']}-fold" if scores["cv_folds"] else scores.get("note", "")]
        if dropped:
            note.append(f"{dropped} agreed label(s) not in LABELS ignored")
        if scores["audit_accuracy"] is None:
            note.append(f"audit sample {scores['n_audit']} < {AUDIT_MIN}")
        self._finish(
            run_id, "ok", "; ".join(n for n in note if n), n_labels=n_labels, n_classes=len(classes),
            cv_accuracy=scores["cv_accuracy"], cv_macro_f1=scores["cv_macro_f1"],
            audit_accuracy=scores["audit_accuracy"], n_audit=scores["n_audit"], per_class=scores["per_class"],
            model_path=str(path), n_scored=len(open_ids), seconds_train=round(seconds_train, 3),
            seconds_score=round(seconds_score, 3),
        )
        # switched on only once the run's row is complete, so the page never shows a half-told run
        runs.set_current(self.engine, run_id)
        try:  # agreement and suspect labels: a failure here never fails the run
            from smartlabel.quality import update_quality

            report = update_quality(self.engine, run_id, scores.get("oof_proba"), scores.get("oof_classes"), ids, y)
            log.info("run %d quality: %s", run_id, report.summary())
        except Exception as exc:
            log.warning("run %d: quality pass failed: %s", run_id, self._describe(exc))
        pruned = predictions.prune(self.engine, keep_runs=KEEP_PREDICTION_RUNS)
        gone = modelstore.prune(self.models_dir, int(s.keep_models))
        audit = (f"audit {modelstore.format_score(scores['audit_accuracy'])} (n={scores['n_audit']})"
                 if scores["audit_accuracy"] is not None else f"audit n/a ({scores['n_audit']} random)")
        log.info(
            "run %d ok: %s on %d labels, %d classes: cv accuracy %s, macro-F1 %s, %s; scored %d open posts; "
            "model %s; train %.1f s, score %.1f s%s", run_id, s.model, n_labels, len(classes),
            modelstore.format_score(scores["cv_accuracy"]), modelstore.format_score(scores["cv_macro_f1"]), audit, len(open_ids),
            path, seconds_train, seconds_score,
            f"; pruned {pruned} old predictions, {len(gone)} model files" if pruned or gone else "",
        )
        return RunResult(run_id, "ok", "", scores=scores, model_path=str(path))

    def _finish(self, run_id: int, status: str, message: str, *, quiet: bool = False, **values) -> bool:
        try:
            runs.finish(self.engine, run_id, status, message, **values)
            return True
        except Exception as exc:
            # the database is away: store it later (the loop retries in _recover)
            self._unfinished[run_id] = (status, message)
            if not quiet:
                log.warning("could not record run %d as %s yet: %s", run_id, status, self._describe(exc))
            return False

    def _describe(self, exc: BaseException) -> str:
        from smartlabel.errors import describe_error

        return describe_error(exc, self.engine)


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")


def main(*, once: bool = False, force: bool = False, settings=None, models_dir=None,
         database_url: str | None = None) -> int:
    """The `smartlabel orchestrate` command: exit status 1 when the (only) run failed."""
    configure_logging()
    orch = Orchestrator(settings, engine=database_url, models_dir=models_dir)
    orch.install_signal_handlers()
    try:
        result = orch.run_forever(once=once, force=force)
    except KeyboardInterrupt:
        log.info("orchestrator stopped at once")
        return 130
    finally:
        orch.engine.dispose()
    if once and result is not None and result.status == "failed":
        return 1
    return 0
