"""Simulated labelling: how many labels does active learning save on *your* kind of data?

    smartlabel simulate corpus.csv --truth-column topic --model lr --strategy entropy

A labelled file stands in for the labellers: its truth column is the oracle. The
loop is the orchestrator's, with the production code (`smartlabel.training.Learner`),
in memory:

1. The corpus is split once (stratified, fixed seed) into a **pool** the
   simulated labellers draw from and a **held-out** share (default 25 %) that is
   never queried nor trained on. `--max-items` first subsamples the corpus
   (stratified), to keep big corpora fast; the output says so.
2. Features: the Learner's feature cache, the model's own TF-IDF vectoriser fitted
   once on the pool's text (as in the orchestrator); the held-out share is
   transformed with it.
3. **Full-data accuracy** (the reference): the model trained on the whole pool
   with its true labels, scored on the held-out share. The targets are 90 % and
   95 % of it.
4. For each seed: a random initial sample of `--initial` pool items (redrawn
   while it holds a single class), the same for every strategy of that seed.
   Then, until `--budget` labels: `Learner.fit` trains a fresh model on the
   labelled items (the orchestrator's `ActiveFeatures` path); record its accuracy
   on the held-out share and on the pool items not queried yet; `Learner.score`
   gives the unlabelled pool its priorities (`smartlabel.acquisition`, the
   strategy's registry entry) and the `--step` highest are "labelled" (a
   `--shuffle-prop` share of each batch is picked at random instead, like the
   queue's exploration).
   With `--cold-start N` (default: COLD_START_LABELS' default; 0: off) the strategies start as
   the orchestrator does: the initial sample and every batch until N labels are the posts
   `smartlabel.coldstart` ranks first (recomputed at each step, away from the labelled ones);
   the exploration share stays random.
5. Random sampling (`priorities("random", ...)`) runs beside every strategy with
   the same seeds and initial samples: it is the baseline. It may go on past the
   budget (`--baseline-budget`, in `--baseline-step` steps), so that the labels
   *it* needs to reach a target, and so the ratio, are known even when it is
   far more than the strategies need.

Reported: for each strategy, the number of labels at which the **mean
held-out accuracy** over seeds first reaches each target, and its ratio to
random's. Held-out accuracy is what we compare with the full-data accuracy
because both are measured on the same unseen items. The accuracy on the
not-yet-queried pool items (what `smartlabel autolabel` would label) is in the curve and the table too, but it
is biased in favour of uncertainty sampling: those strategies take the hard
items out of that set, so it gets easier as they go.

Outputs: `SimulationResult` (curve as a DataFrame, targets, labels to target,
ratios), a readable table (`format_table`), a CSV of the curve
(`write_curve_csv`) and a learning-curve PNG (`plot_curve`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from smartlabel import acquisition
from smartlabel.errors import SmartlabelError

__all__ = [
    "SimulationError", "SimulationResult", "load_corpus", "simulate",
    "format_table", "write_curve_csv", "plot_curve", "labels_to_reach",
]

BASELINE = acquisition.RANDOM
TARGETS = (0.90, 0.95)
def _cold_start_default() -> int:
    """simulate's default cold start: the COLD_START_LABELS setting's default."""
    from smartlabel.settings import Settings

    return int(Settings.model_fields["cold_start_labels"].default)
CURVE_COLUMNS = ["strategy", "seed", "labels", "heldout_accuracy", "unqueried_accuracy", "classes_seen"]


class SimulationError(SmartlabelError, ValueError):
    """A simulation cannot run with this file or these options; the message says why."""


# --- the corpus -------------------------------------------------------------------------


@dataclass
class Corpus:
    texts: list[str]
    truth: np.ndarray  # object array of class names
    path: str = ""
    dropped: int = 0  # rows without a truth value or without text

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.truth.tolist()))


def load_corpus(path: str | Path, truth_column: str) -> Corpus:
    """Texts (model input: `title + " " + clean_selftext`) and truth of a CSV or TSV file.

    The file is read and its columns matched as the importer does (case-insensitive
    names, separator from the header line, the importer's encoding and CSV errors).
    The model input is built as the importer and orchestrator do: `clean_selftext`,
    or `clean_text(selftext)` where it is missing or empty; a file with only a
    `text` column (and maybe `title`) uses that. Rows with an empty truth or no text
    are left out (counted in `dropped`).
    """
    from smartlabel.errors import ImportFileError

    path = Path(path)
    if not path.exists():
        raise SimulationError(f"{path}: no such file. Give a CSV with a text column and a truth column.")
    try:
        texts, truth = _read_corpus(path, truth_column)
    except ImportFileError as exc:
        raise SimulationError(str(exc)) from None
    keep = [bool(t) and bool(y) for t, y in zip(texts, truth)]
    corpus = Corpus(
        texts=[t for t, k in zip(texts, keep) if k],
        truth=np.array([y for y, k in zip(truth, keep) if k], dtype=object),
        path=str(path),
        dropped=keep.count(False),
    )
    if len(corpus.classes) < 2:
        raise SimulationError(
            f"{path}: the column {truth_column!r} has {len(corpus.classes)} distinct value(s) in rows with "
            "text; a simulation needs at least two classes."
        )
    return corpus


_TEXT_COLUMNS = ("title", "selftext", "clean_selftext", "text")


def _read_corpus(path: Path, truth_column: str) -> tuple[list[str], list[str]]:
    """Model input and (stripped) truth of every row, read with the importer's CSV reader."""
    from smartlabel.importer.csvfile import read_csv
    from smartlabel.importer.lines import detect_format
    from smartlabel.importer.validate import clean_selftext_of
    from smartlabel.text import model_input

    fmt = detect_format(path, None)
    if fmt == "jsonl":
        raise SimulationError(f"{path}: this is JSON Lines; simulate reads CSV or TSV files with a header line.")
    truth_key = truth_column.strip().lower()
    with read_csv(path, fmt, known=(*_TEXT_COLUMNS, truth_key)) as table:
        canon = table.columns.canon
        if not truth_key or truth_key not in canon:
            raise SimulationError(
                f"{path}: no column {truth_column!r} to use as the truth; the file has "
                f"{', '.join(repr(c) for c in table.names)}. Pass one of them with --truth-column."
            )
        if not any(c in canon for c in _TEXT_COLUMNS):
            raise SimulationError(
                f"{path}: no text column: the file needs 'title' and 'selftext' (or 'clean_selftext', "
                f"or 'text'); it has {', '.join(repr(c) for c in table.names)}."
            )
        has_body = "selftext" in canon or "clean_selftext" in canon
        texts, truth = [], []
        for rec in table.records():
            v = rec.values
            body = clean_selftext_of(v.get("selftext", ""), v.get("clean_selftext")) if has_body else v.get("text")
            texts.append(model_input(v.get("title"), body).strip())
            truth.append(v[truth_key].strip())
    return texts, truth


# --- results ----------------------------------------------------------------------------


@dataclass
class SimulationResult:
    model: str
    strategies: list[str]  # the strategies compared, the baseline last
    seeds: list[int]
    curve: "object"  # pandas DataFrame with CURVE_COLUMNS
    full_accuracy: float
    targets: dict[float, float]  # fraction -> accuracy to reach
    labels_to_target: dict[str, dict[float, int | None]]  # on the mean held-out curve
    labels_to_target_per_seed: dict[str, dict[float, list[int | None]]]
    unqueried_labels_to_target: dict[str, dict[float, int | None]]
    info: dict = field(default_factory=dict)

    def ratio(self, strategy: str, fraction: float) -> tuple[float | None, str]:
        """(ratio, text) of labels needed by `strategy` over random's, for one target.

        When a curve never reaches the target the ratio is a bound ("< 0.40",
        "> 2.50") computed with the budgets, or unknown ("n/a").
        """
        mine = self.labels_to_target[strategy][fraction]
        base = self.labels_to_target[BASELINE][fraction]
        budget = self.info["budget"]
        if mine is not None and base is not None:
            r = mine / base
            return r, f"{r:.2f}"
        if mine is not None and base is None:  # random needs more than its budget
            r = mine / self.info.get("baseline_budget", budget)
            return None, f"< {r:.2f}"
        if mine is None and base is not None:
            r = budget / base
            return None, f"> {r:.2f}"
        return None, "n/a"

    def to_dict(self) -> dict:
        """Everything but the curve rows, JSON-ready (the bench writes it)."""
        out = {
            "model": self.model,
            "strategies": self.strategies,
            "seeds": self.seeds,
            "full_accuracy": round(self.full_accuracy, 4),
            "targets": {f"{int(f * 100)}%": round(a, 4) for f, a in self.targets.items()},
            "labels_to_target": {},
            "info": self.info,
        }
        for s in self.strategies:
            entry = {}
            for f in self.targets:
                key = f"{int(f * 100)}%"
                r, text = self.ratio(s, f)
                entry[key] = {
                    "labels": self.labels_to_target[s][f],
                    "labels_per_seed": self.labels_to_target_per_seed[s][f],
                    "ratio_to_random": None if r is None else round(r, 3),
                    "ratio_text": text,
                    "labels_unqueried_metric": self.unqueried_labels_to_target[s][f],
                }
            final = self.final_accuracy(s)
            entry["final"] = final
            out["labels_to_target"][s] = entry
        return out

    def final_accuracy(self, strategy: str) -> dict:
        """Mean and standard deviation over seeds at the budget (the strategies' last count)."""
        df = self.curve[self.curve["strategy"] == strategy]
        last = df[df["labels"] == min(int(df["labels"].max()), int(self.info["budget"]))]
        return {
            "labels": int(last["labels"].iloc[0]),
            "heldout_mean": round(float(last["heldout_accuracy"].mean()), 4),
            "heldout_std": round(float(last["heldout_accuracy"].std(ddof=0)), 4),
            "unqueried_mean": round(float(last["unqueried_accuracy"].mean()), 4),
            "unqueried_std": round(float(last["unqueried_accuracy"].std(ddof=0)), 4),
        }


def labels_to_reach(labels: Sequence[int], accuracy: Sequence[float], target: float) -> int | None:
    """The first labels count whose accuracy is at least `target` (None if never)."""
    for n, acc in zip(labels, accuracy):
        if acc >= target - 1e-12:
            return int(n)
    return None


# --- the loop ---------------------------------------------------------------------------


def _split(truth: np.ndarray, heldout: float, max_items: int | None, seed: int):
    """(pool indices, held-out indices) of a stratified split, after an optional subsample."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(truth))
    strat = truth if min(np.unique(truth, return_counts=True)[1]) >= 2 else None
    if max_items and max_items < len(idx):
        idx, _ = train_test_split(idx, train_size=max_items, random_state=seed, stratify=strat)
        idx = np.sort(idx)
        sub = truth[idx]
        strat = sub if min(np.unique(sub, return_counts=True)[1]) >= 2 else None
    pool, held = train_test_split(idx, test_size=heldout, random_state=seed, stratify=strat)
    return np.sort(pool), np.sort(held)


def _initial_sample(rng: np.random.Generator, truth_pool: np.ndarray, initial: int) -> np.ndarray:
    for _ in range(1000):
        pick = rng.choice(len(truth_pool), size=initial, replace=False)
        if len(set(truth_pool[pick].tolist())) >= 2:
            return pick
    raise SimulationError(
        f"1000 random initial samples of {initial} items all held a single class: "
        "raise --initial (the data is very imbalanced)."
    )


def _label_schedule(initial: int, step: int, budget: int) -> list[int]:
    counts = list(range(initial, budget + 1, step))
    if counts[-1] != budget:
        counts.append(budget)
    return counts


def _check_strategies(strategies: Sequence[str]) -> list[str]:
    """The strategies to compare, each once, the baseline (random) last; unknown names are an error."""
    strategies = [s.strip() for s in strategies if s and s.strip()]
    for s in strategies:
        if s not in acquisition.names():
            raise SimulationError(f"unknown strategy {s!r}; use one of {', '.join(acquisition.names())}")
    return [s for s in dict.fromkeys(strategies) if s != BASELINE] + [BASELINE]


def _accuracy(classes: np.ndarray, proba: np.ndarray, truth: np.ndarray) -> float:
    return _share_right(classes[np.argmax(proba, axis=1)], truth)


def _share_right(predicted: np.ndarray, truth: np.ndarray) -> float:
    if len(truth) == 0:
        return float("nan")
    return float(np.mean(predicted == truth))


def simulate(
    corpus: Corpus,
    *,
    model: str = "lr",
    strategies: Sequence[str] = (acquisition.DEFAULT,),
    initial: int = 20,
    step: int = 20,
    budget: int = 500,
    seeds: int | Sequence[int] = 3,
    baseline_budget: int | None = None,
    baseline_step: int | None = None,
    heldout: float = 0.25,
    max_items: int | None = None,
    shuffle_prop: float = 0.0,
    class_weight: str = "none",
    split_seed: int = 0,
    cold_start: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    desc: str | None = None,
    embeddings_dir: str | Path | None = None,
    encoder_threads: int = 0,
    schedule: Sequence[int] | None = None,
) -> SimulationResult:
    """Run the simulation (see the module docstring); `seeds` is a count or a list of seeds.

    `cold_start`: until this many labels, the strategies (not the random baseline) label
    the posts `smartlabel.coldstart` ranks first, as the orchestrator does below
    COLD_START_LABELS (the initial sample included); None takes the setting's default,
    0 disables it.

    Models with a sentence encoder (embed, minilm) embed each text once per run
    (every seed and strategy reuses the pool's features); with `embeddings_dir`
    the vectors are also kept in that file cache (`smartlabel.encoders.EmbeddingStore`,
    as the orchestrator's `MODELS_DIR/.cache/embeddings`), so another run on the
    same texts, with any seed, strategy or subsample, embeds nothing again.
    `encoder_threads`: MiniLM's ONNX Runtime threads (0: one per core, at most 4).
    `schedule`: the labels counts to train and measure at, instead of every `step` from
    `initial` to `budget` (its first count is the initial sample, its last the budget;
    random sampling's extra steps still follow `baseline_step`).

    BLAS runs single-threaded meanwhile: the linear models' L-BFGS steps are small
    vector operations, which OpenBLAS's spinning worker threads slow down 10-40x
    on a machine whose cores are busy (measured here); nothing else changes.
    """
    from threadpoolctl import threadpool_limits

    import scipy.optimize  # noqa: F401  (load every BLAS copy first: limits apply to loaded ones)
    import smartlabel.training  # noqa: F401

    cold_start = _cold_start_default() if cold_start is None else int(cold_start)
    if cold_start < 0:
        raise SimulationError("--cold-start must be 0 (off) or a number of labels")
    with threadpool_limits(1, user_api="blas"):
        return _simulate(corpus, model=model, strategies=strategies, initial=initial, step=step,
                         budget=budget, seeds=seeds, baseline_budget=baseline_budget,
                         baseline_step=baseline_step, heldout=heldout, max_items=max_items,
                         shuffle_prop=shuffle_prop, class_weight=class_weight, split_seed=split_seed,
                         cold_start=cold_start, progress=progress, log=log, desc=desc, embeddings_dir=embeddings_dir,
                         encoder_threads=encoder_threads, schedule=schedule)


def _simulate(corpus, *, model, strategies, initial, step, budget, seeds, baseline_budget, baseline_step,
              heldout, max_items, shuffle_prop, class_weight, split_seed, cold_start, progress, log, desc,
              embeddings_dir=None, encoder_threads=0, schedule=None) -> SimulationResult:
    import pandas as pd

    from smartlabel.training import Learner

    say = log or (lambda msg: print(msg, file=sys.stderr))
    strategies = _check_strategies(strategies)
    seed_list = _check_options(seeds, initial, step, heldout, shuffle_prop, max_items)

    if schedule is not None:
        schedule = _check_schedule(schedule)
        initial, budget = schedule[0], schedule[-1]
    t0 = time.perf_counter()
    pool_idx, held_idx = _split(corpus.truth, heldout, max_items, split_seed)
    pool_texts = [corpus.texts[i] for i in pool_idx]
    held_texts = [corpus.texts[i] for i in held_idx]
    y_pool, y_held = corpus.truth[pool_idx], corpus.truth[held_idx]
    if budget > len(pool_idx):
        say(f"budget {budget} is more than the pool ({len(pool_idx)} items): using {len(pool_idx)}")
        budget = len(pool_idx)
    if initial > budget:
        raise SimulationError(f"--initial ({initial}) is more than the budget ({budget})")
    baseline_budget = min(max(baseline_budget or budget, budget), len(pool_idx))
    baseline_step = int(baseline_step or step)
    plans = _plans(strategies, schedule, initial, step, budget, baseline_budget, baseline_step)

    labels = corpus.classes
    # the orchestrator's Learner on the pool (ids are pool positions), its features in memory
    learner = Learner(model, labels=labels, class_weight=class_weight, embeddings_dir=embeddings_dir,
                      encoder_threads=encoder_threads)
    pool_ids = np.arange(len(pool_texts), dtype=np.int64)
    embedded0 = _texts_embedded()
    learner.sync(pool_ids, [str(i) for i in pool_ids], lambda wanted: [pool_texts[i] for i in wanted])
    X_held = learner.transform(held_texts)
    t_feat = time.perf_counter() - t0
    embedded = _texts_embedded() - embedded0
    subsampled = bool(max_items and max_items < len(corpus.texts))
    say(f"{len(corpus.texts)} items, {len(labels)} classes: pool {len(pool_idx)}, held out {len(held_idx)}"
        + (f" (subsampled from {len(corpus.texts)} with --max-items)" if subsampled else "")
        + (f"; {learner.n_features} features in {t_feat:.1f} s" if learner.n_features is not None else ""))

    # the reference: the classifier trained on the whole pool, scored on the held-out share
    t1 = time.perf_counter()
    full = learner.fit(learner.features(pool_ids), y_pool, random_state=split_seed)
    full_accuracy = _accuracy(np.asarray(full.classes_), full.predict_proba(X_held), y_held)
    t_full = time.perf_counter() - t1
    targets = {f: f * full_accuracy for f in TARGETS}
    say(f"full-data accuracy {full_accuracy:.3f} ({model} trained on all {len(pool_idx)} pool items, "
        f"scored on {len(held_idx)} held-out items; {t_full:.1f} s)")

    rows = _curve_rows(learner, plans, seed_list, y_pool, X_held, y_held, initial, shuffle_prop, cold_start,
                       desc=desc or f"simulate {model}", progress=progress)
    curve = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    l2t, l2t_seed, l2t_unq = _labels_to_target(curve, strategies, seed_list, targets)
    info = {
        "file": corpus.path,
        "items": len(corpus.texts) + corpus.dropped,
        "items_used": int(len(pool_idx) + len(held_idx)),
        "dropped_rows": corpus.dropped,
        "max_items": max_items,
        "pool": int(len(pool_idx)),
        "heldout": int(len(held_idx)),
        "classes": len(labels),
        "initial": initial, "step": step, "budget": budget,
        "baseline_budget": baseline_budget, "baseline_step": baseline_step,
        "shuffle_prop": shuffle_prop, "class_weight": class_weight, "cold_start": cold_start,
        "features": learner.n_features,
        "seconds": round(time.perf_counter() - t0, 1),
        "seconds_full_model": round(t_full, 1),
        "seconds_features": round(t_feat, 1),  # TF-IDF, and embedding the texts not in the cache
        "texts_embedded": embedded,  # by the sentence encoder in this run (0: all from the cache)
    }
    return SimulationResult(
        model=model, strategies=strategies, seeds=seed_list, curve=curve, full_accuracy=full_accuracy,
        targets=targets, labels_to_target=l2t, labels_to_target_per_seed=l2t_seed,
        unqueried_labels_to_target=l2t_unq, info=info,
    )


def _curve_rows(learner, plans: dict[str, list[int]], seed_list: list[int], y_pool: np.ndarray, X_held,
                y_held: np.ndarray, initial: int, shuffle_prop: float, cold_start: int, *, desc: str,
                progress: bool) -> list[dict]:
    """Every strategy (its labels counts in `plans`) from every seed's initial sample."""
    from tqdm.auto import tqdm

    rows = []
    bar = tqdm(total=len(seed_list) * sum(map(len, plans.values())), desc=desc, unit="fit", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    try:
        for seed in seed_list:
            init = _initial_sample(np.random.default_rng([seed, 1]), y_pool, initial)
            for strategy, plan in plans.items():
                bar.set_postfix_str(f"{strategy} seed {seed}")
                baseline = strategy == BASELINE
                for row in _walk(learner, strategy, seed, init, plan, y_pool, X_held, y_held,
                                 0.0 if baseline else shuffle_prop, 0 if baseline else cold_start):
                    rows.append(row)
                    bar.update(1)
    finally:
        bar.close()
    return rows


def _check_schedule(schedule: Sequence[int]) -> list[int]:
    schedule = sorted({int(n) for n in schedule})
    if len(schedule) < 2 or schedule[0] < 2:
        raise SimulationError("a schedule needs at least two labels counts, the first at least 2")
    return schedule


def _plans(strategies: list[str], schedule: list[int] | None, initial: int, step: int, budget: int,
           baseline_budget: int, baseline_step: int) -> dict[str, list[int]]:
    """The labels counts each strategy trains at; random sampling may go on past the budget."""
    if baseline_step < 1:
        raise SimulationError("--baseline-step must be at least 1")
    # a schedule past a small pool ends at the (reduced) budget
    if schedule is None:
        counts = _label_schedule(initial, step, budget)
    else:
        counts = [n for n in schedule if n < budget] + [budget]
    plans = {s: counts for s in strategies}
    if baseline_budget > budget:
        plans[BASELINE] = counts + _label_schedule(budget, baseline_step, baseline_budget)[1:]
    return plans


def _texts_embedded() -> int:
    """Texts the sentence encoders of this process have embedded so far (0 if none was loaded)."""
    enc = sys.modules.get("smartlabel.encoders")
    return 0 if enc is None else sum(st.encoder.texts_embedded for st in enc._STORES.values())


def _check_options(seeds, initial: int, step: int, heldout: float, shuffle_prop: float,
                   max_items: int | None) -> list[int]:
    """The list of seeds, once the options are known to make sense."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise SimulationError("--seeds must be at least 1")
    if initial < 2:
        raise SimulationError("--initial must be at least 2 (the first model needs two classes)")
    if step < 1:
        raise SimulationError("--step must be at least 1")
    if not 0.0 < heldout < 1.0:
        raise SimulationError("--heldout must be a share between 0 and 1, e.g. 0.25")
    if not 0.0 <= shuffle_prop <= 1.0:
        raise SimulationError("--shuffle-prop must be between 0 and 1")
    if max_items is not None and max_items < 20:
        raise SimulationError("--max-items must be at least 20")
    return seed_list


def _walk(learner, strategy: str, seed: int, init: np.ndarray, plan: list[int], y_pool: np.ndarray, X_held,
          y_held: np.ndarray, shuffle_prop: float, cold_start: int = 0):
    """One strategy and seed from the initial sample along `plan`: a curve row per labels count.

    With `cold_start`, the initial sample and every batch while fewer than `cold_start` posts
    are labelled come from `smartlabel.coldstart` (as the orchestrator hands them out)."""
    from smartlabel import coldstart

    rng = np.random.default_rng([seed, 2])  # acquisition and exploration draws
    labelled = np.zeros(len(y_pool), dtype=bool)
    if coldstart.applies(0, cold_start):
        prio = coldstart.order_for(learner, np.arange(len(y_pool)), [], rng=np.random.default_rng([seed, 3]))
        init = np.argsort(-prio, kind="stable")[:len(init)]
    labelled[init] = True
    for i, n in enumerate(plan):
        lab_rows = np.flatnonzero(labelled)
        assert len(lab_rows) == n
        rest = np.flatnonzero(~labelled)
        cold = coldstart.applies(n, cold_start)
        if len(set(y_pool[lab_rows].tolist())) < 2:  # a cold start may begin with one class: no model yet
            only = y_pool[lab_rows][0]
            row_acc, unq_acc, n_classes, priorities = _share_right(np.full(len(y_held), only), y_held), \
                _share_right(np.full(len(rest), only), y_pool[rest]), 1, None
        else:
            est = learner.fit(learner.features(lab_rows), y_pool[lab_rows], random_state=seed)
            classes = np.asarray(est.classes_)
            scored = learner.score(est, rest, "random" if cold else strategy, rng)
            row_acc, unq_acc = _accuracy(classes, est.predict_proba(X_held), y_held), \
                _share_right(scored.labels, y_pool[rest])
            n_classes, priorities = len(classes), scored.priorities
        yield {
            "strategy": strategy, "seed": seed, "labels": n,
            "heldout_accuracy": row_acc, "unqueried_accuracy": unq_acc, "classes_seen": n_classes,
        }
        if i + 1 == len(plan):
            return
        if cold or priorities is None:
            priorities = coldstart.order_for(learner, rest, lab_rows, rng=rng)
        want = plan[i + 1] - n
        n_random = int(round(shuffle_prop * want))
        # best first; equal priorities (e.g. posts sharing no term with the labelled
        # ones get the same probabilities) in random order, not in file order
        order = np.lexsort((rng.random(len(rest)), -priorities))
        chosen = list(rest[order[: want - n_random]])
        if n_random:
            others = rest[order[want - n_random:]]
            chosen += list(rng.choice(others, size=min(n_random, len(others)), replace=False))
        labelled[np.asarray(chosen, dtype=np.int64)] = True


def _labels_to_target(curve, strategies: list[str], seed_list: list[int], targets: dict[float, float]):
    """Labels to each target: on the mean held-out curve, per seed, and on the mean unqueried curve."""
    mean = curve.groupby(["strategy", "labels"], sort=True)[["heldout_accuracy", "unqueried_accuracy"]].mean()
    l2t, l2t_seed, l2t_unq = {}, {}, {}
    for s in strategies:
        m = mean.loc[s]
        l2t[s] = {f: labels_to_reach(m.index, m["heldout_accuracy"], a) for f, a in targets.items()}
        l2t_unq[s] = {f: labels_to_reach(m.index, m["unqueried_accuracy"], a) for f, a in targets.items()}
        l2t_seed[s] = {}
        for f, a in targets.items():
            per = []
            for seed in seed_list:
                c = curve[(curve.strategy == s) & (curve.seed == seed)]
                per.append(labels_to_reach(c["labels"], c["heldout_accuracy"], a))
            l2t_seed[s][f] = per
    return l2t, l2t_seed, l2t_unq


# --- outputs ------------------------------------------------------------------------------


def _fmt_labels(n: int | None, budget: int) -> str:
    return str(n) if n is not None else f"> {budget}"


def _budget_of(result: "SimulationResult", strategy: str) -> int:
    info = result.info
    return info.get("baseline_budget", info["budget"]) if strategy == BASELINE else info["budget"]


def format_table(result: SimulationResult) -> str:
    """The summary a person reads on stdout (plain text, fixed width)."""
    info = result.info
    budget = info["budget"]
    lines = []
    kept = info["items"] - info["dropped_rows"]
    sub = f", subsampled to {info['items_used']}" if info.get("max_items") and info["items_used"] < kept else ""
    lines.append(
        f"{info['file'] or 'corpus'}: {kept} items{sub}, {info['classes']} classes; "
        f"pool {info['pool']}, held out {info['heldout']}; model {result.model}; "
        f"seeds {', '.join(map(str, result.seeds))}; start {info['initial']}, +{info['step']} per step, budget {budget}"
        + (f" (random goes on to {info['baseline_budget']}, +{info['baseline_step']} per step)"
           if info.get("baseline_budget", budget) > budget else "")
    )
    lines.append(
        f"full-data accuracy {result.full_accuracy:.3f}: the model trained on all {info['pool']} pool items "
        f"with their true labels, scored on the {info['heldout']} held-out items"
    )
    lines.append("targets: " + ", ".join(f"{int(f * 100)}% = {a:.3f}" for f, a in result.targets.items())
                 + " held-out accuracy (mean over seeds)")
    lines.append("")
    head = ["strategy"]
    for f in result.targets:
        head += [f"labels to {int(f * 100)}%", "vs random"]
    head += [f"held-out acc @{budget}", f"unqueried acc @{budget}"]
    table = [head]
    for s in result.strategies:
        row = [s]
        for f in result.targets:
            row.append(_fmt_labels(result.labels_to_target[s][f], _budget_of(result, s)))
            row.append("1 (baseline)" if s == BASELINE else result.ratio(s, f)[1])
        fin = result.final_accuracy(s)
        row.append(f"{fin['heldout_mean']:.3f} ± {fin['heldout_std']:.3f}")
        row.append(f"{fin['unqueried_mean']:.3f} ± {fin['unqueried_std']:.3f}")
        table.append(row)
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for k, r in enumerate(table):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(
        "labels to N%: first labels count where the mean held-out accuracy over seeds reaches N% of the "
        "full-data accuracy; vs random: that count over random sampling's (lower is better, "
        "< / > are bounds when a curve stays under the target within the budget). "
        "Unqueried acc: accuracy on the pool items not yet queried (favours uncertainty sampling)."
    )
    lines.append(f"took {info['seconds']:.0f} s")
    return "\n".join(lines)


def write_curve_csv(result: SimulationResult, path: str | Path) -> Path:
    """One row per (strategy, seed, labels count), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df = result.curve.copy()
    df["heldout_accuracy"] = df["heldout_accuracy"].round(5)
    df["unqueried_accuracy"] = df["unqueried_accuracy"].round(5)
    df["model"] = result.model
    df["full_accuracy"] = round(result.full_accuracy, 5)
    df.to_csv(tmp, index=False, lineterminator="\n")
    tmp.replace(path)
    return path


COLOURS = {"entropy": "#1f77b4", "margin": "#ff7f0e", "certainty": "#2ca02c", "random": "#555555"}


def plot_curve(result: SimulationResult, path: str | Path, *, title: str | None = None, dpi: int = 80) -> Path:
    """Learning curves: held-out accuracy (left) and accuracy on the unqueried pool (right),
    mean over seeds with a min-max band, the full-data accuracy and the 90/95 % targets."""
    try:
        import matplotlib
    except ImportError:
        raise SimulationError(
            "--plot needs matplotlib, which is not installed: pip install 'smartlabel[plots]' "
            "(or leave out --plot)"
        ) from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = result.curve
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    lo = min(float(df[["heldout_accuracy", "unqueried_accuracy"]].min().min()), result.targets[0.90]) - 0.03
    for ax, metric, name in ((axes[0], "heldout_accuracy", "held-out accuracy"),
                             (axes[1], "unqueried_accuracy", "accuracy on items not queried yet")):
        for k, s in enumerate(result.strategies):
            g = df[df.strategy == s].groupby("labels")[metric]
            m, mn, mx = g.mean(), g.min(), g.max()
            colour = COLOURS.get(s)
            style = "--" if s == BASELINE else "-"
            ax.plot(m.index, m.values, style, color=colour, lw=2, label=s)
            if len(result.seeds) > 1:
                ax.fill_between(m.index, mn.values, mx.values, color=colour, alpha=0.15, lw=0)
            if metric == "heldout_accuracy":
                n95 = result.labels_to_target[s][0.95]
                if n95 is not None:
                    ax.plot([n95], [m.loc[n95]], "o", color=colour, ms=6)
                    ax.annotate(str(n95), (n95, m.loc[n95]), textcoords="offset points", xytext=(4, -12 - 9 * k),
                                color=colour, fontsize=8,
                                bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.85))
        ax.axhline(result.full_accuracy, color="black", lw=1, label=f"full data {result.full_accuracy:.3f}")
        for f, a in result.targets.items():
            ax.axhline(a, color="black", lw=0.8, ls=":" if f < 0.95 else "-.",
                       label=f"{int(f * 100)}% of full = {a:.3f}")
        if result.info.get("baseline_budget", result.info["budget"]) > result.info["budget"]:
            ax.axvline(result.info["budget"], color="grey", lw=0.8, alpha=0.6)
            ax.annotate("budget", (result.info["budget"], max(0.0, lo) + 0.01),
                        fontsize=7, color="grey", xytext=(3, 0), textcoords="offset points")
        ax.set_xlabel("labels")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.set_ylim(max(0.0, lo), min(1.0, max(result.full_accuracy, float(df[metric].max())) + 0.02))
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="lower right", fontsize=8)
    info = result.info
    band = f"band: min-max over {len(result.seeds)} seeds" if len(result.seeds) > 1 else "1 seed"
    fig.suptitle(
        title or f"{Path(info['file']).name if info.get('file') else 'corpus'}: {result.model}, "
        f"pool {info['pool']}, held out {info['heldout']} ({band}; dots: labels to 95%)",
        fontsize=10,
    )
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
    return path
