"""Label quality: agreement between labellers, and suspect labels to review.

The orchestrator calls `update_quality` after each model run. It writes, in one
transaction, for that run:

- `agreement`: how much labellers agree, computed from every row of `labels`
  (imported labels included: a file's labels are someone's decisions, and the
  pair rows show `import`, or the file's `worker_id`, apart from the team).
  Only posts with two or more labels say anything about agreement.
    scope 'overall'  Krippendorff's alpha (nominal) over all labellers, and the
                     observed share of agreeing label pairs;
    scope 'label'    per label L: alpha of "L or not L" (chance-corrected
                     agreement on that label alone) and specific agreement
                     (when someone picks L, how often another labeller of the
                     same post picks L too);
    scope 'pair'     per pair of labellers: Cohen's kappa and the share of
                     posts they agree on, over the posts both labelled;
    scope 'worker'   per labeller: the share of their label pairs with other
                     labellers of the same post that agree.
  `value` is NULL when a figure is undefined (e.g. kappa when both labellers
  used one and the same label throughout: no chance correction is possible).
- `suspect_labels`: posts to look at again, most suspect first.
    kind 'model'  the model, predicting out of fold (it never saw the post's
                  label while predicting it), confidently contradicts the
                  agreed label. The rule is confident learning's (Northcutt,
                  Jiang, Chuang, JAIR 2021), written here from the paper's
                  definitions: a class j's threshold t_j is the mean predicted
                  probability of j over the posts labelled j; a post "confidently
                  belongs" to the classes whose probability reaches their
                  threshold, and among them to the likeliest. A post is suspect
                  when that class differs from its label and the model gives it
                  more probability than the label. score = p(suggested) - p(given),
                  in (0, 1]. Classes with fewer than `min_class_count` labels are
                  not judged (their threshold cannot be estimated), and a label
                  two or more labellers gave unanimously is not second-guessed.
    kind 'tie'    labellers disagree and no label has a strict majority: the
                  post has no agreed label (so no training label) until someone
                  breaks the tie. score = 1.
- `quality_runs`: one summary row per run; the queue's review hand-outs follow
  the newest one.

The queue (smartlabel.queue) hands REVIEW_SHARE of pops to the newest run's
suspects, most suspect first, to a labeller who has not labelled the post; a
suspect is handed out at most once per quality pass and no post gets more than
two review labels in all (the disputed label, then one tie-breaker). AUDIT_SHARE
of pops go to a random post labelled by exactly one other labeller.

cleanlab (which implements the same paper) is AGPL-3.0, so it is not used.

Hook for the orchestrator, after a run's cross-validation (the fold models it
already keeps give the out-of-fold probabilities without training again):

    proba = fold_proba(res["estimator"], res["indices"]["test"], X, classes)
    update_quality(engine, run_id, proba, classes, item_ids, y)

(`out_of_fold_proba(estimator, X, y)` does its own cross-validation instead.)

Hook for export: `item_quality(engine)`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Hashable, Iterable, Sequence

import numpy as np
from sqlalchemy.engine import Engine

from smartlabel.db import make_engine, utcnow
from smartlabel.errors import QualityInputError
from smartlabel.store import labels as store_labels
from smartlabel.store import quality as store_quality

TIE_SCORE = 1.0
MIN_CLASS_COUNT = 5

# --- the maths ---------------------------------------------------------------------


def _coincidences(units: Iterable[Sequence[Hashable]]) -> tuple[dict, int]:
    """Krippendorff's coincidence matrix o[(c, k)] over units with two or more values.

    Each ordered pair of values (c, k) from different coders of one unit adds
    1 / (m_u - 1), m_u being the number of values in that unit.
    """
    o: dict[tuple, float] = defaultdict(float)
    pairable = 0
    for values in units:
        m = len(values)
        if m < 2:
            continue
        pairable += 1
        counts = Counter(values)
        for c, nc in counts.items():
            for k, nk in counts.items():
                pairs = nc * (nk - 1) if c == k else nc * nk
                if pairs:
                    o[(c, k)] += pairs / (m - 1)
    return o, pairable


def _alpha_from(o: dict) -> float | None:
    n_c: dict = defaultdict(float)
    for (c, _k), v in o.items():
        n_c[c] += v
    n = sum(n_c.values())
    if n <= 1:
        return None
    observed = sum(v for (c, k), v in o.items() if c != k)
    expected = n * n - sum(v * v for v in n_c.values())  # sum over c != k of n_c * n_k
    if expected <= 1e-12:
        return None  # one value used throughout: agreement cannot be told from chance
    return 1.0 - (n - 1) * observed / expected


def krippendorff_alpha(units: Iterable[Sequence[Hashable]]) -> float | None:
    """Krippendorff's alpha for nominal data; each unit is the list of values coders gave it.

    Units with fewer than two values are not pairable and are ignored. None when undefined.
    """
    o, _ = _coincidences(units)
    return _alpha_from(o)


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two labellers' labels of the same posts (None when undefined)."""
    if len(a) != len(b):
        raise QualityInputError(f"cohen_kappa needs two equally long label lists, got {len(a)} and {len(b)}")
    n = len(a)
    if n == 0:
        return None
    agree = sum(1 for x, y in zip(a, b) if x == y)
    ca, cb = Counter(a), Counter(b)
    chance = sum(ca[c] * cb[c] for c in ca)  # n^2 * p_e, in integers
    if n * n == chance:
        return None
    return (n * agree - chance) / (n * n - chance)


