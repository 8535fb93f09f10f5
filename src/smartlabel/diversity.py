"""Diversity among concurrent labellers: near-duplicates of one uncertain post are
not handed out together.

The queue hands out the highest priority first, so when 16 labellers pop at once
they get the 16 top posts. When those are near-copies of one story (wire
services repeat themselves: earnings tables, price reports, follow-ups), 16
labels teach the model what one would. The orchestrator fixes the order before
it writes a run's priorities, so the queue's hand-out stays one indexed
statement and knows nothing of this:

1. take the `top_k` posts by priority;
2. walk them best first; a post whose TF-IDF cosine similarity to an earlier
   group leader exceeds `threshold` joins that leader's group, otherwise it leads
   a new group (greedy leader clustering: deterministic, O(top_k x groups));
3. hand out round-robin across groups: all leaders in priority order, then every
   group's second post, and so on. The top_k priority *values* are permuted, not
   changed, so the top_k stay above the rest and a post's priority still reads as
   an acquisition score of one of the candidates.

Each candidate's group (the item id of its leader) goes to `predictions.cluster`;
posts outside the top_k get None. The TF-IDF is fitted on the candidates alone
(about 0.1 s for 1,000 posts), so it works whatever model the run trained.

Hook (orchestrator, before `store.predictions.write`):

    priorities, clusters = diversify(open_ids, priorities, lambda ids: store_items.texts(engine, ids),
                                     top_k=settings.diversity_top_k)
    predictions.write(engine, run_id, open_ids, priorities, ..., clusters=clusters)
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

DUPLICATE_COSINE = 0.9


def leader_groups(texts: Sequence[str], threshold: float = DUPLICATE_COSINE) -> tuple[list[int], list[int]]:
    """Greedy leader clustering of `texts` taken in the given order.

    Returns (group, rank): `group[i]` is the position of post i's leader (i itself
    for a leader) and `rank[i]` its place within the group (0 for the leader).
    """
    n = len(texts)
    if n == 0:
        return [], []
    from sklearn.feature_extraction.text import TfidfVectorizer

    try:
        X = TfidfVectorizer(sublinear_tf=True).fit_transform([t or "" for t in texts]).tocsr()
    except ValueError:  # every text empty or stop words only: nothing to compare
        return list(range(n)), [0] * n
    # near-duplicate pairs (j < i), computed in blocks of rows so memory stays O(block x n)
    earlier: list[np.ndarray] = []
    for lo in range(0, n, 1000):
        sims = (X[lo:lo + 1000] @ X.T).toarray()
        for r in range(sims.shape[0]):
            i = lo + r
            earlier.append(np.flatnonzero(sims[r, :i] > threshold))
    group = list(range(n))
    rank = [0] * n
    size = [1] * n
    is_leader = np.zeros(n, dtype=bool)
    for i in range(n):
        cand = earlier[i]
        cand = cand[is_leader[cand]] if cand.size else cand
        if cand.size:
            leader = int(cand[0])  # the best-ranked leader it duplicates
            group[i] = leader
            rank[i] = size[leader]
            size[leader] += 1
        else:
            is_leader[i] = True
    return group, rank


def diversify(item_ids: Sequence[int], priorities: Sequence[float],
              texts: Sequence[str] | Callable[[list[int]], Iterable[str]], *,
              top_k: int = 1000, threshold: float = DUPLICATE_COSINE) -> tuple[np.ndarray, list[int | None]]:
    """Reorder the top_k priorities so near-duplicates are spread apart.

    `texts` is either the model input of every post (aligned with `item_ids`) or a
    function that returns the texts of the ids it is given (only the top_k are read).
    Returns (new priorities, cluster per post). With top_k <= 1 the priorities come
    back unchanged and every cluster is None.
    """
    from smartlabel.errors import QualityInputError

    prio = np.asarray(priorities, dtype=float).copy()
    n = len(prio)
    if len(item_ids) != n or (not callable(texts) and len(texts) != n):
        raise QualityInputError(f"diversify got {len(item_ids)} ids, {n} priorities and "
                                f"{'a function' if callable(texts) else len(texts)} for texts")
    clusters: list[int | None] = [None] * n
    if top_k <= 1 or n == 0:
        return prio, clusters
    key = np.where(np.isnan(prio), -np.inf, prio)
    order = np.argsort(-key, kind="stable")[:top_k]  # best first
    if callable(texts):
        top_texts = list(texts([int(item_ids[i]) for i in order]))
        if len(top_texts) != len(order):
            raise QualityInputError(f"the texts function returned {len(top_texts)} texts for {len(order)} ids")
    else:
        top_texts = [texts[i] for i in order]
    group, rank = leader_groups(top_texts, threshold)
    # round-robin across groups: by rank within group, then by original order
    new_order = sorted(range(len(order)), key=lambda p: (rank[p], p))
    values = prio[order]  # descending
    out = prio.copy()
    for slot, p in enumerate(new_order):
        out[order[p]] = values[slot]
    for p, i in enumerate(order):
        clusters[i] = int(item_ids[order[group[p]]])
    return out, clusters
