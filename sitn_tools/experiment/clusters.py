"""Analysis of learned interest clusters: the paper's Figure 3 and collapse checks.

The SITN paper (Sun et al., AAAI 2023, Figure 3) shows a t-SNE of the learned
source and target interest clusters (`C` of Eq. 5, one `(K, D)` set per domain
and granularity) for K = 32, 64, 128, 256, arguing that the two domains'
clusters lie close together. This module gives that figure plus numbers to
back it:

* `nearest_cross_domain_cosine`: how close each cluster is to its nearest
  cluster of the other domain, on average;
* `random_baseline`: the same number for random Gaussian clusters of the same
  shapes, which is also what the clusters start from (`InterestClusters`
  initialises them i.i.d. normal), so a learned value above it means training
  pulled the domains together;
* `cluster_usage_entropy`: whether users spread over the clusters or collapse
  onto a few.

numpy, scipy, scikit-learn and matplotlib only; no TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypedDict

import numpy as np

# One implementation of the cross-domain numbers for the model's training
# logs and for this report (`clusters.json`, Figure 3's titles).
from sitn_tf.cluster_health import check_matrix, nearest_cross_domain_cosine, random_baseline

# t-SNE point count from which Barnes-Hut beats exact gradients (measured on 2 CPU cores:
# 16 points 0.5 s exact vs 4 s Barnes-Hut; 512 points 27 s exact vs 14 s Barnes-Hut).
EXACT_TSNE_BELOW = 200


class ClusterUsage(TypedDict):
    """How evenly a set of users is spread over `K` clusters (JSON-ready).

    Keys:
      usage: `K` shares of users per cluster (sum to 1).
      entropy: Shannon entropy of `usage` divided by ln K, in [0, 1]: 1 when
        every cluster is used equally, 0 when all users fall in one cluster.
      effective_clusters: `exp(H)` with `H` the entropy in nats (not
        normalised), in [1, K]: the number of equally used clusters that
        would give the same entropy.
      unused: clusters no user uses.
    """

    usage: list[float]
    entropy: float
    effective_clusters: float
    unused: int


def cluster_usage_entropy(
    assignments_or_probs: np.ndarray, num_clusters: int, soft: bool = False
) -> ClusterUsage:
    """Cluster usage entropy, the diagnostic for cluster collapse.

    Args:
      assignments_or_probs: `(N,)` integer cluster index per user, or
        `(N, K)` per-user scores over the clusters (similarities or
        probabilities, e.g. `sim(c_k, p_i)` or `pi_i(k)` of Eq. 5).
      num_clusters: `K`, at least 2.
      soft: with an `(N, K)` input, False counts each user for its argmax
        cluster (ties: the lowest index); True sums the rows, which must then
        be probabilities (non-negative, each summing to 1).

    Raises:
      ValueError: wrong shape, out-of-range indices, no users, or (soft)
        rows that are not probability distributions.
    """
    if not isinstance(num_clusters, (int, np.integer)) or num_clusters < 2:
        raise ValueError(f"`num_clusters` must be an int >= 2, got {num_clusters!r}")
    x = np.asarray(assignments_or_probs)
    if x.ndim == 1:
        if soft:
            raise ValueError("`soft=True` needs an (N, K) matrix of probabilities")
        if x.size and not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"cluster assignments must be integers, got dtype {x.dtype}")
        bad = np.flatnonzero((x < 0) | (x >= num_clusters))
        if bad.size:
            raise ValueError(
                f"assignments at rows {bad[:10].tolist()} are outside [0, {num_clusters})"
            )
        counts = np.bincount(x.astype(np.int64), minlength=num_clusters).astype(np.float64)
    elif x.ndim == 2:
        if x.shape[1] != num_clusters:
            raise ValueError(f"expected {num_clusters} columns (clusters), got shape {x.shape}")
        x = x.astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("scores have non-finite values")
        if soft:
            if np.any(x < 0):
                raise ValueError("`soft=True` needs non-negative probabilities")
            row_sums = x.sum(axis=1)
            bad = np.flatnonzero(np.abs(row_sums - 1.0) > 1e-4)
            if bad.size:
                raise ValueError(f"rows {bad[:10].tolist()} do not sum to 1 (soft=True)")
            counts = x.sum(axis=0)
        else:
            counts = np.bincount(x.argmax(axis=1), minlength=num_clusters).astype(np.float64)
    else:
        raise ValueError(f"expected shape (N,) or (N, {num_clusters}), got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("no users: cluster usage is undefined")
    usage = counts / counts.sum()
    nonzero = usage[usage > 0]
    entropy_nats = float(-np.sum(nonzero * np.log(nonzero)))
    return {
        "usage": usage.tolist(),
        "entropy": entropy_nats / math.log(num_clusters),
        "effective_clusters": math.exp(entropy_nats),
        "unused": int(np.sum(usage == 0)),
    }


class ClusterComparison(TypedDict):
    """The numbers behind one Figure 3 panel (JSON-ready)."""

    num_clusters: int
    nearest_cross_domain_cosine: float
    random_clusters_cosine_mean: float
    random_clusters_cosine_std: float
    random_draws: int


def compare_clusters(
    source: np.ndarray, target: np.ndarray, seed: int, n_draws: int = 100
) -> ClusterComparison:
    """Learned `nearest_cross_domain_cosine` next to its random baseline."""
    source = check_matrix("source", source)
    target = check_matrix("target", target)
    random = random_baseline(source.shape, seed, n_draws, target_shape=target.shape)
    return {
        "num_clusters": int(source.shape[0]),
        "nearest_cross_domain_cosine": nearest_cross_domain_cosine(source, target),
        "random_clusters_cosine_mean": random.mean,
        "random_clusters_cosine_std": random.std,
        "random_draws": int(n_draws),
    }


def tsne_figure(
    clusters_by_k: Mapping[int, tuple[np.ndarray, np.ndarray]],
    path: str,
    seed: int,
    n_draws: int = 100,
) -> dict[int, ClusterComparison]:
    """Figure 3: t-SNE of source and target clusters, one panel per K.

    For each K, the `2K` clusters (source stacked on target) are embedded with
    `sklearn.manifold.TSNE(metric="cosine", init="pca", random_state=seed)`
    (cosine because the similarity is scale-free; perplexity
    `min(30, (2K - 1) / 3)`, valid since it must stay below the number of
    points; exact gradients below `EXACT_TSNE_BELOW` points, where they are
    faster than Barnes-Hut, which takes over for the larger sets). Source clusters are blue circles, target clusters orange
    triangles. Each panel's title gives K and the nearest-cross-domain cosine
    against the random baseline (mean ± std). Panels are laid out on a near
    square grid (2x2 for four Ks), in increasing K. The PNG is deterministic
    for fixed inputs, seed and library versions.

    Args:
      clusters_by_k: `{K: (source (K, D), target (K', D))}`.
      path: where to write the PNG.
      seed: seed of t-SNE and of the random baseline.

    Returns:
      `{K: ClusterComparison}`, the numbers shown in the titles.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    if not clusters_by_k:
        raise ValueError("`clusters_by_k` is empty")
    panels = []
    for k in sorted(clusters_by_k):
        pair = clusters_by_k[k]
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"K={k}: expected a (source, target) pair")
        source = check_matrix(f"source (K={k})", pair[0])
        target = check_matrix(f"target (K={k})", pair[1])
        if source.shape[0] != k:
            raise ValueError(f"K={k}: source has {source.shape[0]} clusters")
        if source.shape[0] + target.shape[0] < 4:
            raise ValueError(f"K={k}: t-SNE needs at least 4 clusters in all")
        panels.append((k, source, target))

    ncols = math.ceil(math.sqrt(len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.8 * ncols, 4.4 * nrows), dpi=100)
    axes = np.atleast_1d(axes).ravel()
    results: dict[int, ClusterComparison] = {}
    for ax, (k, source, target) in zip(axes, panels, strict=False):
        points = np.concatenate([source, target])
        n = points.shape[0]
        tsne = TSNE(
            n_components=2,
            metric="cosine",
            init="pca",
            perplexity=min(30.0, (n - 1) / 3.0),
            method="exact" if n < EXACT_TSNE_BELOW else "barnes_hut",
            random_state=seed,
        )
        xy = tsne.fit_transform(points)
        comparison = compare_clusters(source, target, seed=seed, n_draws=n_draws)
        results[k] = comparison
        ks = source.shape[0]
        ax.scatter(xy[:ks, 0], xy[:ks, 1], s=18, marker="o", c="#1f77b4", label="source")
        ax.scatter(xy[ks:, 0], xy[ks:, 1], s=18, marker="^", c="#ff7f0e", label="target")
        ax.set_title(
            f"K = {k}\nnearest cross-domain cos {comparison['nearest_cross_domain_cosine']:.3f} "
            f"(random {comparison['random_clusters_cosine_mean']:.3f} "
            f"± {comparison['random_clusters_cosine_std']:.3f})",
            fontsize=9,
        )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(loc="best", fontsize=8)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle("Learned interest clusters (t-SNE, cosine)")
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return results
