"""Acquisition: which unlabelled posts a labeller should see first.

`STRATEGIES` is the registry: name -> function(proba) -> one score per post,
HIGHER = handed out first (the queue hands out the highest priority first).
`proba` is a model's class probabilities, posts x classes.

- `margin`    1 - (p1 - p2): the smaller the gap between the two best classes, the earlier
              (the default, `DEFAULT`).
- `entropy`   Shannon entropy of the predicted distribution (most confused first). With many
              classes its top posts are those spread over all of them: often outliers no class
              explains (20 Newsgroups: below random sampling from 300 labels, where margin
              stayed above it; BENCHMARKS.md, "Issue 15"). With two classes entropy, margin and
              certainty rank posts the same.
- `certainty` 1 - p1: least confident first ("least confidence" sampling).

and `random` (uniform random numbers from the caller's generator: the baseline
active learning must beat; not a function of the probabilities).

Adding a strategy is one entry in `STRATEGIES`: the `ACQUISITION` setting,
`smartlabel simulate --strategy` and `priorities()` all take their names from
`names()`.

These are the formulas of superintendent 0.6.0's `entropy`, `margin` and
`certainty` (the article's library), with the sign turned round: its raw
functions return scores where LOWER is handed out first (a test checks that both
rank posts the same). Unlike its wrapped functions, which return ranks
(`argsort().argsort()`) within the array they are given and shuffle a share of
them, these are plain scores: values of two scoring batches can be compared, so a
pool can be scored in batches. Exploration is the queue's job (SHUFFLE_PROP of
pops are random and marked `random`, which makes them an unbiased audit sample).

`top_two(proba, classes)` gives the best and second-best label with their
probabilities, for the "why this post" line on the labelling page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:  # NumPy is imported where it is used: settings check names here, and the
    import numpy as np  # labelling page's kernel (which loads settings) never needs NumPy

RANDOM = "random"
DEFAULT = "margin"  # ACQUISITION's default (and `smartlabel simulate --strategy`'s)


def entropy(proba: np.ndarray) -> np.ndarray:
    """H(p) per row, natural log, rows normalised to sum to 1 (as scipy.stats.entropy does)."""
    import numpy as np

    p = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-300, None)
    logs = np.log(np.where(p > 0, p, 1.0))  # 0 log 0 = 0
    return -(p * logs).sum(axis=1)


def margin(proba: np.ndarray) -> np.ndarray:
    """1 - (p1 - p2), p1 and p2 the two largest probabilities of each row."""
    import numpy as np

    s = np.sort(proba, axis=1)
    return 1.0 - (s[:, -1] - s[:, -2])


def certainty(proba: np.ndarray) -> np.ndarray:
    """1 - p1: the less sure the model is of its best class, the earlier."""
    return 1.0 - proba.max(axis=1)


STRATEGIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "entropy": entropy,
    "margin": margin,
    "certainty": certainty,
}


def names() -> list[str]:
    """Every strategy name, `random` last."""
    return [*STRATEGIES, RANDOM]


def check(name: str) -> str:
    """`name` if it is a strategy, else ConfigError naming the choices."""
    if name not in STRATEGIES and name != RANDOM:
        from smartlabel.errors import ConfigError

        raise ConfigError(f"unknown acquisition {name!r}; use one of {', '.join(names())}")
    return name


def priorities(name: str, proba: np.ndarray, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """One float per row of `proba` (n_posts x n_classes): HIGHER = hand out first.

    Values of different calls are comparable (no per-call ranking), so a pool
    can be scored in batches. `rng` (a numpy Generator or a seed) is used by
    `random` only. With a single class every post scores 0.
    """
    import numpy as np

    check(name)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2:
        raise ValueError(f"proba must be 2-D (posts x classes), got shape {proba.shape}")
    n = proba.shape[0]
    if name == RANDOM:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        return gen.random(n)
    if n == 0 or proba.shape[1] < 2:  # one class: every post is equally (un)informative
        return np.zeros(n)
    return np.asarray(STRATEGIES[name](proba), dtype=np.float64)


def top_two(proba: np.ndarray, classes: Sequence[str]):
    """(label1, p1, label2, p2) arrays: the best and second-best class of each row.

    With a single class, label2 is None and p2 is 0.
    """
    import numpy as np

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
