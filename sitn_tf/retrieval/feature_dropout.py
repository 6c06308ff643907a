"""Feature Dropout for multi-valued item features.

Yao et al. CIKM 2021: the second stage of its two-stage augmentation (the
first is feature masking), and alone its "FD" baseline.
"""

from __future__ import annotations

import keras
from keras import ops

from sitn_tf.checks import check_rate


@keras.saving.register_keras_serializable(package="sitn_tf")
class FeatureDropout(keras.layers.Layer):
    """Drops values of a multi-valued feature at random, during training only.

    Each non-padding value of a `(batch, max_values)` id bag (0 = padding)
    is replaced by 0 with probability `rate`, independently, so that a
    pooled bag embedding sees a random subset of the item's values (an item
    with tags `{a, b}` is also seen as `{a}`, `{b}` or `{}`). Unlike
    `keras.layers.Dropout` no rescaling happens: the values are ids, and the
    pooling that follows averages over the values kept.

    Args:
        rate: drop probability in `[0, 1)`.
        seed: seed of the draws.

    Inputs `(batch, max_values)` int; output the same shape and dtype. At
    inference (`training` not True) the input is returned unchanged.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        check_rate("rate", rate)
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, values, training=None):
        if not training or self.rate == 0.0:
            return values
        keep = keras.random.uniform(ops.shape(values), seed=self.seed_generator) >= self.rate
        return ops.where(keep, values, ops.zeros_like(values))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
