"""Metrics of scored examples (AUC, logloss, GAUC), from labels and scores in numpy.

One implementation for every caller: the experiment reports, the studies and
the tests all import these.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.stats

# Keras' BinaryCrossentropy clips probabilities to [eps, 1 - eps] with this eps.
_EPSILON = 1e-7


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney U) formula; ties count one half.

    NaN when only one class is present.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    # Average ranks over tied scores.
    ranks = scipy.stats.rankdata(scores, method="average")
    rank_sum = ranks[labels].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def logloss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean binary cross-entropy, probabilities clipped like Keras."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _EPSILON, 1.0 - _EPSILON)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))


def gauc(labels: np.ndarray, scores: np.ndarray, users: Sequence) -> tuple[float, int]:
    """Group AUC (Zhou et al. 2018, DIN, Eq. 7): per-user AUC averaged over users.

    Each user's AUC is weighted by the user's number of test instances, as in
    DIN; users whose test instances are all of one class have no AUC and are
    left out. Returns `(gauc, users_counted)`.
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores)
    users = np.asarray(users)
    if not (labels.shape == scores.shape == users.shape):
        raise ValueError(
            f"labels, scores and users differ in shape: {labels.shape}, {scores.shape}, "
            f"{users.shape}"
        )
    order = np.argsort(users, kind="mergesort")
    users_sorted = users[order]
    boundaries = np.flatnonzero(np.r_[True, users_sorted[1:] != users_sorted[:-1], True])
    total, weight, counted = 0.0, 0, 0
    for start, end in zip(boundaries[:-1], boundaries[1:], strict=True):
        index = order[start:end]
        value = auc(labels[index], scores[index])
        if np.isnan(value):
            continue
        total += value * index.size
        weight += index.size
        counted += 1
    return (total / weight if weight else float("nan")), counted


def _finite(value: float) -> float | None:
    """None for NaN (e.g. AUC of one class): JSON has no NaN."""
    return None if np.isnan(value) else value


def score_metrics(labels: np.ndarray, scores: np.ndarray, users: Sequence) -> dict:
    """Ranking metrics of any score, probability or not: AUC and GAUC only.

    For scores that are not click probabilities (counts, similarities, 0/1
    rules) a logloss would be meaningless, so none is given.
    """
    value, counted = gauc(labels, scores, users)
    return {
        "auc": _finite(auc(labels, scores)),
        "gauc": _finite(value),
        "gauc_users": counted,
        "examples": int(np.asarray(labels).size),
        "mean_label": float(np.mean(labels)),
    }


def all_metrics(labels: np.ndarray, probabilities: np.ndarray, users: Sequence) -> dict:
    """`score_metrics` of click probabilities plus their logloss and mean."""
    ranking = score_metrics(labels, probabilities, users)
    return {
        "auc": ranking["auc"],
        "logloss": logloss(labels, probabilities),
        "gauc": ranking["gauc"],
        "gauc_users": ranking["gauc_users"],
        "examples": ranking["examples"],
        "mean_label": ranking["mean_label"],
        "mean_prediction": float(np.mean(probabilities)),
    }
