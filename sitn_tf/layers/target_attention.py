"""DIN-style target attention (the stage-2 interest extractor, Eq. 8)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from sitn_tf.checks import check_units
from sitn_tf.layers.mlp import MLP

NORMALIZATIONS = ("none", "softmax")


@keras.saving.register_keras_serializable(package="sitn_tf")
class TargetAttention(keras.layers.Layer):
    """`u = sum_j w_j z_j` with `w_j = a([z_j, v, z_j - v, z_j * v])`.

    `a` is the DIN activation unit: an MLP with hidden widths `hidden_units`
    and one linear output. The query `v` is the candidate item embedding,
    keys and values are the encoded sequence `Z`. Padding positions get
    weight exactly 0.

    Args:
        hidden_units: hidden widths of the activation unit.
        activation: activation of its hidden layers.
        normalization: `"none"` (DIN: raw weights, so the sum keeps the
            intensity of interest) or `"softmax"` over the real positions.

    Call args:
        query: `(batch, D)` candidate embedding `v`.
        keys: `(batch, seq_len, D)` encoded sequence `Z`, or `(histories,
            seq_len, D)` with `key_index`.
        mask: `(batch, seq_len)` boolean, True at real positions. Required.
        key_index: optional `(batch,)` int, the row of `keys` that each
            candidate reads. Candidates that share a history (an instance's
            positive and its negatives) then share one encoded row.

    Returns:
        `(batch, D)`. An empty history gives a zero vector.

    Cost: the activation unit's first layer is linear in its input, so
    `[z, v, z - v, z * v] W = z (W_z + W_d) + v (W_v - W_d) + (z * v) W_p`
    with `W = [W_z; W_v; W_d; W_p]`. The `z` term is computed once per
    history row, the `v` term once per candidate, and only the `z * v`
    product per (candidate, position): a quarter of the first layer's
    products, and the `(batch, seq_len, 4 D)` concatenation is never built.
    The weights are those of the plain layer, so checkpoints are unchanged.
    """

    def __init__(
        self,
        hidden_units: Sequence[int] = (64, 32),
        activation: str = "relu",
        normalization: str = "none",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_units = check_units("hidden_units", hidden_units)
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"`normalization` must be one of {NORMALIZATIONS}, got {normalization!r}."
            )
        self.activation = activation
        self.normalization = normalization
        self.activation_unit = MLP(
            (*self.hidden_units, 1), activation=activation, name="activation_unit"
        )

    def build(self, query_shape, keys_shape):
        dim = keys_shape[-1]
        if query_shape[-1] != dim:
            raise ValueError(
                f"`query` and `keys` must have the same last dimension, got "
                f"{query_shape[-1]} and {dim}."
            )
        self.activation_unit.build((None, None, 4 * dim))
        self.built = True

    def attention_weights(self, query, keys, mask, key_index=None):
        """`(batch, D), (batch | histories, L, D), (batch, L) -> (batch, L)` weights."""
        return self._weights_and_keys(query, keys, mask, key_index)[0]

    def _weights_and_keys(self, query, keys, mask, key_index):
        """The weights and the `(batch, L, D)` keys each candidate reads."""
        if not self.built:  # a direct call, not through `__call__`
            self.build(query.shape, keys.shape)
        first, *rest = self.activation_unit.dense_layers
        kernel = first.kernel  # (4 D, a_1), rows in the order [z, v, z - v, z * v]
        dim = kernel.shape[0] // 4
        w_z, w_v, w_d, w_p = (kernel[i * dim : (i + 1) * dim] for i in range(4))
        per_history = ops.matmul(keys, w_z + w_d)  # (H, L, a_1)
        if key_index is not None:
            per_history = ops.take(per_history, key_index, axis=0)
            keys = ops.take(keys, key_index, axis=0)
        per_candidate = ops.matmul(query, w_v - w_d)  # (B, a_1)
        if first.use_bias:
            per_candidate = per_candidate + first.bias
        products = ops.matmul(keys * ops.expand_dims(query, 1), w_p)  # (B, L, a_1)
        hidden = first.activation(per_history + ops.expand_dims(per_candidate, 1) + products)
        # The activation unit has no dropout (built so in __init__).
        for layer in rest:
            hidden = layer(hidden)
        scores = ops.squeeze(hidden, -1)
        mask = ops.cast(mask, "bool")
        if self.normalization == "softmax":
            scores = ops.where(mask, scores, -1e9)
            scores = ops.softmax(scores, axis=-1)
        return ops.where(mask, scores, ops.zeros_like(scores)), keys

    def call(self, query, keys, mask=None, key_index=None):
        if mask is None:
            raise ValueError("`mask` is required: True where the history item id is not 0.")
        weights, keys = self._weights_and_keys(query, keys, mask, key_index)
        return ops.einsum("bl,bld->bd", weights, keys)

    def compute_output_shape(self, query_shape, keys_shape):
        return (query_shape[0], keys_shape[-1])

    def compute_mask(self, query, keys, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_units": list(self.hidden_units),
                "activation": self.activation,
                "normalization": self.normalization,
            }
        )
        return config
