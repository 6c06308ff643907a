"""Feature masking for the two views of self-supervised item towers.

Yao et al., "Self-supervised Learning for Large-scale Item Recommendations",
CIKM 2021, its two-stage augmentation: Random Feature Masking (RFM) and Correlated Feature
Masking (CFM).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from sitn_tf.checks import check_int

MODES = ("rfm", "cfm")


@keras.saving.register_keras_serializable(package="sitn_tf")
class FeatureMasking(keras.layers.Layer):
    """Two complementary masked views of per-feature item embeddings.

    Each item has `F` feature embeddings (`(batch, F, d)`: id, category, ...).
    The layer draws, per item, a set `M` of features to mask in the first
    view; the second view masks the complement, so the two views share no
    feature and the contrastive loss must relate different features of the
    same item. A masked feature is replaced by a *learned* default embedding
    of that feature (one `(d,)` vector per feature), as an unknown value
    would be, not by zeros (which the tower could not tell from a real value).

    * `mode="rfm"`: `M` is a uniformly random set of `n = max(1, F // 2)`
      features.
    * `mode="cfm"`: a seed feature `f` is drawn uniformly and
      `M = groups[f]`, the seed and the features most correlated with it
      (`mutual_information.correlated_groups`). Masking correlated features
      together stops the tower from recovering a masked feature from its
      correlated partner in the same view.

    Args:
        num_features: `F >= 2`.
        mode: `"rfm"` or `"cfm"`.
        groups: for `cfm`, `(F, F)` bools (row `f`: the features masked when
            `f` is the seed); a nested list in the config.
        seed: seed of the layer's random draws.

    `call(features, training)` returns `(view_a, view_b)`, each
    `(batch, F, d)`. `masks(batch)` returns the two `(batch, F)` bool masks
    (True = masked) it draws; `apply(features, mask)` replaces the masked
    features by the defaults (also used for feature dropout of whole bags).
    """

    def __init__(
        self,
        num_features: int,
        mode: str = "rfm",
        groups: list[list[bool]] | np.ndarray | None = None,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_int("num_features", num_features, minimum=2)
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
        if mode == "cfm":
            if groups is None:
                raise ValueError("`groups` must be given for mode 'cfm'.")
            array = np.asarray(groups, dtype=bool)
            if array.shape != (num_features, num_features):
                raise ValueError(
                    f"`groups` must have shape ({num_features}, {num_features}), got {array.shape}."
                )
            if not array[np.arange(num_features), np.arange(num_features)].all():
                raise ValueError("`groups` must mask each seed feature itself (diagonal True).")
            if array.all(axis=1).any():
                raise ValueError("`groups` must leave a feature unmasked in every row.")
            groups = array.tolist()
        self.num_features = num_features
        self.mode = mode
        self.groups = groups
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        # One learned "unknown value" per feature.
        self.defaults = self.add_weight(
            name="defaults",
            shape=(self.num_features, int(input_shape[-1])),
            initializer="random_normal",
        )
        self.built = True

    def masks(self, batch):
        """Two complementary `(batch, F)` bool masks (True = masked) drawn per item."""
        f = self.num_features
        if self.mode == "rfm":
            noise = keras.random.uniform((batch, f), seed=self.seed_generator)
            # The rank of each feature's noise is a uniform random permutation.
            ranks = ops.argsort(ops.argsort(noise, axis=-1), axis=-1)
            first = ops.less(ranks, max(1, f // 2))
        else:
            seeds = keras.random.randint((batch,), 0, f, seed=self.seed_generator)
            first = ops.take(ops.convert_to_tensor(self.groups, dtype="bool"), seeds, axis=0)
        return first, ops.logical_not(first)

    def apply(self, features, mask):
        """`features` with the entries where `mask` `(batch, F)` is True set to the defaults."""
        defaults = ops.cast(self.defaults, features.dtype)[None, :, :]
        return ops.where(mask[:, :, None], defaults, features)

    def call(self, features, training=None):
        first, second = self.masks(ops.shape(features)[0])
        return self.apply(features, first), self.apply(features, second)

    def compute_output_shape(self, input_shape):
        return (input_shape, input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_features": self.num_features,
                "mode": self.mode,
                "groups": self.groups,
                "seed": self.seed,
            }
        )
        return config
