"""Training with early stopping on the eval split, and full-corpus evaluation."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from sitn_tf.retrieval import metrics
from sitn_tf.retrieval.data import Split
from sitn_tf.retrieval.timirec import HISTORY, TARGET

logger = logging.getLogger(__name__)


def dataset(split: Split, batch_size: int, seed: int, shuffle: bool = True) -> tf.data.Dataset:
    """`{"history", "target"}` batches of a split (reshuffled each epoch)."""
    ds = tf.data.Dataset.from_tensor_slices({HISTORY: split.histories, TARGET: split.targets})
    if shuffle:
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(2)


def target_ranks(model, split: Split, batch_size: int = 512, score=None) -> np.ndarray:
    """0-based full-corpus ranks of the split's targets under `model.query_scores`.

    History items other than the target are masked (`metrics.mask_history`).
    `score` is an optional compiled `query_scores`, reused across calls.
    """
    score = score or tf.function(model.query_scores, reduce_retracing=True)
    ranks = []
    for start in range(0, len(split), batch_size):
        histories = split.histories[start : start + batch_size]
        targets = split.targets[start : start + batch_size]
        scores = score(tf.constant(histories)).numpy()
        ranks.append(
            metrics.target_ranks(metrics.mask_history(scores, histories, targets), targets)
        )
    return np.concatenate(ranks) if ranks else np.zeros(0, np.int64)


def evaluate(
    model,
    split: Split,
    batch_size: int = 512,
    score=None,
    cutoffs: Sequence[int] = metrics.CUTOFFS,
) -> dict[str, float]:
    """HR@K and NDCG@K (K in `cutoffs`, by default 5/10/20) of `model` on `split`."""
    return metrics.summarize(target_ranks(model, split, batch_size, score), cutoffs)


def fit(
    model: keras.Model,
    train: Split,
    eval_split: Split,
    *,
    learning_rate: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    seed: int,
    monitor: str = "ndcg@10",
    cutoffs: Sequence[int] = metrics.CUTOFFS,
) -> dict:
    """Train until `monitor` on `eval_split` stops improving; keep the best epoch's weights.

    Each epoch is one pass over `train` (a fresh Adam optimizer per call, as
    each phase of Algorithm 1 starts one). After `patience` epochs without a
    new best, training stops and the best weights are restored.

    Returns:
        `{"best_epoch", "epochs_run", "stopped_early", "best_eval", "history",
        "train_seconds"}`; `history` holds per epoch the logged losses and the
        eval metrics. `stopped_early` is False when the best epoch is the
        last one allowed (`max_epochs` was binding).
    """
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    data = dataset(train, batch_size, seed)
    score = tf.function(model.query_scores, reduce_retracing=True)
    best, best_epoch, best_weights, history = -np.inf, 0, model.get_weights(), []
    start = time.perf_counter()
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        logs = model.fit(data, epochs=1, verbose=0).history
        scores = evaluate(model, eval_split, score=score, cutoffs=cutoffs)
        row = {"epoch": epoch, **{k: float(v[-1]) for k, v in logs.items()}, **scores}
        history.append(row)
        logger.info("epoch %d %s", epoch, {k: round(v, 4) for k, v in row.items()})
        if scores[monitor] > best:
            best, best_epoch, best_weights = scores[monitor], epoch, model.get_weights()
        elif epoch - best_epoch >= patience:
            break
    model.set_weights(best_weights)
    return {
        "best_epoch": best_epoch,
        "epochs_run": epoch,
        "stopped_early": best_epoch < epoch,
        "best_eval": history[best_epoch - 1] if best_epoch else None,
        "history": history,
        "train_seconds": time.perf_counter() - start,
    }
