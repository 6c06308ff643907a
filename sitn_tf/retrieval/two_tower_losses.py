"""Two-tower retrieval losses of Yao et al., "Self-supervised Learning for
Large-scale Item Recommendations" (CIKM 2021), as plain functions of tensors.

* `in_batch_softmax_loss`: the main task, a batch softmax with temperature
  and the logQ correction of Yi et al. (RecSys 2019), accidental hits masked.
* `contrastive_loss`: the paper's self-supervised loss `L_self`.
* `spread_out_loss`: the global orthogonal regulariser of Zhang et al.
  (ICCV 2017), the paper's "SO" baseline.

Kept apart from the model so that each equation can be checked against a
numpy reference on its own.
"""

from __future__ import annotations

import numpy as np
from keras import ops

# Logit given to masked entries; finite (not -inf) so that 0 * logit stays 0
# in the cross-entropy.
_MASKED_LOGIT = -1e9


def item_log_probabilities(targets: np.ndarray, num_candidates: int) -> np.ndarray:
    """`log p(x_j)`, the logQ correction's sampling probability, per candidate id.

    In an in-batch softmax the negatives of a query are the other targets of
    its batch, so candidate `j` is "sampled" with the probability that a batch
    slot holds it. Batches are drawn uniformly from the training stream, so
    that probability is `p(x_j) = c_j / N`, with `c_j` the number of training
    instances whose target is `j` and `N` the number of instances. (Yi et al.
    estimate it online with a hashed streaming counter; with a fixed training
    set the exact count is available.) A candidate never clicked in training
    never appears in a batch; it gets `0.5 / N`, below every seen item, so
    that the table holds no `-inf`.

    Args:
        targets: `(N,)` int training target ids in `1..num_candidates-1`.
        num_candidates: size of the id space, padding id 0 included.

    Returns:
        `(num_candidates,)` float32 log-probabilities (entry 0 is unused).
    """
    targets = np.asarray(targets, dtype=np.int64)
    if len(targets) == 0:
        raise ValueError("`targets` must hold at least one training target.")
    if targets.min() < 1 or targets.max() >= num_candidates:
        raise ValueError(
            f"`targets` must be ids in 1..{num_candidates - 1}, "
            f"got the range {targets.min()}..{targets.max()}."
        )
    counts = np.bincount(targets, minlength=num_candidates).astype(np.float64)
    counts[counts == 0] = 0.5
    return np.log(counts / len(targets)).astype(np.float32)


def _l2_normalize(x, axis=-1):
    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=axis, keepdims=True), 1e-12))


def in_batch_softmax_loss(queries, items, item_ids, log_q, temperature: float):
    """The main task's batch softmax with logQ correction (Yao et al.; Yi et al. 2019).

    For query `i` the logits over the batch's items are

        s_c(q_i, x_j) = s(q_i, x_j) / tau - log p(x_j),

    with `s` the dot product, and the loss is
    `-log( exp(s_c(q_i, x_i)) / sum_j exp(s_c(q_i, x_j)) )`. Subtracting
    `log p(x_j)` removes the popularity bias of in-batch negatives (popular
    items are over-represented among them). An *accidental hit* is a
    column `j != i` whose item id equals `item_ids[i]`: it is the positive
    itself, so it is removed from the negatives.

    Args:
        queries: `(B, D)` query embeddings.
        items: `(B, D)` item embeddings, row `i` the positive of query `i`.
        item_ids: `(B,)` int ids of `items`.
        log_q: `(B,)` `log p(x_j)` of each row's item.
        temperature: `tau > 0`.

    Returns:
        `(B,)` losses.
    """
    logits = ops.matmul(queries, ops.transpose(items)) / temperature
    logits = logits - ops.cast(log_q, logits.dtype)[None, :]
    ids = ops.reshape(item_ids, (-1,))
    batch = ops.shape(ids)[0]
    diagonal = ops.eye(batch, dtype="bool")
    hits = ops.logical_and(ops.equal(ids[:, None], ids[None, :]), ops.logical_not(diagonal))
    logits = ops.where(hits, ops.full_like(logits, _MASKED_LOGIT), logits)
    return ops.sparse_categorical_crossentropy(ops.arange(batch), logits, from_logits=True)


def contrastive_loss(view_a, view_b, temperature: float):
    """`L_self` of Yao et al.: InfoNCE between two views of each item.

    With `z_i`, `z'_i` the L2-normalised embeddings of the two augmented views
    of item `i` of a batch of `N` distinct items,

        L_self = -1/N sum_i log( exp(s(z_i, z'_i) / tau) / sum_j exp(s(z_i, z'_j) / tau) ),

    the other items' second views being the negatives. The inputs are
    normalised here, so `s` is the cosine similarity.

    Args:
        view_a: `(N, D)` first views.
        view_b: `(N, D)` second views, row `i` the same item as `view_a[i]`.
        temperature: `tau > 0`.

    Returns:
        `(N,)` losses.
    """
    logits = ops.matmul(_l2_normalize(view_a), ops.transpose(_l2_normalize(view_b)))
    labels = ops.arange(ops.shape(logits)[0])
    return ops.sparse_categorical_crossentropy(labels, logits / temperature, from_logits=True)


def spread_out_loss(embeddings, item_ids=None):
    """The global orthogonal regulariser (Zhang et al. 2017), the paper's "SO".

    For L2-normalised embeddings `p_i` of dimension `d`, with `M1` the mean and
    `M2` the mean square of `p_i^T p_j` over pairs of different items,

        L_gor = M1^2 + max(0, M2 - 1/d).

    It pushes the embeddings of unrelated items to be spread out like random
    points on the sphere (for which `M1 = 0`, `M2 = 1/d`). Pairs with the same
    id (the same item twice in a batch) are left out.

    Args:
        embeddings: `(B, d)`, already L2-normalised.
        item_ids: optional `(B,)` ids; without them only `i != j` is required.

    Returns:
        A scalar.
    """
    batch = ops.shape(embeddings)[0]
    dots = ops.matmul(embeddings, ops.transpose(embeddings))
    pairs = ops.logical_not(ops.eye(batch, dtype="bool"))
    if item_ids is not None:
        ids = ops.reshape(item_ids, (-1,))
        pairs = ops.logical_and(pairs, ops.not_equal(ids[:, None], ids[None, :]))
    weight = ops.cast(pairs, dots.dtype)
    count = ops.maximum(ops.sum(weight), 1.0)
    m1 = ops.sum(dots * weight) / count
    m2 = ops.sum(ops.square(dots) * weight) / count
    dim = ops.cast(ops.shape(embeddings)[-1], dots.dtype)
    return ops.square(m1) + ops.maximum(m2 - 1.0 / dim, 0.0)
