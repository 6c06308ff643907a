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
        keys: `(batch, seq_len, D)` encoded sequence `Z`.
        mask: `(batch, seq_len)` boolean, True at real positions. Required.

    Returns:
        `(batch, D)`. An empty history gives a zero vector.
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

    def attention_weights(self, query, keys, mask):
        """`(batch, D), (batch, L, D), (batch, L) -> (batch, L)` weights."""
        v = ops.broadcast_to(ops.expand_dims(query, 1), ops.shape(keys))
        features = ops.concatenate([keys, v, keys - v, keys * v], axis=-1)
        scores = ops.squeeze(self.activation_unit(features), -1)
        mask = ops.cast(mask, "bool")
        if self.normalization == "softmax":
            scores = ops.where(mask, scores, -1e9)
            scores = ops.softmax(scores, axis=-1)
        return ops.where(mask, scores, ops.zeros_like(scores))

    def call(self, query, keys, mask=None):
        if mask is None:
            raise ValueError("`mask` is required: True where the history item id is not 0.")
        weights = self.attention_weights(query, keys, mask)
        return ops.sum(ops.expand_dims(weights, -1) * keys, axis=1)

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
