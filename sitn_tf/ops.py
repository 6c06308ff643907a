"""Functional core of SITN: the paper's equations as backend-agnostic `keras.ops`.

Each function's docstring names the equation of Sun et al., "Self-Supervised
Interest Transfer Network via Prototypical Contrastive Learning for
Recommendation" (AAAI 2023), that it computes; the one table from equations
to code is the README's "Where each equation lives".

All losses are returned per example (no reduction); callers (the models)
reduce them so that padding rows and sample weights are handled in one place.

Similarity: the paper uses the dot product. `similarity="cosine"`
L2-normalises both operands first. Everything here works on unnormalised
inputs; only the similarity scores see the normalisation (e.g. Eq. 5 sums
the raw instances `p_i`).
"""

from __future__ import annotations

import numbers

from keras import ops

SIMILARITIES = ("dot", "cosine")

# Squared-norm floor for cosine similarity: keeps all-zero vectors (the
# instance of an empty history) at similarity 0 with finite gradients.
_NORM_EPSILON = 1e-12
# Logit for excluded entries. Finite (not -inf) so that a row whose entries
# are all excluded still gives finite values instead of NaN.
_MASKED_LOGIT = -1e9


def _check_similarity(similarity: str) -> None:
    if similarity not in SIMILARITIES:
        raise ValueError(f"`similarity` must be one of {SIMILARITIES}, got {similarity!r}.")


def _check_temperature(temperature) -> None:
    if isinstance(temperature, numbers.Number) and not temperature > 0:
        raise ValueError(f"`temperature` must be > 0, got {temperature!r}.")


def padding_mask(ids):
    """True where `ids` is a real id, False where it is padding (id 0).

    Args:
        ids: integer tensor of any shape, e.g. `(batch, seq_len)`.

    Returns:
        Boolean tensor with the shape of `ids`.
    """
    return ops.not_equal(ids, ops.zeros((), dtype=ids.dtype))


def adjacent_runs(rows):
    """Runs of adjacent equal rows: which candidates can share one history encoding.

    An instance's positive and its negatives carry identical source and
    target histories, and the grouped training input keeps them next to
    each other. Comparing each row with the one before it finds those runs
    with no hashing and no sort. Rows that are equal but not adjacent stay
    separate runs, which costs speed, never correctness.

    Args:
        rows: a list of `(batch, n_i)` integer tensors (None entries are
            skipped), e.g. the history id and category matrices; two rows are
            equal when they agree in every tensor.

    Returns:
        `(starts, index)`: `starts` `(runs,)` int32, the first row of each
        run (gather the histories with it); `index` `(batch,)` int32, the
        run each row belongs to.
    """
    key = ops.concatenate([ops.cast(r, "int64") for r in rows if r is not None], axis=1)
    same = ops.all(ops.equal(key[1:], key[:-1]), axis=1)  # (batch - 1,)
    first = ops.concatenate([ops.ones((1,), "bool"), ops.logical_not(same)], axis=0)
    first = first[: ops.shape(key)[0]]  # an empty batch has no first row
    index = ops.cumsum(ops.cast(first, "int32")) - 1
    starts = ops.cast(ops.nonzero(first)[0], "int32")
    return starts, index


def real_length(mask):
    """How many leading positions to keep so that every real item is kept.

    Positions from the returned length on are padding in every row, so a
    target attention (Eq. 8's `u_f`) that drops them gives the same sums:
    their weights are exactly 0. The Transform right-pads histories
    (`sitn_tf.preprocessing`), so in a batch of short histories most of `L`
    is such a tail (on the benchmark's synthetic data, 95-98 % of the
    positions at `L = 50`). Correct for any padding layout; only a padded
    tail common to all rows is saved.

    Args:
        mask: `(rows, L)` boolean, True at real positions.

    Returns:
        int32 scalar in `[0, L]`: 1 + the last position that is real in some
        row, 0 when no row has any.
    """
    positions = ops.arange(1, ops.shape(mask)[-1] + 1, dtype="int32")  # (L,)
    return ops.max(ops.where(ops.any(mask, axis=0), positions, 0))