def agreement_rows(label_rows: Iterable[tuple[int, str, str]]) -> list[dict]:
    """Agreement figures from (item_id, worker_id, label) rows; one label per worker and post
    (the first one seen counts). Rows: scope, label, worker_a, worker_b, metric, value, n_items."""
    per_item: dict[int, dict[str, str]] = defaultdict(dict)
    for item_id, worker, label in label_rows:
        per_item[item_id].setdefault(worker, label)
    multi = {i: w for i, w in per_item.items() if len(w) >= 2}
    rows: list[dict] = []

    def row(scope, metric, value, n, label=None, a=None, b=None):
        rows.append({"scope": scope, "label": label, "worker_a": a, "worker_b": b, "metric": metric,
                     "value": None if value is None or not math.isfinite(value) else float(value),
                     "n_items": int(n)})

    units = [list(w.values()) for w in multi.values()]
    o, pairable = _coincidences(units)
    n_total = sum(o.values())
    row("overall", "alpha", _alpha_from(o), pairable)
    row("overall", "percent_agreement",
        sum(v for (c, k), v in o.items() if c == k) / n_total if n_total else None, pairable)

    labels_seen = sorted({v for u in units for v in u})
    for lab in labels_seen:
        binary = [[v == lab for v in u] for u in units]
        ob, _ = _coincidences(binary)
        n_l = sum(v for (c, _k), v in o.items() if c == lab)
        with_l = sum(1 for u in units if lab in u)
        row("label", "alpha", _alpha_from(ob), with_l, label=lab)
        row("label", "specific_agreement", o.get((lab, lab), 0.0) / n_l if n_l else None, with_l, label=lab)

    shared: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for w in multi.values():
        names = sorted(w)
        for x in range(len(names)):
            for y in range(x + 1, len(names)):
                shared[(names[x], names[y])].append((w[names[x]], w[names[y]]))
    for (a, b), pairs in sorted(shared.items()):
        la, lb = [p[0] for p in pairs], [p[1] for p in pairs]
        row("pair", "cohen_kappa", cohen_kappa(la, lb), len(pairs), a=a, b=b)
        row("pair", "percent_agreement", sum(1 for x, y in pairs if x == y) / len(pairs), len(pairs), a=a, b=b)

    agree_pairs: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # agreeing, pairs, items
    for w in multi.values():
        for name, lab in w.items():
            others = [v for k, v in w.items() if k != name]
            acc = agree_pairs[name]
            acc[0] += sum(1 for v in others if v == lab)
            acc[1] += len(others)
            acc[2] += 1
    for name in sorted(agree_pairs):
        agreeing, pairs, n_items = agree_pairs[name]
        row("worker", "agreement_with_others", agreeing / pairs if pairs else None, n_items, a=name)
    return rows


