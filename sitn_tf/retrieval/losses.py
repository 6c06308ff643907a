"""TiMiRec's losses as plain functions of tensors (Wang et al. CIKM 2022).

Kept apart from the model so that each equation can be checked against a
numpy reference on its own.
"""

from __future__ import annotations

from keras import ops

# Logit given to padding id 0 so that it never takes part in a softmax; finite
# (not -inf) so that 0 * logit stays 0 in the cross-entropy.
_MASKED_LOGIT = -1e9


def candidate_logits(queries, item_table):
    """`(batch, D) x (C, D) -> (batch, C)` dot products, padding column 0 masked."""
    logits = ops.matmul(queries, ops.transpose(item_table))
    padding = ops.arange(ops.shape(logits)[-1]) == 0
    return ops.where(padding[None, :], ops.full_like(logits, _MASKED_LOGIT), logits)


def next_item_loss(queries, item_table, targets):
    """Eq. 10: `L_rec = -log( exp(v . e_t) / sum_j exp(v . e_j) )` per row.

    A full softmax over every candidate id `1..C-1` (no sampling).

    Args:
        queries: `(batch, D)`, the user vector `v` (Eq. 2 or Eq. 4).
        item_table: `(C, D)` candidate embeddings, row 0 = padding.
        targets: `(batch,)` int target ids in `1..C-1`.

    Returns:
        `(batch,)` losses.
    """
    logits = candidate_logits(queries, item_table)
    return ops.sparse_categorical_crossentropy(targets, logits, from_logits=True)


def best_matching_interest(interests, target_embeddings):
    """Eq. 2: `v = V[:, argmax_k v_k^T e_t]`, the interest closest to the target.

    Args:
        interests: `(batch, K, D)`.
        target_embeddings: `(batch, D)`.

    Returns:
        `(batch, D)`. The argmax is not differentiable; gradients reach the
        chosen interest only.
    """
    affinity = ops.einsum("bkd,bd->bk", interests, target_embeddings)
    chosen = ops.one_hot(ops.argmax(affinity, axis=-1), ops.shape(interests)[1])
    return ops.einsum("bk,bkd->bd", ops.cast(chosen, interests.dtype), interests)


def mix_interests(interests, intent_logits):
    """Eq. 4: `v = V softmax(z^q)`, `(batch, K, D), (batch, K) -> (batch, D)`."""
    return ops.einsum("bk,bkd->bd", ops.softmax(intent_logits, axis=-1), interests)


def _l2_normalize(x, axis=-1):
    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=axis, keepdims=True), 1e-12))


def teacher_distribution(interests, target_embeddings, temperature: float, stop_gradient=True):
    """Eqs. 5, 7: `p = softmax(cos(v_k, e_t) / T)` over the K interests.

    Under `stop_gradient` (Eq. 9's `sg[p]`) no gradient flows back into the
    interests or the target embedding through `p`.

    Returns:
        `(batch, K)` probabilities.
    """
    cosine = ops.einsum("bkd,bd->bk", _l2_normalize(interests), _l2_normalize(target_embeddings))
    p = ops.softmax(cosine / temperature, axis=-1)
    return ops.stop_gradient(p) if stop_gradient else p


def distillation_loss(teacher, intent_logits, temperature: float):
    """Eq. 9: `L_distill = -p^T log q` with `q = softmax(z^q / T)` (Eq. 6).

    Args:
        teacher: `(batch, K)` the soft label `p` (already stop-gradient'ed
            when it should be; see `teacher_distribution`).
        intent_logits: `(batch, K)` the predictor's `z^q`.

    Returns:
        `(batch,)` losses.
    """
    log_q = ops.log_softmax(intent_logits / temperature, axis=-1)
    return -ops.sum(teacher * log_q, axis=-1)


def total_loss(rec_loss, distill_loss, temperature: float):
    """Eq. 11: `L = L_rec + T^2 L_distill`.

    The `T^2` keeps the distillation gradients at the same scale whatever
    `T` (the soft-target gradients shrink as `1 / T^2`, Hinton et al. 2015).
    """
    return rec_loss + (temperature**2) * distill_loss