def drop_padded_tail(ids, categories=None):
    """`ids` and `categories` `(rows, L)` cut to `max(real_length, 1)` positions.

    For the encoders of both stages, without XLA: no real position attends
    to a padding key, layer norms and feed-forward layers are per position,
    and pooling and target attention give padding weight 0, so the outputs
    at real positions are those of the full length. One position is always
    kept so that shapes stay non-empty. The length is data-dependent, which
    XLA cannot compile; callers keep all `L` under `jit_compile`.
    """
    length = ops.maximum(real_length(padding_mask(ids)), 1)
    return ids[:, :length], (None if categories is None else categories[:, :length])


def l2_normalize(x, axis: int = -1):
    """Divides by the L2 norm; an all-zero vector stays zero (no NaN)."""
    squared = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x * ops.rsqrt(ops.maximum(squared, _NORM_EPSILON))


def similarity_matrix(a, b, similarity: str = "dot"):
    """All-pairs `sim(a_i, b_j)`.

    Args:
        a: `(n, dim)`.
        b: `(m, dim)`.
        similarity: `"dot"` (paper) or `"cosine"`.

    Returns:
        `(n, m)` similarity scores.
    """
    _check_similarity(similarity)
    if similarity == "cosine":
        a, b = l2_normalize(a), l2_normalize(b)
    return ops.matmul(a, ops.transpose(b))


def pairwise_similarity(a, b, similarity: str = "dot"):
    """Row-wise `sim(a_i, b_i)`: `(batch, dim), (batch, dim) -> (batch,)`."""
    _check_similarity(similarity)
    if similarity == "cosine":
        a, b = l2_normalize(a), l2_normalize(b)
    return ops.sum(a * b, axis=-1)


def masked_mean(sequence, mask):
    """Eq. 2, aggregation `g`: mean over the non-padding positions.

    Args:
        sequence: `(batch, seq_len, dim)`.
        mask: `(batch, seq_len)` boolean or 0/1, True for real positions.

    Returns:
        `(batch, dim)`. A row without any real position gives zeros.
    """
    weights = ops.cast(mask, sequence.dtype)
    total = ops.sum(sequence * ops.expand_dims(weights, -1), axis=1)
    count = ops.sum(weights, axis=1, keepdims=True)
    return total / ops.maximum(count, 1.0)


def info_nce(anchors, positives, temperature, similarity: str = "dot", mask=None):
    """Eqs. 3-4: InfoNCE with in-batch negatives, one direction.

    Row `k` is `-log softmax_i(sim(a_k, p_i) / temperature)[k]`: the
    positive of anchor `k` is `positives[k]`, every other row of `positives`
    is a negative. CL-I2I is `L_i2i = L^{s2t} + L^{t2s}` with
    `L^{s2t} = info_nce(p_s, p_t, ...)` and `L^{t2s} = info_nce(p_t, p_s, ...)`.

    Args:
        anchors: `(batch, dim)`.
        positives: `(batch, dim)`, aligned with `anchors`.
        temperature: positive scalar `tau`.
        similarity: `"dot"` or `"cosine"`.
        mask: optional `(batch,)` boolean. False rows are neither anchors
            (their loss is 0) nor negatives for other rows. Used for users
            whose history in one domain is empty.

    Returns:
        `(batch,)` per-row losses.
    """
    _check_temperature(temperature)
    logits = similarity_matrix(anchors, positives, similarity) / temperature
    if mask is not None:
        mask = ops.cast(mask, "bool")
        logits = ops.where(ops.expand_dims(mask, 0), logits, _MASKED_LOGIT)
    loss = ops.logsumexp(logits, axis=1) - ops.diagonal(logits)
    if mask is not None:
        loss = ops.where(mask, loss, ops.zeros_like(loss))
    return loss


ASSIGNMENTS = ("softmax", "sinkhorn")