@dataclass
class Suspect:
    index: int  # position in the inputs
    given: str
    suggested: str
    p_given: float
    p_suggested: float

    @property
    def score(self) -> float:
        return self.p_suggested - self.p_given


def find_suspects(oof_proba, classes: Sequence[str], y: Sequence[str], *,
                  min_class_count: int = MIN_CLASS_COUNT) -> tuple[list[Suspect], dict[str, float | None]]:
    """Posts whose given label the out-of-fold probabilities confidently contradict.

    `oof_proba[i, j]` is the probability of `classes[j]` for post i, predicted by a
    model that did not train on post i; `y[i]` is post i's label. Returns the
    suspects (most suspect first) and the per-class thresholds (None: not judged).
    """
    proba = np.asarray(oof_proba, dtype=float)
    classes = [str(c) for c in classes]
    y = [str(v) for v in y]
    if proba.ndim != 2 or proba.shape != (len(y), len(classes)):
        raise QualityInputError(
            f"out-of-fold probabilities have shape {proba.shape}; expected ({len(y)} posts, {len(classes)} classes) "
            "in the order of `classes` (the estimator's classes_)"
        )
    if not np.all(np.isfinite(proba)):
        raise QualityInputError("out-of-fold probabilities contain NaN or infinity")
    index = {c: j for j, c in enumerate(classes)}
    unknown = sorted(set(y) - set(index))
    if unknown:
        raise QualityInputError(f"labels {unknown} are not among the model's classes {classes}")
    yi = np.array([index[v] for v in y], dtype=int)
    counts = np.bincount(yi, minlength=len(classes))
    thresholds = np.full(len(classes), np.inf)
    for j in range(len(classes)):
        if counts[j] >= min_class_count:
            thresholds[j] = proba[yi == j, j].mean()
    confident = proba >= thresholds[None, :]
    masked = np.where(confident, proba, -np.inf)
    best = masked.argmax(axis=1)
    has = confident.any(axis=1)
    rows = np.arange(len(y))
    p_given = proba[rows, yi]
    p_best = proba[rows, best]
    judged = np.isfinite(thresholds[yi])
    flagged = np.flatnonzero(has & judged & (best != yi) & (p_best > p_given))
    suspects = [Suspect(int(i), y[i], classes[best[i]], float(p_given[i]), float(p_best[i])) for i in flagged]
    suspects.sort(key=lambda s: (-s.score, s.index))
    return suspects, {c: (float(t) if np.isfinite(t) else None) for c, t in zip(classes, thresholds)}


def fold_proba(estimators, test_indices, X, classes: Sequence[str]) -> np.ndarray:
    """Out-of-fold probabilities from fitted fold models (sklearn `cross_validate(...,
    return_estimator=True, return_indices=True)`: `res["estimator"]`, `res["indices"]["test"]`).

    Columns follow `classes`; a class a fold's model never saw gets probability 0 there.
    """
    classes = [str(c) for c in classes]
    col = {c: j for j, c in enumerate(classes)}
    n = sum(len(t) for t in test_indices)
    out = np.zeros((n, len(classes)))
    for est, idx in zip(estimators, test_indices):
        idx = np.asarray(idx)
        proba = np.asarray(est.predict_proba(X[idx]))
        for k, c in enumerate(est.classes_):
            if str(c) in col:
                out[idx, col[str(c)]] = proba[:, k]
    return out


