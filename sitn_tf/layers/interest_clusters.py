"""Instance-to-cluster encoder: interest clusters (Eq. 5) and multi-view (Eq. 6)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from sitn_tf import ops as sitn_ops
from sitn_tf.checks import check_int, check_positive, check_units
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

    The remedies against cluster collapse (beyond the paper) are off by
    default, which computes the paper's Eqs. 5-6 exactly:

    * `assignment="sinkhorn"`: a balanced `pi` (SwAV's Sinkhorn-Knopp
      equipartition over the batch, `sitn_tf.ops.cluster_assignment`);
    * `assignment_temperature < 1`: a sharper `pi`;
    * `normalize_new_clusters`: unit-norm `u_k`;
    * `stop_gradient_views`: no gradient flows through `q` (the multi-view
      MLP then keeps its initial weights), so the encoders cannot make the
      positive of Eq. 7 easy by moving the views.

    Args:
        num_clusters: `K`.
        top_k: views per instance, `1 <= top_k <= num_clusters`.
        similarity: `"dot"` or `"cosine"`.
        multi_view_units: hidden widths of the multi-view MLP; its output
            width is always `D`. Ignored when `top_k == 1`.
        cluster_initializer: initializer of `C`; defaults to
            `RandomNormal(stddev=D ** -0.5)` (rows of roughly unit norm).
        assignment: `"softmax"` (paper) or `"sinkhorn"`.
        assignment_temperature: divides `sim(c_k, p_i)` inside the
            assignment; 1 is the paper's.
        sinkhorn_iterations: Sinkhorn rounds (`assignment="sinkhorn"` only).
        normalize_new_clusters: L2-normalise each new cluster `u_k`.
        stop_gradient_views: stop the gradient at `q`.

    Call args:
        instances: `(batch, D)`, the `p_i` of this domain.
        mask: optional `(batch,)` boolean; False rows (users with an empty
            history in this domain) do not contribute to `U`.

        return_assignment: also return Eq. 5's `pi`.

    Returns:
        `(new_clusters, views)`: `U` of shape `(K, D)` and `q` of shape
        `(batch, D)`; with `return_assignment`, `pi` of shape `(batch, K)`
        third.
    """

    def __init__(
        self,
        num_clusters: int,
        top_k: int = 1,
        similarity: str = "dot",
        multi_view_units: Sequence[int] = (),
        cluster_initializer: str | keras.initializers.Initializer | None = None,
        assignment: str = "softmax",
        assignment_temperature: float = 1.0,
        sinkhorn_iterations: int = 3,
        normalize_new_clusters: bool = False,
        stop_gradient_views: bool = False,
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
        if assignment not in sitn_ops.ASSIGNMENTS:
            raise ValueError(
                f"`assignment` must be one of {sitn_ops.ASSIGNMENTS}, got {assignment!r}."
            )
        check_positive("assignment_temperature", assignment_temperature)
        check_int("sinkhorn_iterations", sinkhorn_iterations, minimum=1)
        for name, value in (
            ("normalize_new_clusters", normalize_new_clusters),
            ("stop_gradient_views", stop_gradient_views),
        ):
            if not isinstance(value, bool):
                raise ValueError(f"`{name}` must be a bool, got {value!r}.")
        self.assignment = assignment
        self.assignment_temperature = float(assignment_temperature)
        self.sinkhorn_iterations = sinkhorn_iterations
        self.normalize_new_clusters = normalize_new_clusters
        self.stop_gradient_views = stop_gradient_views
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

    def assign(self, instances, mask=None):
        """Eq. 5's `pi`: `(batch, D) -> (batch, K)` (see `sitn_ops.cluster_assignment`)."""
        return sitn_ops.cluster_assignment(
            instances,
            self.clusters,
            self.similarity,
            mask=mask,
            method=self.assignment,
            temperature=self.assignment_temperature,
            sinkhorn_iterations=self.sinkhorn_iterations,
        )

    def nearest(self, instances):
        """Index of each instance's most similar cluster `c_k`: `(batch, D) -> (batch,)`.

        The hard assignment that cluster-usage health counts. It reads `C`
        directly, not `pi`: a balanced `pi` is spread by construction,
        whether or not the clusters themselves are.
        """
        scores = sitn_ops.similarity_matrix(instances, self.clusters, self.similarity)
        return ops.argmax(scores, axis=1)

    def new_clusters(self, instances, mask=None, assignment=None):
        """Eq. 5: `(batch, D) -> (K, D)`; `assignment` reuses a `pi` from `assign`."""
        if assignment is None:
            assignment = self.assign(instances, mask=mask)
        return sitn_ops.soft_cluster_update(
            instances,
            self.clusters,
            self.similarity,
            mask=mask,
            assignment=assignment,
            normalize=self.normalize_new_clusters,
        )

    def views(self, instances, new_clusters, training=None):
        """Eq. 6: `(batch, D), (K, D) -> (batch, D)`."""
        top = sitn_ops.top_k_clusters(instances, new_clusters, self.top_k, self.similarity)
        if self.multi_view is None:
            views = top[:, 0, :]
        else:
            dim = ops.shape(top)[-1]
            views = self.multi_view(ops.reshape(top, (-1, self.top_k * dim)), training=training)
        return ops.stop_gradient(views) if self.stop_gradient_views else views

    def call(self, instances, mask=None, training=None, return_assignment=False):
        assignment = self.assign(instances, mask=mask)
        new_clusters = self.new_clusters(instances, mask=mask, assignment=assignment)
        views = self.views(instances, new_clusters, training=training)
        if return_assignment:
            return new_clusters, views, assignment
        return new_clusters, views

    def compute_output_spec(self, instances, mask=None, training=None, return_assignment=False):
        dim = instances.shape[-1]
        specs = (
            keras.KerasTensor((self.num_clusters, dim), dtype=self.compute_dtype),
            keras.KerasTensor((instances.shape[0], dim), dtype=self.compute_dtype),
        )
        if return_assignment:
            pi = keras.KerasTensor(
                (instances.shape[0], self.num_clusters), dtype=self.compute_dtype
            )
            return (*specs, pi)
        return specs

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
                "assignment": self.assignment,
                "assignment_temperature": self.assignment_temperature,
                "sinkhorn_iterations": self.sinkhorn_iterations,
                "normalize_new_clusters": self.normalize_new_clusters,
                "stop_gradient_views": self.stop_gradient_views,
            }
        )
        return config