def cluster_assignment(
    instances,
    clusters,
    similarity: str = "dot",
    mask=None,
    method: str = "softmax",
    temperature=1.0,
    sinkhorn_iterations: int = 3,
):
    """Eq. 5's `pi_i(k)`: how each instance spreads one unit of weight over the clusters.

    * `"softmax"` (the paper, at `temperature=1`):
      `pi_i = softmax_k(sim(c_k, p_i) / temperature)`.
    * `"sinkhorn"` (beyond the paper; SwAV's equipartition, Caron et al.
      2020): start from `exp(sim / temperature)` and alternately rescale the
      clusters' columns to equal mass `1/K` and the instances' rows to equal
      mass `1/B` for `sinkhorn_iterations` rounds, then scale rows to sum to
      1. Each row is still a distribution over the clusters, and over the
      batch every cluster gets close to `B / K` units, so no cluster can
      take every instance (the collapse the paper's softmax allows). The
      iterations are unrolled and differentiable: `C` is trained only through
      `pi`, so a stop-gradient here would leave `C` at its initial values.

    Args:
        instances: `(batch, dim)`, the `p_i`.
        clusters: `(num_clusters, dim)`, the trainable `C`.
        similarity: `"dot"` or `"cosine"`.
        mask: optional `(batch,)` boolean; False rows get all-zero weights
            and do not count in Sinkhorn's row and column masses.
        method: `"softmax"` or `"sinkhorn"`.
        temperature: positive scalar dividing the similarities; below 1 the
            assignments get sharper (cosine scores lie in [-1, 1], so at 1
            the softmax is close to uniform).
        sinkhorn_iterations: rounds of the column-then-row rescaling.

    Returns:
        `(batch, num_clusters)` assignments; valid rows sum to 1.
    """
    if method not in ASSIGNMENTS:
        raise ValueError(f"`method` must be one of {ASSIGNMENTS}, got {method!r}.")
    _check_temperature(temperature)
    scores = similarity_matrix(instances, clusters, similarity) / temperature
    if method == "softmax":
        # Spelled out so that K = 1 is not flagged by Keras' size-1-axis warning.
        assignment = ops.exp(scores - ops.logsumexp(scores, axis=1, keepdims=True))
        if mask is not None:
            assignment = assignment * ops.expand_dims(ops.cast(mask, assignment.dtype), 1)
        return assignment
    if not isinstance(sinkhorn_iterations, int) or sinkhorn_iterations < 1:
        raise ValueError(
            f"`sinkhorn_iterations` must be a positive int, got {sinkhorn_iterations!r}."
        )
    # One global shift keeps exp() finite; every rescaling below cancels it.
    q = ops.exp(scores - ops.stop_gradient(ops.max(scores)))
    if mask is not None:
        q = q * ops.expand_dims(ops.cast(mask, q.dtype), 1)
    for _ in range(sinkhorn_iterations):
        # Columns (clusters) to equal mass, then rows (instances) to sum 1.
        q = q / ops.maximum(ops.sum(q, axis=0, keepdims=True), _NORM_EPSILON)
        q = q / ops.maximum(ops.sum(q, axis=1, keepdims=True), _NORM_EPSILON)
    return q


def soft_cluster_update(
    instances, clusters, similarity: str = "dot", mask=None, assignment=None, normalize=False
):
    """Eq. 5: new clusters `u_k = sum_i pi_i(k) p_i`.

    `pi_i(k) = softmax_{k'}(sim(c_{k'}, p_i))[k]`: each instance spreads a
    unit of weight over the K clusters, and each new cluster is the weighted
    *sum* (not mean) of the batch's instances.

    Args:
        instances: `(batch, dim)`, the `p_i`.
        clusters: `(num_clusters, dim)`, the trainable `C`.
        similarity: `"dot"` or `"cosine"` (only inside the softmax).
        mask: optional `(batch,)` boolean; False rows contribute nothing.
        assignment: optional `(batch, num_clusters)` `pi` from
            `cluster_assignment` (e.g. Sinkhorn's); default: the paper's
            softmax. `mask` is applied to it as well.
        normalize: L2-normalise each `u_k` (beyond the paper). Being a sum,
            `u_k`'s norm grows with the mass a cluster receives, so under a
            dot product the most used cluster wins every top-k selection
            (Eq. 6) and the multi-view MLP sees inputs whose scale follows the
            batch size.

    Returns:
        `(num_clusters, dim)` new clusters `U`.
    """
    if assignment is None:
        assignment = cluster_assignment(instances, clusters, similarity)
    if mask is not None:
        assignment = assignment * ops.expand_dims(ops.cast(mask, assignment.dtype), 1)
    new = ops.matmul(ops.transpose(assignment), instances)
    return l2_normalize(new) if normalize else new


