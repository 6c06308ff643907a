"""Instance-to-cluster encoder: interest clusters (Eq. 5) and multi-view (Eq. 6)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from sitn_tf import ops as sitn_ops
from sitn_tf.checks import check_int, check_units
from sitn_tf.layers.mlp import MLP


@keras.saving.register_keras_serializable(package="sitn_tf")
class InterestClusters(keras.layers.Layer):
    """One domain's cluster set at one granularity `K`.

    Owns the trainable, randomly initialised clusters `C` of shape `(K, D)`.
    For a batch of instances `P` it computes

    * Eq. 5, the new clusters `U`: `u_k = sum_i pi_i(k) p_i` with
      `pi_i = softmax_k(sim(c_k, p_i))`, a sum over the batch;
    * Eq. 6, the multi-view cluster `q_i`: the `top_k` new clusters most
      similar to `p_i`, concatenated in descending similarity and projected
      back to `D` by an MLP. With `top_k == 1` there is no multi-view: no MLP
      is built and `q_i` is the single most similar new cluster.

    Args:
        num_clusters: `K`.
        top_k: views per instance, `1 <= top_k <= num_clusters`.
        similarity: `"dot"` or `"cosine"`.
        multi_view_units: hidden widths of the multi-view MLP; its output
            width is always `D`. Ignored when `top_k == 1`.
        cluster_initializer: initializer of `C`; defaults to
            `RandomNormal(stddev=D ** -0.5)` (rows of roughly unit norm).

    Call args:
        instances: `(batch, D)`, the `p_i` of this domain.
        mask: optional `(batch,)` boolean; False rows (users with an empty
            history in this domain) do not contribute to `U`.

    Returns:
        `(new_clusters, views)`: `U` of shape `(K, D)` and `q` of shape
        `(batch, D)`.
    """

    def __init__(
        self,
        num_clusters: int,
        top_k: int = 1,
        similarity: str = "dot",
        multi_view_units: Sequence[int] = (),
        cluster_initializer: str | keras.initializers.Initializer | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_int("num_clusters", num_clusters, minimum=1)
        check_int("top_k", top_k, minimum=1)
        if top_k > num_clusters:
            raise ValueError(
                f"`top_k` must be <= num_clusters, got top_k={top_k}, num_clusters={num_clusters}."
            )
        if similarity not in sitn_ops.SIMILARITIES:
            raise ValueError(
                f"`similarity` must be one of {sitn_ops.SIMILARITIES}, got {similarity!r}."
            )
        self.num_clusters = num_clusters
        self.top_k = top_k
        self.similarity = similarity
        self.multi_view_units = check_units("multi_view_units", multi_view_units)
        self.cluster_initializer = (
            None if cluster_initializer is None else keras.initializers.get(cluster_initializer)
        )
        self.multi_view = None

    def build(self, instances_shape):
        dim = instances_shape[-1]
        if dim is None:
            raise ValueError("The last dimension of `instances` must be known.")
        initializer = self.cluster_initializer or keras.initializers.RandomNormal(
            stddev=float(dim) ** -0.5
        )
        self.clusters = self.add_weight(
            shape=(self.num_clusters, dim), initializer=initializer, name="clusters"
        )
        if self.top_k > 1:
            self.multi_view = MLP((*self.multi_view_units, dim), name="multi_view")
            self.multi_view.build((None, self.top_k * dim))
        self.built = True

    def new_clusters(self, instances, mask=None):
        """Eq. 5: `(batch, D) -> (K, D)`."""
        return sitn_ops.soft_cluster_update(instances, self.clusters, self.similarity, mask=mask)

    def views(self, instances, new_clusters, training=None):
        """Eq. 6: `(batch, D), (K, D) -> (batch, D)`."""
        top = sitn_ops.top_k_clusters(instances, new_clusters, self.top_k, self.similarity)
        if self.multi_view is None:
            return top[:, 0, :]
        dim = ops.shape(top)[-1]
        return self.multi_view(ops.reshape(top, (-1, self.top_k * dim)), training=training)

    def call(self, instances, mask=None, training=None):
        new_clusters = self.new_clusters(instances, mask=mask)
        return new_clusters, self.views(instances, new_clusters, training=training)

    def compute_output_shape(self, instances_shape):
        dim = instances_shape[-1]
        return (self.num_clusters, dim), (instances_shape[0], dim)

    def compute_mask(self, instances, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_clusters": self.num_clusters,
                "top_k": self.top_k,
                "similarity": self.similarity,
                "multi_view_units": list(self.multi_view_units),
                "cluster_initializer": (
                    None
                    if self.cluster_initializer is None
                    else keras.initializers.serialize(self.cluster_initializer)
                ),
            }
        )
        return config