def out_of_fold_proba(estimator, X, y, *, cv: int = 3, random_state: int = 0):
    """Out-of-fold predicted probabilities (sklearn's cross_val_predict, stratified folds).

    Returns (proba, classes) with columns in `classes` order (sorted labels, as sklearn
    orders them). Folds are capped by the smallest class so every fold can train.
    """
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

    y = np.asarray([str(v) for v in y])
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise QualityInputError("out-of-fold probabilities need labels of at least two classes")
    folds = min(cv, int(counts.min())) if counts.min() >= 2 else cv
    splitter = (StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state) if counts.min() >= 2
                else KFold(n_splits=min(cv, len(y)), shuffle=True, random_state=random_state))
    proba = cross_val_predict(clone(estimator), X, y, cv=splitter, method="predict_proba")
    return proba, [str(c) for c in classes]


# --- reading the labels ---------------------------------------------------------------


def _votes(label_rows) -> dict[int, Counter]:
    per_item: dict[int, dict[str, str]] = defaultdict(dict)
    for item_id, worker, label in label_rows:
        per_item[item_id].setdefault(worker, label)
    return {i: Counter(w.values()) for i, w in per_item.items()}


def _majority(votes: Counter) -> str | None:
    (top, n), *rest = votes.most_common() or [(None, 0)]
    if rest and rest[0][1] == n:
        return None
    return top


# --- the pass the orchestrator runs -------------------------------------------------------


@dataclass
class QualityReport:
    run_id: int
    n_labels: int
    n_items_multi: int
    alpha: float | None
    n_checked: int
    n_suspects: int
    n_ties: int
    thresholds: dict = field(default_factory=dict)

    def summary(self) -> str:
        a = "n/a" if self.alpha is None else f"{self.alpha:.3f}"
        return (f"run {self.run_id}: alpha {a} over {self.n_items_multi} posts with 2+ labels; "
                f"{self.n_suspects} suspect labels of {self.n_checked} checked, {self.n_ties} ties")


def update_quality(engine: Engine | str, run_id: int, oof_proba=None, classes: Sequence[str] | None = None,
                   item_ids: Sequence[int] | None = None, y: Sequence[str] | None = None, *,
                   keep_runs: int = 20, min_class_count: int = MIN_CLASS_COUNT) -> QualityReport:
    """Compute agreement and suspect labels for a model run and store them (one transaction).

    `oof_proba` (n x k), `classes` (k), `item_ids` (n) and `y` (n, the agreed labels the
    model trained on) come from the run's cross-validation; pass None for all four when
    the run had none (oof_proba None: the others are ignored): agreement and ties are still stored. Running it again for the same
    run replaces that run's rows. Keeps the newest `keep_runs` runs' rows.
    """
    engine = make_engine(engine)
    if oof_proba is not None and (classes is None or item_ids is None or y is None):
        raise QualityInputError("oof_proba needs classes, item_ids and y with it")
    rows = store_labels.rows(engine)
    agree = agreement_rows(rows)  # second opinions count in agreement...
    votes = _votes(rows)
    # ...but never decide: a late label disagreeing with the first is no tie to break
    deciding = _votes(store_labels.rows(engine, deciding=True))
    ties = sorted(i for i, v in deciding.items() if sum(v.values()) >= 2 and _majority(v) is None)
    suspects: list[Suspect] = []
    thresholds: dict = {}
    ids: list[int] = []
    n_checked = 0
    if oof_proba is not None:
        ids = [int(i) for i in item_ids]
        if len(ids) != len(y):
            raise QualityInputError(f"{len(ids)} item ids but {len(y)} labels")
        suspects, thresholds = find_suspects(oof_proba, classes, y, min_class_count=min_class_count)
        # two or more labellers agreeing unanimously are not second-guessed by the model
        settled = {i for i, v in votes.items() if len(v) == 1 and sum(v.values()) >= 2}
        suspects = [s for s in suspects if ids[s.index] not in settled]
        n_checked = sum(1 for i in ids if i not in settled)
    alpha = next(r["value"] for r in agree if r["scope"] == "overall" and r["metric"] == "alpha")
    n_multi = next(r["n_items"] for r in agree if r["scope"] == "overall")
    now = utcnow()
    report = QualityReport(run_id=int(run_id), n_labels=len(rows), n_items_multi=n_multi, alpha=alpha,
                           n_checked=n_checked, n_suspects=len(suspects), n_ties=len(ties), thresholds=thresholds)
    suspect_rows = [
        {"run_id": int(run_id), "item_id": ids[s.index], "kind": "model", "given_label": s.given,
         "suggested_label": s.suggested, "given_confidence": s.p_given, "suggested_confidence": s.p_suggested,
         "score": s.score}
        for s in suspects
    ]
    flagged = {r["item_id"] for r in suspect_rows}
    suspect_rows += [
        {"run_id": int(run_id), "item_id": i, "kind": "tie", "given_label": None, "suggested_label": None,
         "given_confidence": None, "suggested_confidence": None, "score": TIE_SCORE}
        for i in ties if i not in flagged
    ]
    store_quality.save(engine, int(run_id), {
        "computed_at": now, "n_labels": len(rows), "n_items_multi": n_multi, "alpha": alpha,
        "n_checked": n_checked, "n_suspects": len(suspects), "n_ties": len(ties), "thresholds": thresholds or None,
    }, agree, suspect_rows, keep_runs=keep_runs)
    return report


