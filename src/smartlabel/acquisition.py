"""Acquisition: which unlabelled posts a labeller should see first.

`priorities(kind, proba)` turns a model's class probabilities into one number
per post, HIGHER = ask first (the queue hands out the highest priority first).

Kinds:
- `entropy`   Shannon entropy of the predicted distribution (most confused first).
- `margin`    1 - (p1 - p2): the smaller the gap between the two best classes, the earlier.
- `certainty` 1 - p1: least confident first ("least confidence" sampling).
- `random`    uniform random numbers (the baseline active learning must beat).

We reuse the scoring formulas of `superintendent.acquisition_functions` when
superintendent is installed (it is on the labelling page's image, maybe not on
the orchestrator's), through the raw functions its decorator wraps
(`fn.__wrapped__`): they return scores where LOWER is handed out first, so we
negate them. We do not call the wrapped functions themselves because they
return ranks (`argsort().argsort()`) *within the array they are given* and
shuffle a share of them with numpy's global RNG: ranks of two scoring batches
cannot be compared, and a silent shuffle would hide which hand-outs were random.
Here exploration is the queue's job (SHUFFLE_PROP of pops are random and marked
`random`, which makes them an unbiased audit sample). Without superintendent
the same formulas are computed by the fallbacks below (a test checks they agree).

`top_two(proba, classes)` gives the best and second-best label with their
probabilities, for the "why this post" line on the labelling page.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

KINDS = ("entropy", "margin", "certainty", "random")


# --- our own formulas (same maths as superintendent's raw functions) ----------------


def _neg_entropy(proba: np.ndarray) -> np.ndarray:
    """-H(p) per row, natural log, rows normalised (as scipy.stats.entropy does)."""
    p = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-300, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), 0.0)
    return (p * logs).sum(axis=1)


def _margin(proba: np.ndarray) -> np.ndarray:
    s = np.sort(proba, axis=1)
    return s[:, -1] - s[:, -2]


def _certainty(proba: np.ndarray) -> np.ndarray:
    return proba.max(axis=-1)


_FALLBACK: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "entropy": _neg_entropy,
    "margin": _margin,
    "certainty": _certainty,
}


def _lower_first_functions() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """superintendent's raw scoring functions (lower = first), else our fallbacks."""
    try:
        from superintendent import acquisition_functions as sf  # heavy import: only when asked
    except Exception:  # not installed on this image (or its widgets fail to import)
        return dict(_FALLBACK)
    found = {}
    for name, fallback in _FALLBACK.items():
        fn = getattr(getattr(sf, name, None), "__wrapped__", None)
        found[name] = fn if callable(fn) else fallback
    return found


_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None


def _functions() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    global _FUNCTIONS
    if _FUNCTIONS is None:
        _FUNCTIONS = _lower_first_functions()
    return _FUNCTIONS


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        from smartlabel.errors import ConfigError

        raise ConfigError(f"unknown acquisition {kind!r}; use one of {', '.join(KINDS)}")
    return kind


def priorities(kind: str, proba: np.ndarray, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """One float per row of `proba` (n_posts x n_classes): HIGHER = hand out first.

    Values of different calls are comparable (no per-call ranking), so a pool
    can be scored in batches. `rng` (a numpy Generator or a seed) is used by
    `random` only.
    """
    check_kind(kind)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2:
        raise ValueError(f"proba must be 2-D (posts x classes), got shape {proba.shape}")
    n = proba.shape[0]
    if kind == "random":
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        return gen.random(n)
    if n == 0:
        return np.zeros(0)
    if proba.shape[1] < 2:  # one class: every post is equally (un)informative
        return np.zeros(n)
    raw = np.asarray(_functions()[kind](proba), dtype=np.float64)
    if kind == "entropy":
        return -raw  # raw is -H: H itself, >= 0
    return 1.0 - raw  # margin and certainty lie in [0, 1]: 1 - x is >= 0 and higher = first


def top_two(proba: np.ndarray, classes: Sequence[str]):
    """(label1, p1, label2, p2) arrays: the best and second-best class of each row.

    With a single class, label2 is None and p2 is 0.
    """
    proba = np.asarray(proba, dtype=np.float64)
    classes = np.asarray(list(classes), dtype=object)
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise ValueError(f"proba has shape {proba.shape} but there are {len(classes)} classes")
    n = proba.shape[0]
    if n == 0:
        empty = np.zeros(0)
        return np.array([], dtype=object), empty, np.array([], dtype=object), empty
    order = np.argsort(-proba, axis=1, kind="stable")
    rows = np.arange(n)
    label1 = classes[order[:, 0]]
    p1 = proba[rows, order[:, 0]]
    if proba.shape[1] < 2:
        return label1, p1, np.full(n, None, dtype=object), np.zeros(n)
    label2 = classes[order[:, 1]]
    p2 = proba[rows, order[:, 1]]
    return label1, p1, label2, p2
