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
