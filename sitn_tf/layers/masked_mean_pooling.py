"""Aggregation `g` of the paper (Eq. 2)."""

from __future__ import annotations

import keras

from sitn_tf import ops as sitn_ops


@keras.saving.register_keras_serializable(package="sitn_tf")
class MaskedMeanPooling(keras.layers.Layer):
    """Eq. 2: the instance `p = g(Z)`, the mean of `Z` over real positions.

    Call args:
        inputs: `(batch, seq_len, dim)` encoded sequence `Z`.
        mask: `(batch, seq_len)` boolean, True at real (non-padding)
            positions. Required: the layer never guesses padding.

    Returns:
        `(batch, dim)`. A row with an empty history gives a zero vector
        (never NaN), which the similarity functions map to similarity 0.
    """

    def call(self, inputs, mask=None):
        if mask is None:
            raise ValueError(
                "`mask` is required: pass the padding mask of the sequence "
                "(True where the item id is not 0)."
            )
        return sitn_ops.masked_mean(inputs, mask)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def compute_mask(self, inputs, mask=None):
        return None
