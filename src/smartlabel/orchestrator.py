"""The orchestrator: the active-learning loop (the article's Step 3).

Every RETRAIN_INTERVAL_SECONDS it looks at the database. When at least
RETRAIN_EVERY_N_LABELS labels arrived since the last run (or `force`), `retrain`
inserts a `model_runs` row with status `running` and runs these steps:

1. `_training_data`: every post with an agreed human label (view `agreed_labels`:
   strict majority, ties left out) among the configured LABELS; model input
   `title + " " + clean_selftext`; fewer than two classes -> status `skipped`;
2. `_train`, with the `training.Learner`: features from the pool's feature cache
   (only posts imported since the last run are vectorised); cross-validated
   evaluation (accuracy and macro-F1, per-class scores, the accuracy on the audit
   sample of random hand-outs: see `smartlabel.training`); the model fitted on all
   agreed labels;
3. `_score`: every open post (not done) scored in batches of SCORE_BATCH_SIZE
   (progress in the log), priorities from ACQUISITION (higher = handed out first);
   near-duplicates among the DIVERSITY_TOP_K best are spread apart
   (`smartlabel.diversity`);
4. `_publish`: predictions go into the new run in bulk (`store.predictions.write`);
   the model file `MODELS_DIR/<timestamp> <cv score>.pkl`, text in
   (`Pipeline([("tfidf", vectoriser), ("clf", head)])`), is written atomically
   (`modelstore.save`; the vectoriser's bytes are pickled once per fit,
   `modelstore.Unchanged`); the row is marked `ok` with its scores; only then
   `store.runs.set_current` switches the queue to the run in one statement; the
   label-quality pass runs (its failure never fails the run); old predictions and
   model files are pruned; planner statistics are refreshed (`store.stats`); one log
   line sums the run up.

Cold start (`smartlabel.coldstart`): while fewer than COLD_START_LABELS posts have an
agreed label, a training run's priorities are a representative order of the open posts
(density-weighted farthest-point on the model's cached features, away from the labelled
posts) instead of ACQUISITION's, and the run records acquisition `coldstart`; the queue
hands them out as `coldstart`. Before any model can be trained (no run yet, or too few
labels, or one class), `cold_start` writes a run of kind `coldstart` with those priorities
alone: at the first check, after every skipped run, and when new posts were imported.

A run that fails (a model error, the database gone) is marked `failed` with its
message, logged as one line, and the loop goes on (retries back off while the
failures last). SIGTERM/SIGINT set a flag checked between steps (and between
scoring batches): the run in progress stops at the next check, is marked failed
("stopped"), no model file is half-written, and the process exits. Once the model
file is written the run completes. A second signal stops at once. A restart
marks runs left `running` as interrupted and carries on from the database.
`main` also runs the heartbeat (`smartlabel.heartbeat`) for `smartlabel health`.

One orchestrator per database: `run_forever` holds the orchestrator lock
(`smartlabel.store.locks`) for its whole life; a second one gets LockHeld, and
`smartlabel orchestrate` prints who holds it and exits EXIT_ALREADY_RUNNING.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from sqlalchemy.engine import Engine

from smartlabel import coldstart, modelstore
from smartlabel.db import make_engine, utcnow
from smartlabel.heartbeat import Heartbeat
from smartlabel.store import items as store_items
from smartlabel.store import labels as store_labels
from smartlabel.store import predictions, runs
from smartlabel.store.locks import LockHeld, OrchestratorLock
from smartlabel.training import AUDIT_MIN, Learner, Scored

log = logging.getLogger("smartlabel.orchestrator")

KEEP_PREDICTION_RUNS = 5
EXIT_ALREADY_RUNNING = 3  # `smartlabel orchestrate` when another orchestrator holds the database
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


@dataclass
class _Run:
    """What one run has found so far, filled in step by step."""

    id: int
    started: float  # time.monotonic() when training started
    ids: np.ndarray  # the training posts, their agreed labels, which of them are audit posts
    y: np.ndarray
    audit: np.ndarray
    dropped: int  # agreed labels not in LABELS
    classes: np.ndarray
    counts: np.ndarray
    open_ids: np.ndarray | None = None
    model: object = None  # the fitted head (reads the Learner's features)
    scores: dict = field(default_factory=dict)
    seconds_train: float = 0.0
    scored: Scored | None = None
    clusters: list | None = None
    cold: bool = False  # in the cold start: priorities from smartlabel.coldstart
    score_started: float = 0.0
    seconds_score: float = 0.0


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
        self.learner: Learner | None = None  # made at the first run; keeps the feature cache
        self._unfinished: dict[int, tuple[str, str]] = {}  # run id -> (status, message) not yet stored
        self._recovered = False
        self._fresh = True  # first check of this process: no back-off
        self._last_why: str | None = None
        self._last_error: str | None = None
        self.activity = "waiting"  # what the heartbeat says: waiting | run N
        self.lock: OrchestratorLock | None = None  # held by run_forever: one orchestrator per database
        self.lost_lock: LockHeld | None = None
        self._said_statistics = False
        self._last_cold_error: str | None = None

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
        """Check, maybe retrain, wait; until stopped (or after one check with `once`).

        Holds the database's orchestrator lock all along (`smartlabel.store.locks`): raises
        LockHeld at once when another orchestrator runs on this database."""
        modelstore.prepare_folder(self.models_dir)
        failed = self._take_lock(once=once)
        if failed is not None:
            return failed
        try:
            return self._loop(once=once, force=force)
        finally:
            self.lock.release()
            self.lock = None

    def _take_lock(self, *, once: bool) -> RunResult | None:
        """Take the orchestrator lock, waiting while the database is away (one log line).
        Returns None once held, a failed result when stopped (or `once`) before that."""
        while True:
            try:
                self.lock = OrchestratorLock(self.engine).acquire()
                if self._last_error is not None:
                    log.info("the database answers again")
                    self._last_error = None
                return None
            except LockHeld:
                raise
            except Exception as exc:
                msg = self._describe(exc)
                (log.error if msg != self._last_error else log.debug)("check failed: %s", msg)
                self._last_error = msg
                if once:
                    return RunResult(None, "failed", msg)
            self._sleep(float(self.settings.retrain_interval_seconds))
            if self.stopping:
                return RunResult(None, "failed", "stopped before the database answered")

    def _loop(self, *, once: bool, force: bool) -> RunResult | None:
        removed = modelstore.remove_temporary(self.models_dir)
        if removed:
            log.info("removed %d temporary file(s) a stopped run left in %s", removed, self.models_dir)
        interval = float(self.settings.retrain_interval_seconds)
        log.info("orchestrator started: model %s, acquisition %s, every %g s when %d new labels; database %s; "
                 "models in %s; CPU priority nice %d (ORCHESTRATOR_NICE %d)", self.settings.model,
                 self.settings.acquisition, interval, self.settings.retrain_every_n_labels,
                 self.engine.url.render_as_string(hide_password=True), self.models_dir,
                 os.getpriority(os.PRIO_PROCESS, 0), self.settings.orchestrator_nice)
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
            if self.lock is not None:
                self.lock.verify()
            self._recover()
            due, why = self.due(force=force)
        except LockHeld as held:
            # our lock's connection was lost and another orchestrator took the database meanwhile
            log.error("%s", already_running(held))
            self.lost_lock, self.stopping = held, True
            return RunResult(None, "failed", already_running(held))
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
            return self._cold_start_if_needed()
        self._last_why = None
        return self.retrain()

    def _cold_start_if_needed(self) -> RunResult | None:
        """A cold-start run when no model orders the queue and the labels are few: no current
        run yet, or the current one is a cold-start run and posts were imported since."""
        if int(self.settings.cold_start_labels) <= 0:
            return None
        try:
            current = runs.current(self.engine)
            if current is not None and (current["kind"] != runs.COLDSTART or not runs.unscored_open(self.engine)):
                return None
            if current is None and store_items.count(self.engine) == 0:
                return None
            if not coldstart.applies(store_labels.count(self.engine), int(self.settings.cold_start_labels)):
                return None
        except Exception as exc:
            log.debug("cold start check failed: %s", self._describe(exc))
            return None
        return self.cold_start()

    def cold_start(self, labelled_ids: np.ndarray | None = None) -> RunResult:
        """Write a run of kind `coldstart`: a representative order of the open posts, no model."""
        s = self.settings
        try:
            run_id = runs.start(self.engine, kind=runs.COLDSTART, model_kind=s.model,
                                acquisition=coldstart.ACQUISITION)
        except Exception as exc:
            msg = self._describe(exc)
            log.error("cold-start run not started: %s", msg)
            return RunResult(None, "failed", msg)
        return self._guarded(run_id, lambda: self._cold_start_steps(run_id, labelled_ids),
                             stopped="stopped by a signal before finishing", failed=self._cold_start_failed)

    def _cold_start_failed(self, run_id: int, msg: str) -> None:
        # said once while the same failure lasts (it is retried at every check)
        (log.error if msg != self._last_cold_error else log.debug)("cold-start run %d failed: %s", run_id, msg)
        self._last_cold_error = msg

    def _guarded(self, run_id: int, steps: Callable[[], RunResult], *, stopped: str,
                 failed: Callable[[int, str], None]) -> RunResult:
        """Run a started run's `steps`; a stop signal or an error marks the run failed with
        a message (`stopped`, or the error described, which `failed` logs); a second
        signal marks it and stops at once."""
        self.activity = f"run {run_id}"
        try:
            return steps()
        except StopRequested:
            self._finish(run_id, "failed", stopped)
            log.info("run %d stopped: %s", run_id, stopped)
            return RunResult(run_id, "failed", stopped)
        except KeyboardInterrupt:
            self._finish(run_id, "failed", "stopped at once by a second signal")
            raise
        except Exception as exc:
            msg = self._describe(exc)
            self._finish(run_id, "failed", msg)
            failed(run_id, msg)
            return RunResult(run_id, "failed", msg)
        finally:
            self.activity = "waiting"

    def _cold_start_steps(self, run_id: int, labelled_ids: np.ndarray | None) -> RunResult:
        started = time.monotonic()
        if labelled_ids is None:
            labelled_ids = store_labels.training_set(self.engine, self.settings.labels)[0]
        learner = self._learner_for_run()
        pool_ids, hashes, open_ids = store_items.pool(self.engine)
        stats = learner.sync(pool_ids, hashes, self._texts)
        if stats is not None:
            log.info("run %d %s", run_id, stats)
        self._check_stop()
        prio = coldstart.order_for(learner, open_ids, labelled_ids, rng=np.random.default_rng(run_id))
        self._check_stop()
        predictions.write(self.engine, run_id, open_ids, prio)
        seconds = time.monotonic() - started
        msg = (f"cold start: {len(labelled_ids)} labelled post(s) < COLD_START_LABELS "
               f"{self.settings.cold_start_labels}; representative order, no model")
        self._finish(run_id, "ok", msg, n_labels=len(labelled_ids), n_scored=len(open_ids),
                     seconds_score=round(seconds, 3))
        runs.set_current(self.engine, run_id)
        predictions.prune(self.engine, keep_runs=KEEP_PREDICTION_RUNS)
        log.info("run %d ok: %s; ordered %d open posts in %.1f s", run_id, msg, len(open_ids), seconds)
        return RunResult(run_id, "ok", msg)

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
        return self._guarded(
            run_id, lambda: self._run_steps(run_id),
            stopped="stopped by a signal before finishing; the queue keeps the previous run's priorities",
            failed=lambda run, msg: log.error("run %d failed: %s", run, msg))

    def _run_steps(self, run_id: int) -> RunResult:
        """The steps of one run (module docstring); a stop signal between them ends it."""
        run = self._training_data(run_id)
        if len(run.classes) < 2:
            return self._skip(run)
        self._check_stop()
        self._train(run)
        self._check_stop()
        self._score(run)
        self._check_stop()
        return self._publish(run)

    def _training_data(self, run_id: int) -> _Run:
        started = time.monotonic()
        ids, y, audit, dropped = store_labels.training_set(self.engine, self.settings.labels)
        classes, counts = np.unique(y, return_counts=True)
        return _Run(run_id, started, ids, y, audit, dropped, classes, counts)

    def _skip(self, run: _Run) -> RunResult:
        have = ", ".join(f"{c} x{n}" for c, n in zip(run.classes, run.counts)) or "none"
        msg = (f"too few labels: need agreed labels of at least two classes, have {len(run.y)} "
               f"labelled post(s) ({have})")
        self._finish(run.id, "skipped", msg, n_labels=len(run.y), n_classes=len(run.classes))
        log.info("run %d skipped: %s", run.id, msg)
        self._statistics(run)
        if coldstart.applies(len(run.y), int(self.settings.cold_start_labels)):
            self._check_stop()
            self.cold_start(run.ids)  # the queue gets a fresh representative order meanwhile
        return RunResult(run.id, "skipped", msg)

    def _texts(self, ids) -> Iterator[str]:
        return store_items.texts(self.engine, ids)

    def _learner_for_run(self) -> Learner:
        if self.learner is None:
            s = self.settings
            self.learner = Learner(s.model, labels=s.labels, class_weight=s.class_weight,
                                   models_dir=self.models_dir, batch_size=int(s.score_batch_size),
                                   encoder_threads=int(s.encoder_threads))
        return self.learner

    def _train(self, run: _Run) -> None:
        """Features (cached), cross-validated evaluation, the model fitted on every agreed label."""
        learner = self._learner_for_run()
        pool_ids, hashes, run.open_ids = store_items.pool(self.engine)
        stats = learner.sync(pool_ids, hashes, self._texts)
        if stats is not None:
            log.info("run %d %s", run.id, stats)
        X = learner.features(run.ids)
        self._check_stop()
        run.scores = learner.evaluate(X, run.y, run.audit, random_state=0)
        self._check_stop()
        run.model = learner.fit(X, run.y, random_state=0)
        run.seconds_train = time.monotonic() - run.started

    def _score(self, run: _Run) -> None:
        """Every open post: priority and two best labels, in batches; near-duplicates spread apart."""
        from tqdm import tqdm

        from smartlabel.diversity import diversify

        s = self.settings
        run.score_started = time.monotonic()
        bar = tqdm(total=len(run.open_ids), desc=f"run {run.id} scoring", unit="post", file=_LogStream(log),
                   mininterval=5, ascii=True, ncols=80)

        def batch_done(n: int) -> None:
            bar.update(n)
            self._check_stop()

        run.cold = coldstart.applies(len(run.y), int(s.cold_start_labels))
        try:
            run.scored = self.learner.score(run.model, run.open_ids, s.acquisition, rng=np.random.default_rng(run.id),
                                            on_batch=batch_done)
        finally:
            bar.close()
        self._check_stop()
        if run.cold:  # few labels: the model's ranking is close to noise; represent the pool instead
            run.scored.priorities = coldstart.order_for(self.learner, run.open_ids, run.ids,
                                                        rng=np.random.default_rng(run.id))
            run.clusters = None
            return
        # near-duplicates among the top candidates are spread apart, so concurrent labellers
        # do not all get copies of the same uncertain post
        run.scored.priorities, run.clusters = diversify(run.open_ids.tolist(), run.scored.priorities, self._texts,
                                                        top_k=int(s.diversity_top_k))

    def _publish(self, run: _Run) -> RunResult:
        """Predictions, model file, the run row, then the switch; quality pass and pruning after."""
        s, scores, sc = self.settings, run.scores, run.scored
        predictions.write(self.engine, run.id, run.open_ids, np.asarray(sc.priorities, dtype=float),
                          predicted_labels=sc.labels, confidences=sc.confidences, second_labels=sc.second_labels,
                          second_confidences=sc.second_confidences, clusters=run.clusters)
        run.seconds_score = time.monotonic() - run.score_started
        self._check_stop()
        full = self.learner.text_model(run.model)  # the model file: text in, probabilities out
        full.smartlabel_meta_ = {"run_id": run.id, "model_kind": s.model, "classes": list(map(str, run.model.classes_)),
                                 "n_labels": len(run.y), "cv_accuracy": scores["cv_accuracy"],
                                 "trained_at": utcnow().isoformat()}
        # the vectoriser's bytes are those of the last run's file while it is not refitted
        path = modelstore.save(full, self.models_dir, scores["cv_accuracy"], run_id=run.id,
                               unchanged=self.learner.shared_part())
        # From here on the run completes even if a signal arrives: each step is short.
        self._finish(
            run.id, "ok", self._note(run), n_labels=len(run.y), n_classes=len(run.classes),
            cv_accuracy=scores["cv_accuracy"], cv_macro_f1=scores["cv_macro_f1"],
            audit_accuracy=scores["audit_accuracy"], n_audit=scores["n_audit"], per_class=scores["per_class"],
            model_path=str(path), n_scored=len(run.open_ids), seconds_train=round(run.seconds_train, 3),
            seconds_score=round(run.seconds_score, 3), **({"acquisition": coldstart.ACQUISITION} if run.cold else {}),
        )
        # switched on only once the run's row is complete, so the page never shows a half-told run
        runs.set_current(self.engine, run.id)
        self._update_quality(run)
        pruned = predictions.prune(self.engine, keep_runs=KEEP_PREDICTION_RUNS)
        gone = modelstore.prune(self.models_dir, int(s.keep_models))
        self._statistics(run)
        audit = (f"audit {modelstore.format_score(scores['audit_accuracy'])} (n={scores['n_audit']})"
                 if scores["audit_accuracy"] is not None else f"audit n/a ({scores['n_audit']} random)")
        log.info(
            "run %d ok: %s on %d labels, %d classes: cv accuracy %s, macro-F1 %s, %s; scored %d open posts; "
            "model %s; train %.1f s, score %.1f s%s", run.id, s.model, len(run.y), len(run.classes),
            modelstore.format_score(scores["cv_accuracy"]), modelstore.format_score(scores["cv_macro_f1"]), audit,
            len(run.open_ids), path, run.seconds_train, run.seconds_score,
            f"; pruned {pruned} old predictions, {len(gone)} model files" if pruned or gone else "",
        )
        return RunResult(run.id, "ok", "", scores=scores, model_path=str(path))

    @staticmethod
    def _note(run: _Run) -> str:
        """The message of an ok run: how it was evaluated, what it left out."""
        scores = run.scores
        note = [f"cv {scores['cv_folds']}-fold" if scores["cv_folds"] else scores.get("note", "")]
        if run.cold:
            note.append(f"cold start: priorities represent the pool ({len(run.y)} labels < COLD_START_LABELS)")
        if run.dropped:
            note.append(f"{run.dropped} agreed label(s) not in LABELS ignored")
        if scores["audit_accuracy"] is None:
            note.append(f"audit sample {scores['n_audit']} < {AUDIT_MIN}")
        return "; ".join(n for n in note if n)

    def _update_quality(self, run: _Run) -> None:
        """Agreement and suspect labels: a failure here never fails the run."""
        from smartlabel.quality import update_quality

        try:
            report = update_quality(self.engine, run.id, run.scores.get("oof_proba"), run.scores.get("oof_classes"),
                                    run.ids, run.y)
            log.info("run %d quality: %s", run.id, report.summary())
        except Exception as exc:
            log.warning("run %d: quality pass failed: %s", run.id, self._describe(exc))

    def _statistics(self, run: _Run) -> None:
        """ANALYZE / PRAGMA optimize (`smartlabel.store.stats`): a failure never fails the run."""
        from smartlabel.store.stats import optimize

        try:
            _, skipped = optimize(self.engine)
            if skipped and not self._said_statistics:  # once per process, not once per run
                log.info("statistics: %s", skipped)
                self._said_statistics = True
        except Exception as exc:
            log.warning("run %d: refreshing planner statistics failed: %s", run.id, self._describe(exc))

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


def already_running(held: LockHeld) -> str:
    return f"another orchestrator ({held.holder}) is running on this database: stop it first"


def lower_priority(nice: int) -> int:
    """Lower this process's CPU priority to `nice` unless it is lower already; the nice value now.

    Linux keeps a nice value per thread: every thread running now is lowered (BLAS pools start
    theirs when NumPy is imported), and threads and worker processes started later (the
    heartbeat, the TF-IDF counters) inherit it. Raising a priority needs privileges; lowering
    never does."""
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # not Linux: the process's priority is its threads'
        threads = [0]
    for tid in threads:
        try:
            if nice > os.getpriority(os.PRIO_PROCESS, tid):
                os.setpriority(os.PRIO_PROCESS, tid, nice)
        except ProcessLookupError:  # a thread that just ended
            pass
    return os.getpriority(os.PRIO_PROCESS, 0)


def main(*, once: bool = False, force: bool = False, settings=None, models_dir=None,
         database_url: str | None = None) -> int:
    """The `smartlabel orchestrate` command: exit status 1 when the (only) run failed,
    EXIT_ALREADY_RUNNING when another orchestrator holds the database."""
    import sys

    configure_logging()
    orch = Orchestrator(settings, engine=database_url, models_dir=models_dir)
    lower_priority(int(orch.settings.orchestrator_nice))  # before any thread or worker starts
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(orch.settings.train_threads))  # for the process's life
    orch.install_signal_handlers()
    # the heartbeat (smartlabel.heartbeat): a thread of its own, so a long run keeps beating
    beat = Heartbeat(orch.engine, lambda: "stopping" if orch.stopping else orch.activity,
                     interval=float(orch.settings.heartbeat_seconds)).start()
    try:
        result = orch.run_forever(once=once, force=force)
    except LockHeld as held:
        print(f"error: {already_running(held)}", file=sys.stderr, flush=True)
        return EXIT_ALREADY_RUNNING
    except KeyboardInterrupt:
        log.info("orchestrator stopped at once")
        return 130
    finally:
        beat.stop()
        orch.engine.dispose()
    if orch.lost_lock is not None:
        return EXIT_ALREADY_RUNNING
    if once and result is not None and result.status == "failed":
        return 1
    return 0
