"""The `retrieve` serving contract shared by every retriever of `sitn_tf.retrieval`.

A *retriever* is any object with

* `num_candidates` (int): the corpus is item ids `1..num_candidates-1`
  (0 is padding), and
* `query_scores(history) -> (batch, num_candidates)`: a score for every
  candidate given a `(batch, n)` int history, oldest first, right-padded
  with 0.

`TiMiRec` (both phases) and `GRU4Rec` are retrievers; a two-tower model
fits by returning `query_tower(history) @ item_table^T`.

`export_retriever` saves it as a SavedModel with one signature, `retrieve`:

    inputs   history         int64 (batch, n)  item ids, oldest first, right-padded
             history_length  int64 (batch,)    real items per row; positions at or
                                               beyond it are ignored whatever they hold
    outputs  item_ids        int64 (batch, k)  the top-k candidate ids, best first
             scores          float32 (batch, k)

The top-k are found by brute force over all candidates. Padding id 0 and the
ids of the history itself are never returned (the same masking as
`sitn_tf.retrieval.metrics`, where the target is unknown at serving time).
The retrieved ids feed the SITN ranker's candidate scoring.
"""

from __future__ import annotations

import tensorflow as tf

from sitn_tf.checks import check_int

SIGNATURE = "retrieve"


def _retrieve(retriever, history, history_length, k: int, mask_history: bool):
    history = tf.cast(history, tf.int64)
    positions = tf.range(tf.shape(history, out_type=tf.int64)[1], dtype=tf.int64)
    valid = positions[None, :] < tf.cast(history_length, tf.int64)[:, None]
    ids = tf.where(valid, history, tf.zeros_like(history))
    scores = tf.cast(retriever.query_scores(tf.cast(ids, tf.int32)), tf.float32)
    num_candidates = retriever.num_candidates
    lowest = tf.fill(tf.shape(scores), tf.constant(-float("inf"), tf.float32))
    masked = tf.range(num_candidates, dtype=tf.int64)[None, :] == 0
    if mask_history:
        # (row, id) pairs of the history that are candidates, scattered to True.
        pairs = tf.where((ids > 0) & (ids < num_candidates))
        clicked = tf.scatter_nd(
            tf.stack([pairs[:, 0], tf.gather_nd(ids, pairs)], axis=1),
            tf.ones(tf.shape(pairs)[:1], tf.int32),
            tf.shape(scores, out_type=tf.int64),
        )
        masked = masked | (clicked > 0)
    scores = tf.where(masked, lowest, scores)
    top = tf.math.top_k(scores, k=tf.minimum(k, num_candidates - 1))
    return {"item_ids": tf.cast(top.indices, tf.int64), "scores": top.values}


class RetrieveModule(tf.Module):
    """Wraps a retriever with the `retrieve` signature (see the module docstring).

    Args:
        retriever: a model with `num_candidates` and `query_scores`.
        k: how many ids to return (at most `num_candidates - 1`).
        mask_history: drop the history's own ids from the results.
    """

    def __init__(self, retriever, k: int = 100, mask_history: bool = True):
        super().__init__(name="retrieve_module")
        check_int("k", k, minimum=1)
        if not hasattr(retriever, "query_scores") or not hasattr(retriever, "num_candidates"):
            raise ValueError(
                "`retriever` must have `query_scores(history)` and `num_candidates`, "
                f"got {type(retriever).__name__}."
            )
        self.retriever = retriever
        self.k = k
        self.mask_history = bool(mask_history)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int64, name="history"),
            tf.TensorSpec([None], tf.int64, name="history_length"),
        ]
    )
    def retrieve(self, history, history_length):
        return _retrieve(self.retriever, history, history_length, self.k, self.mask_history)


def export_retriever(retriever, path: str, k: int = 100, mask_history: bool = True) -> str:
    """Save `retriever` as a SavedModel at `path` with the `retrieve` signature."""
    module = RetrieveModule(retriever, k=k, mask_history=mask_history)
    tf.saved_model.save(module, str(path), signatures={SIGNATURE: module.retrieve})
    return str(path)
