"""Full-corpus retrieval metrics: HR@K, NDCG@K and Recall@K.

Every retriever in `sitn_tf.retrieval` is evaluated the same way, so that
their numbers are comparable:

* **Full corpus.** Each query is scored against every candidate item id
  `1..num_items`; id 0 is padding and never ranked.
* **Already-clicked items are masked.** The items of the query's own
  history are removed from the ranking (score -inf) *except the target
  itself*: a next-item retriever should not spend its top-K on what the user
  has just clicked, but a genuine repeat click is still counted if the model
  ranks it. This is the convention of ComiRec/TiMiRec's full-ranking
  evaluation (ReChorus), and it is applied identically to every model and to
  the popularity baseline.
* **Ties count against the target.** The 0-based rank of the target is the
  number of other unmasked items whose score is >= the target's score. A
  model that gives every item the same score therefore ranks the target last,
  not first.

With one target per query (leave-last-out), HR@K = Recall@K = 1[rank < K]
and NDCG@K = 1[rank < K] / log2(rank + 2) (the ideal DCG is 1).
`recall_at_k` handles several targets per query (for retrievers evaluated on
a set of held-out clicks). `head_items` and `sliced_recall` split Recall@K by
the target's training popularity (head = the top 20% of the corpus by
training clicks by default, tail = the rest).

Only numpy is used here, so the metrics can be checked without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

CUTOFFS: tuple[int, ...] = (5, 10, 20)


def mask_history(scores: np.ndarray, histories: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Scores with padding (id 0) and each row's history items, except its target, at -inf.

    Args:
        scores: `(batch, num_items + 1)` float, column `j` scores item id `j`.
        histories: `(batch, seq_len)` int item ids, 0 = padding. Ids beyond
            the score columns (e.g. source-domain items of a cross-domain
            history) are ignored.
        targets: `(batch,)` int target ids.

    Returns:
        A float64 copy of `scores` with the masked entries at -inf.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    histories = np.asarray(histories)
    targets = np.asarray(targets)
    batch, width = scores.shape
    rows = np.repeat(np.arange(batch), histories.shape[1])
    cols = histories.reshape(-1)
    keep = (cols > 0) & (cols < width) & (cols != np.repeat(targets, histories.shape[1]))
    scores[rows[keep], cols[keep]] = -np.inf
    scores[:, 0] = -np.inf
    return scores


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each target among the finite-scored items, ties against it.

    Args:
        scores: `(batch, num_items + 1)`, already masked (-inf = not ranked).
        targets: `(batch,)` int, each with a finite score.

    Returns:
        `(batch,)` int64: the number of *other* items with a score >= the
        target's.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets, dtype=np.int64)
    target_scores = scores[np.arange(len(targets)), targets]
    if not np.all(np.isfinite(target_scores)):
        raise ValueError("a target has a non-finite score (masked or padding id 0).")
    ahead = (scores >= target_scores[:, None]).sum(axis=1) - 1  # minus the target itself
    return ahead.astype(np.int64)


def popularity_ranks(
    train_targets: np.ndarray,
    histories: np.ndarray,
    targets: np.ndarray,
    num_candidates: int,
    batch_size: int = 512,
) -> np.ndarray:
    """0-based ranks of `targets` when every query ranks items by their train clicks.

    The simple baseline of every retrieval report: the score of item `j` is
    its count in `train_targets`, the same for all queries; each query's
    history is masked (`mask_history`) and ties count against the target.
    Queries are scored `batch_size` at a time, so a large corpus never
    needs the whole `(queries, num_candidates)` matrix at once.
    """
    counts = np.bincount(train_targets, minlength=num_candidates).astype(np.float64)
    ranks = [np.zeros(0, np.int64)]
    for start in range(0, len(targets), batch_size):
        rows = slice(start, start + batch_size)
        scores = np.broadcast_to(counts, (len(targets[rows]), num_candidates))
        ranks.append(
            target_ranks(mask_history(scores, histories[rows], targets[rows]), targets[rows])
        )
    return np.concatenate(ranks)


def hit_rate(ranks: np.ndarray, k: int) -> float:
    """HR@K: the share of queries whose target ranks in the top K."""
    ranks = np.asarray(ranks)
    return float(np.mean(ranks < k)) if len(ranks) else 0.0


def ndcg(ranks: np.ndarray, k: int) -> float:
    """NDCG@K with one relevant item: mean of 1[rank < K] / log2(rank + 2)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if not len(ranks):
        return 0.0
    gains = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    return float(np.mean(gains))


def recall_at_k(top_ids: np.ndarray, relevant: Sequence[Iterable[int]], k: int) -> float:
    """Recall@K over several relevant items per query.

    Args:
        top_ids: `(batch, >= K)` retrieved ids, best first.
        relevant: per query, the set of held-out ids (queries with none are
            skipped).

    Returns:
        Mean over queries of |top-K ∩ relevant| / |relevant|.
    """
    values = []
    for row, targets in zip(np.asarray(top_ids)[:, :k], relevant, strict=True):
        targets = set(int(t) for t in targets)
        if targets:
            values.append(len(targets.intersection(int(i) for i in row)) / len(targets))
    return float(np.mean(values)) if values else 0.0


def summarize(ranks: np.ndarray, cutoffs: Sequence[int] = CUTOFFS) -> dict[str, float]:
    """`{"hr@K": ..., "ndcg@K": ...}` for each cut-off."""
    out = {}
    for k in cutoffs:
        out[f"hr@{k}"] = hit_rate(ranks, k)
    for k in cutoffs:
        out[f"ndcg@{k}"] = ndcg(ranks, k)
    return out


def head_items(train_targets: np.ndarray, num_candidates: int, share: float = 0.2) -> np.ndarray:
    """`(num_candidates,)` bool: the *head*, the top `share` of the corpus by training clicks.

    Candidates `1..num_candidates-1` are ordered by how often they are a
    training target (ties: lower id first) and the first
    `round(share * (num_candidates - 1))` are the head; every other candidate
    (including never-clicked ones) is the *tail*. Entry 0 (padding) is False.
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"`share` must be in (0, 1), got {share!r}.")
    counts = np.bincount(np.asarray(train_targets, np.int64), minlength=num_candidates)
    ids = np.arange(1, num_candidates)
    order = ids[np.lexsort((ids, -counts[1:]))]
    head = np.zeros(num_candidates, dtype=bool)
    head[order[: int(round(share * len(ids)))]] = True
    return head


def sliced_recall(
    ranks: np.ndarray, targets: np.ndarray, head: np.ndarray, cutoffs: Sequence[int] = (10, 50)
) -> dict[str, float]:
    """Recall@K over all queries and over those whose target is in the head / the tail.

    With one target per query Recall@K = HR@K. Keys: `recall@K`,
    `recall@K_head`, `recall@K_tail` (0.0 for an empty slice), and
    `queries_head`, `queries_tail`, the slice sizes.
    """
    ranks = np.asarray(ranks)
    in_head = np.asarray(head)[np.asarray(targets)]
    out: dict[str, float] = {}
    for k in cutoffs:
        out[f"recall@{k}"] = hit_rate(ranks, k)
        out[f"recall@{k}_head"] = hit_rate(ranks[in_head], k)
        out[f"recall@{k}_tail"] = hit_rate(ranks[~in_head], k)
    out["queries_head"] = int(in_head.sum())
    out["queries_tail"] = int((~in_head).sum())
    return out