# --- reading it back ------------------------------------------------------------------


def latest_agreement(engine: Engine | str) -> list[dict]:
    """The newest stored agreement rows; computed from `labels` now when none are stored."""
    engine = make_engine(engine)
    run = store_quality.latest_run(engine)
    if run is None:
        return agreement_rows(store_labels.rows(engine))
    return store_quality.agreement_of(engine, run)


def item_quality(engine: Engine | str, item_ids: Sequence[int] | None = None) -> dict[int, dict]:
    """Per labelled or suspect post (only those in `item_ids` when given), for export:

    n_labels, agreed_label (strict majority of the labels that decide, second opinions left
    out, else None), agreement (share of the post's labels, second opinions in, equal to its
    commonest label; None with one label), reviews (labels given in
    review), suspect (flagged by the newest quality pass), suspect_kind ('model'|'tie'),
    suggested_label, suspect_score.
    """
    engine = make_engine(engine)
    run = store_quality.latest_run(engine)
    wanted = None if item_ids is None else {int(i) for i in item_ids}
    if wanted is not None and not wanted:
        return {}
    # a batch of ids (export streams in id order) reads only its id range
    lo, hi = (min(wanted), max(wanted)) if wanted else (None, None)
    rows = store_labels.rows(engine, lo, hi)
    deciding = _votes(store_labels.rows(engine, lo, hi, deciding=True))
    reviews = store_labels.review_counts(engine, lo, hi)
    flagged = {} if run is None else store_quality.flagged(engine, run, lo, hi)
    if wanted is not None:
        rows = [r for r in rows if r[0] in wanted]
        flagged = {i: r for i, r in flagged.items() if i in wanted}
    out: dict[int, dict] = {}
    for item_id, v in _votes(rows).items():
        n = sum(v.values())
        out[item_id] = {"n_labels": n, "agreed_label": _majority(deciding.get(item_id, Counter())),
                        "agreement": (v.most_common(1)[0][1] / n) if n >= 2 else None,
                        "reviews": int(reviews.get(item_id, 0)), "suspect": False, "suspect_kind": None,
                        "suggested_label": None, "suspect_score": None}
    for item_id, r in flagged.items():
        entry = out.setdefault(item_id, {"n_labels": 0, "agreed_label": None, "agreement": None,
                                         "reviews": int(reviews.get(item_id, 0))})
        entry.update(suspect=True, suspect_kind=r.kind, suggested_label=r.suggested_label,
                     suspect_score=float(r.score))
    return out
