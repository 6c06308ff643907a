"""Health of SITN's interest clusters (Eqs. 5-7): collapse and cross-domain alignment.

Stage 1 logs these every epoch (`SITNPretrainer`), for training and eval
batches, per granularity `K`:

* cluster usage (`ClusterUsage`): how the epoch's instances fall on their
  most similar cluster `c_k` -- the normalised usage entropy, the effective
  number of clusters `exp(H)` and the dead clusters (no instance);
* the mean nearest cross-domain cosine of the source and target clusters
  (`nearest_cross_domain_cosine`), beside its level for random clusters of
  the same shapes (`random_baseline`), which is also where training starts;
* Eq. 7's logit gap (`sitn_tf.ops.instance_to_cluster_gap`).

The experiment report's `clusters.json` and Figure 3 use the same functions.

Two more numbers need a whole split's instances, so they are computed after
stage 1 (`SITNPretrainer.cluster_alignment`) rather than logged per batch:

* `centroid_alignment`: the nearest cross-domain cosine of the *interests*
  the clusters stand for -- the mean instance of each cluster -- against
  random vectors of the same shapes. The trainable `c_k` only steer Eq. 5's
  assignment: an instance's nearest `c_k` can sit far from it (its cosine is
  `instance_to_cluster_cosine`), so two domains can share interests while
  their `C` look unrelated;
* `assignment_agreement`: how often a user's source instance and target
  instance fall on the same cluster, against the chance level of the two
  usage distributions. This is the transfer the paper claims: a user's
  source-domain interest points at the same target-domain interest as the
  user's own target clicks.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from sitn_tf import ops as sitn_ops
from sitn_tf.checks import check_int


def check_matrix(name: str, x: np.ndarray) -> np.ndarray:
    """`x` as float64 `(num_clusters, dim)`, finite; the error names `name`."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"`{name}` must have shape (num_clusters, dim), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}` has non-finite values")
    return x


def _unit_rows(name: str, x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0.0)
    if zero.size:
        raise ValueError(f"`{name}` rows {zero.tolist()} are all zero; cosine is undefined")
    return x / norms


def cosine_similarity_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`(K, K')` cosine similarities between the rows of `a` `(K, D)` and `b` `(K', D)`."""
    a = check_matrix("a", a)
    b = check_matrix("b", b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"dimensions differ: `a` has D={a.shape[1]}, `b` has D={b.shape[1]}")
    return _unit_rows("a", a) @ _unit_rows("b", b).T


def nearest_cross_domain_cosine(source: np.ndarray, target: np.ndarray) -> float:
    """Mean cosine similarity of each cluster to its nearest cluster in the other domain.

    With `S = cos(source, target)` of shape `(K, K')`, the value is the mean of
    the `K + K'` numbers

        [max_j S[i, j] for i in 0..K-1]  ∪  [max_i S[i, j] for j in 0..K'-1],

    i.e. every source cluster's best match among the target clusters and every
    target cluster's best match among the source clusters, each counted once.
    Using both directions keeps a domain whose clusters all crowd near one
    cluster of the other domain from scoring high. In [-1, 1]; 1 when every
    cluster has an exact direction match in the other domain.

    Args:
      source: `(K, D)` clusters of the source domain.
      target: `(K', D)` clusters of the target domain.
    """
    sim = cosine_similarity_matrix(source, target)
    return float(np.mean(np.concatenate([sim.max(axis=1), sim.max(axis=0)])))


class RandomBaseline(NamedTuple):
    """Mean and std (ddof=1) of `nearest_cross_domain_cosine` over the random draws."""

    mean: float
    std: float


def random_baseline(
    shape: tuple[int, int],
    seed: int,
    n_draws: int = 100,
    target_shape: tuple[int, int] | None = None,
) -> RandomBaseline:
    """`nearest_cross_domain_cosine` of random clusters: the chance level.

    Each draw samples source `(K, D) = shape` and target `target_shape`
    (default: `shape`) i.i.d. standard normal. Cosine similarity is
    scale-invariant, so the variance of the Gaussian does not matter; only K,
    K' and D do (for large D the cosine of independent directions is about
    N(0, 1/D), so the nearest match grows like sqrt(2 ln K' / D)).
    Reproducible for a given `seed`.
    """
    target_shape = tuple(shape) if target_shape is None else tuple(target_shape)
    for name, s in (("shape", tuple(shape)), ("target_shape", target_shape)):
        if len(s) != 2 or any(not isinstance(v, (int, np.integer)) or v < 1 for v in s):
            raise ValueError(f"`{name}` must be (num_clusters, dim) of positive ints, got {s}")
    if shape[1] != target_shape[1]:
        raise ValueError(
            f"dimensions differ: `shape` {tuple(shape)}, `target_shape` {target_shape}"
        )
    if not isinstance(n_draws, (int, np.integer)) or n_draws < 2:
        raise ValueError(f"`n_draws` must be an int >= 2, got {n_draws!r}")
    rng = np.random.default_rng(seed)
    values = np.array(
        [
            nearest_cross_domain_cosine(
                rng.standard_normal(tuple(shape)), rng.standard_normal(target_shape)
            )
            for _ in range(n_draws)
        ]
    )
    return RandomBaseline(mean=float(values.mean()), std=float(values.std(ddof=1)))


def nearest_cross_domain_cosine_tensor(source, target):
    """`nearest_cross_domain_cosine` in `keras.ops` (for the training logs): `(K, D), (K', D) -> ()`."""
    sim = sitn_ops.similarity_matrix(source, target, "cosine")
    best = ops.concatenate([ops.max(sim, axis=1), ops.max(sim, axis=0)], axis=0)
    return ops.mean(best)


def cluster_centroids(
    instances: np.ndarray, nearest: np.ndarray, num_clusters: int, min_size: int = 5
) -> np.ndarray:
    """Mean instance of every cluster that at least `min_size` instances chose.

    Args:
      instances: `(N, D)` instances.
      nearest: `(N,)` int index of each instance's cluster, in `[0, num_clusters)`.
      num_clusters: `K`.
      min_size: clusters with fewer instances are left out (their mean is noise).

    Returns:
      `(K_used, D)`, clusters in index order.
    """
    instances = check_matrix("instances", instances)
    nearest = np.asarray(nearest)
    check_int("num_clusters", num_clusters, minimum=1)
    check_int("min_size", min_size, minimum=1)
    if nearest.shape != (instances.shape[0],):
        raise ValueError(
            f"`nearest` must have shape ({instances.shape[0]},) like `instances`' rows, "
            f"got {nearest.shape}"
        )
    if nearest.size and (nearest.min() < 0 or nearest.max() >= num_clusters):
        raise ValueError(
            f"`nearest` must lie in [0, {num_clusters}), got {nearest.min()}..{nearest.max()}"
        )
    counts = np.bincount(nearest, minlength=num_clusters)
    sums = np.zeros((num_clusters, instances.shape[1]))
    np.add.at(sums, nearest, instances)
    used = counts >= min_size
    return sums[used] / counts[used, None]


def centroid_alignment(
    source_instances: np.ndarray,
    target_instances: np.ndarray,
    source_nearest: np.ndarray,
    target_nearest: np.ndarray,
    num_clusters: int,
    min_size: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Nearest cross-domain cosine of the clusters' mean instances, and its random level.

    `nearest_cross_domain_cosine(cluster_centroids(source...), cluster_centroids(target...))`
    beside `random_baseline` for Gaussian vectors of the same two shapes.

    Returns:
      `{"centroid_cross_cosine", "random_centroid_cross_cosine",
      "centroid_cross_cosine_margin", "source_centroids", "target_centroids"}`,
      the last two the number of clusters with at least `min_size` instances.
    """
    source = cluster_centroids(source_instances, source_nearest, num_clusters, min_size)
    target = cluster_centroids(target_instances, target_nearest, num_clusters, min_size)
    if len(source) < 2 or len(target) < 2:
        raise ValueError(
            f"fewer than 2 clusters with >= {min_size} instances (source {len(source)}, "
            f"target {len(target)}): no alignment to measure"
        )
    value = nearest_cross_domain_cosine(source, target)
    base = random_baseline(source.shape, seed, target_shape=target.shape)
    return {
        "centroid_cross_cosine": value,
        "random_centroid_cross_cosine": base.mean,
        "centroid_cross_cosine_margin": value - base.mean,
        "source_centroids": int(len(source)),
        "target_centroids": int(len(target)),
    }


def assignment_agreement(
    from_source: np.ndarray, from_target: np.ndarray, num_clusters: int
) -> tuple[float, float]:
    """`(agreement, chance)` of two cluster assignments of the same users.

    `agreement = mean_i [a_i == b_i]` with `a = from_source`, `b = from_target`
    (one cluster index per user, both in the same domain's clusters);
    `chance = sum_k P_a(k) P_b(k)`, the agreement of independent users with
    the same usage distributions.
    """
    a, b = np.asarray(from_source), np.asarray(from_target)
    check_int("num_clusters", num_clusters, minimum=1)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(
            f"`from_source` and `from_target` must be non-empty vectors of one length, "
            f"got {a.shape} and {b.shape}"
        )
    for name, x in (("from_source", a), ("from_target", b)):
        if x.min() < 0 or x.max() >= num_clusters:
            raise ValueError(f"`{name}` must lie in [0, {num_clusters}), got {x.min()}..{x.max()}")
    share_a = np.bincount(a, minlength=num_clusters) / a.size
    share_b = np.bincount(b, minlength=num_clusters) / b.size
    return float(np.mean(a == b)), float(share_a @ share_b)


@keras.saving.register_keras_serializable(package="sitn_tf")
class ClusterUsage(keras.metrics.Metric):
    """How evenly the instances of an epoch spread over `K` clusters.

    Accumulates, over every batch since the last reset, how many instances
    have each cluster as their most similar one (`InterestClusters.nearest`).
    With `u` the usage shares (counts / total) and `H = -sum_k u_k ln u_k`:

    * `{name}_usage_entropy`: `H / ln K`, in [0, 1]; 1 = even use, 0 = one
      cluster takes every instance;
    * `{name}_effective_clusters`: `exp(H)`, in [1, K];
    * `{name}_dead_clusters`: clusters no instance chose.

    Before any instance is counted, all three are 0.

    Args:
        num_clusters: `K`, at least 2.
        name: prefix of the three logged values.

    Call args (`update_state`):
        nearest: `(batch,)` int cluster index per instance.
        mask: optional `(batch,)` bool; False rows are not counted.
    """

    def __init__(self, num_clusters: int, name: str = "cluster_usage", **kwargs):
        super().__init__(name=name, **kwargs)
        check_int("num_clusters", num_clusters, 2)
        self.num_clusters = num_clusters
        self.counts = self.add_variable(
            shape=(num_clusters,), initializer="zeros", name="counts", aggregation="sum"
        )

    def update_state(self, nearest, mask=None, sample_weight=None):
        hits = ops.one_hot(ops.cast(nearest, "int32"), self.num_clusters, dtype=self.dtype)
        if mask is not None:
            hits = hits * ops.expand_dims(ops.cast(mask, self.dtype), 1)
        self.counts.assign_add(ops.sum(hits, axis=0))

    def result(self):
        total = ops.sum(self.counts)
        usage = self.counts / ops.maximum(total, 1.0)
        # 0 * log 0 = 0: clusters without instances add nothing.
        entropy = -ops.sum(ops.where(usage > 0, usage * ops.log(ops.maximum(usage, 1e-30)), 0.0))
        counted = total > 0
        return {
            f"{self.name}_usage_entropy": entropy / math.log(self.num_clusters),
            f"{self.name}_effective_clusters": ops.where(counted, ops.exp(entropy), 0.0),
            f"{self.name}_dead_clusters": ops.where(
                counted, ops.sum(ops.cast(self.counts == 0, self.dtype)), 0.0
            ),
        }

    def reset_state(self):
        self.counts.assign(ops.zeros((self.num_clusters,), self.dtype))

    def get_config(self):
        config = super().get_config()
        config.update({"num_clusters": self.num_clusters})
        return config


__all__ = [
    "ClusterUsage",
    "check_matrix",
    "RandomBaseline",
    "cosine_similarity_matrix",
    "nearest_cross_domain_cosine",
    "nearest_cross_domain_cosine_tensor",
    "random_baseline",
]