def top_k_clusters(instances, clusters, k: int, similarity: str = "dot"):
    """Eq. 6 (selection): the `k` clusters most similar to each instance.

    Args:
        instances: `(batch, dim)`.
        clusters: `(num_clusters, dim)`, typically the new clusters `U`.
        k: number of views, `1 <= k <= num_clusters`.
        similarity: `"dot"` or `"cosine"`.

    Returns:
        `(batch, k, dim)`, ordered by descending similarity. Gradients flow
        into the selected clusters (the selection itself is discrete).
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` must be a positive int, got {k!r}.")
    num_clusters = clusters.shape[0]
    if num_clusters is not None and k > num_clusters:
        raise ValueError(f"`k` must be <= the number of clusters ({num_clusters}), got {k}.")
    scores = similarity_matrix(instances, clusters, similarity)
    _, indices = ops.top_k(scores, k, sorted=True)
    return ops.take(clusters, indices, axis=0)


def instance_to_cluster_nce(
    anchors,
    positives,
    cluster_negatives,
    temperature,
    similarity: str = "dot",
    view_negatives: bool = False,
    mask=None,
):
    """Eq. 7: instance-to-cluster contrast, one direction.

    `-log( e^{s(a,q)/tau} / (e^{s(a,q)/tau} + sum_j e^{s(a,u_j)/tau}) )`,
    with `a = p^s_i`, `q = q^t_i` (the multi-view cluster of the other
    domain's instance) and `u_j` all K new clusters of the other domain.

    With only the K clusters as negatives, Eq. 7 has a trivial minimum:
    every instance and every multi-view positive point one way and the new
    clusters the other (the logit gap is then `2 / tau` under cosine), which
    stage 1 reaches on real data, encoding every user alike.
    `view_negatives=True` (beyond the paper) adds the other rows' positives
    `q_j` as negatives, so the positive must also tell this user from the
    others' views, as InfoNCE does in Eqs. 3-4.

    Args:
        anchors: `(batch, dim)`.
        positives: `(batch, dim)`, aligned with `anchors`.
        cluster_negatives: `(num_clusters, dim)`, shared by all rows.
        temperature: positive scalar `tau`.
        similarity: `"dot"` or `"cosine"`.
        view_negatives: also contrast against the other rows' positives.
        mask: optional `(batch,)` boolean (only with `view_negatives`):
            False rows' positives are not negatives for the others.

    Returns:
        `(batch,)` per-row losses.
    """
    _check_temperature(temperature)
    positive = pairwise_similarity(anchors, positives, similarity) / temperature
    negative = similarity_matrix(anchors, cluster_negatives, similarity) / temperature
    if not view_negatives:
        logits = ops.concatenate([ops.expand_dims(positive, 1), negative], axis=1)
        return ops.logsumexp(logits, axis=1) - positive
    # (batch, batch): the diagonal is the positive, the rest the other views.
    views = similarity_matrix(anchors, positives, similarity) / temperature
    if mask is not None:
        views = ops.where(ops.expand_dims(ops.cast(mask, "bool"), 0), views, _MASKED_LOGIT)
    logits = ops.concatenate([views, negative], axis=1)
    return ops.logsumexp(logits, axis=1) - positive


def instance_to_cluster_gap(
    anchors, positives, cluster_negatives, temperature, similarity: str = "dot"
):
    """Eq. 7's logit gap: the positive's logit minus the largest cluster negative's.

    A health measure, not a loss: near 0 or below, the multi-view positive
    `q` is hard to tell from the other domain's clusters `U` and Eq. 7
    carries signal; far above 0 the positive is trivially easy and the loss
    is near 0 whatever the encoders do.

    Args: as `instance_to_cluster_nce`.

    Returns:
        `(batch,)` `s(a_i, q_i) / tau - max_j s(a_i, u_j) / tau`.
    """
    _check_temperature(temperature)
    positive = pairwise_similarity(anchors, positives, similarity) / temperature
    negative = similarity_matrix(anchors, cluster_negatives, similarity) / temperature
    return positive - ops.max(negative, axis=1)


__all__ = [
    "ASSIGNMENTS",
    "SIMILARITIES",
    "adjacent_runs",
    "cluster_assignment",
    "info_nce",
    "instance_to_cluster_gap",
    "instance_to_cluster_nce",
    "l2_normalize",
    "masked_mean",
    "padding_mask",
    "pairwise_similarity",
    "similarity_matrix",
    "soft_cluster_update",
    "top_k_clusters",
]
