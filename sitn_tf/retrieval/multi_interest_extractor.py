"""ComiRec-SA multi-interest extractor (TiMiRec, Wang et al. CIKM 2022, Eqs. 12-13)."""

from __future__ import annotations

import keras
from keras import ops

from sitn_tf.checks import check_int


@keras.saving.register_keras_serializable(package="sitn_tf")
class MultiInterestExtractor(keras.layers.Layer):
    """K interest vectors from an embedded history by self-attention.

    With the history embeddings `H` of shape `(D, n)` (one column per
    position), TiMiRec's Eq. 12 is

        A = softmax(W2^T tanh(W1 H))^T        A: (n, K), softmax over the n positions

    with `W1: (d_a, D)` and `W2: (d_a, K)`, and Eq. 13 is

        V = H A                               V: (D, K), one column per interest.

    Padding positions get attention weight exactly 0 (their logits are
    masked before the softmax); an all-padding history gives zero interests.
    No bias terms, as in Eq. 12. Position embeddings are not added, so any
    sequence length works at serving time.

    Args:
        num_interests: `K`.
        attention_units: `d_a`, the width of `W1`.

    Call args:
        history: `(batch, n, D)` embedded history.
        mask: `(batch, n)` boolean, True at real positions. Required.

    Returns:
        `(batch, K, D)`: row `k` is interest vector `v_k` (the transpose of
        the paper's column layout).
    """

    def __init__(self, num_interests: int, attention_units: int, **kwargs):
        super().__init__(**kwargs)
        check_int("num_interests", num_interests, minimum=1)
        check_int("attention_units", attention_units, minimum=1)
        self.num_interests = num_interests
        self.attention_units = attention_units

    def build(self, history_shape, mask_shape=None):
        dim = history_shape[-1]
        if dim is None:
            raise ValueError("The last dimension of `history` must be known.")
        # Stored as (D, d_a) and (d_a, K) so that `H W1` is a right-multiply of
        # the row-major `(batch, n, D)` history: W1 here is the paper's W1^T.
        self.w1 = self.add_weight(
            shape=(dim, self.attention_units), initializer="glorot_uniform", name="w1"
        )
        self.w2 = self.add_weight(
            shape=(self.attention_units, self.num_interests),
            initializer="glorot_uniform",
            name="w2",
        )
        self.built = True

    def attention(self, history, mask):
        """Eq. 12: `(batch, n, D), (batch, n) -> (batch, n, K)`, columns sum to 1."""
        logits = ops.matmul(ops.tanh(ops.matmul(history, self.w1)), self.w2)  # (B, n, K)
        mask = ops.cast(mask, "bool")[:, :, None]
        logits = ops.where(mask, logits, ops.full_like(logits, -1e9))
        weights = ops.softmax(logits, axis=1)
        # An all-padding row would be uniform over padding; zero it instead.
        return ops.where(mask, weights, ops.zeros_like(weights))

    def call(self, history, mask=None):
        if mask is None:
            raise ValueError("`MultiInterestExtractor` needs the history `mask`.")
        weights = self.attention(history, mask)
        return ops.einsum("bnk,bnd->bkd", weights, history)  # Eq. 13, V = H A

    def compute_output_shape(self, history_shape, mask_shape=None):
        return (history_shape[0], self.num_interests, history_shape[-1])

    def compute_mask(self, history, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_interests": self.num_interests, "attention_units": self.attention_units}
        )
        return config
