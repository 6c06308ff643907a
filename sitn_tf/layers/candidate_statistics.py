"""Embeddings of the candidate's statistics: a feature beyond the paper."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from sitn_tf.checks import check_int, check_rate


@keras.saving.register_keras_serializable(package="sitn_tf")
class CandidateStatistics(keras.layers.Layer):
    """Embeds the candidate's bucketised statistics and concatenates them.

    Each input is a `(batch,)` (or `(batch, 1)`) integer bucket id from the
    Transform (`sitn_tf.preprocessing.log2_bucket`): 0 = unknown, 1 = zero
    ("never clicked before"), then one bucket per power of two. Bucket `b` of
    statistic `j` is row `b` of its own `(num_buckets[j], dim)` table. Ids
    outside `[0, num_buckets[j])` are clipped into it (the last bucket already
    means "at least 2**(num_buckets - 3)").

    Training sees every statistic known, so the "unknown" row would never be
    trained, and a serving request that omits the statistics would be scored
    from a random vector: the out-of-vocabulary problem again. So in training
    each id is replaced by 0 with probability `unknown_rate`, independently
    per example and statistic; at inference ids pass unchanged.

    Args:
        num_buckets: the table size of each statistic, each >= 3.
        dim: embedding width of each statistic.
        unknown_rate: the training-time probability of masking an id to 0.

    Call args:
        inputs: a list of `len(num_buckets)` integer tensors `(batch,)`.

    Returns:
        `(batch, len(num_buckets) * dim)`, the embeddings concatenated in
        input order.
    """

    def __init__(
        self,
        num_buckets: Sequence[int],
        dim: int,
        unknown_rate: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(num_buckets, (str, bytes)) or not isinstance(num_buckets, Sequence):
            raise ValueError(f"`num_buckets` must be a sequence of ints >= 3, got {num_buckets!r}.")
        if not num_buckets:
            raise ValueError("`num_buckets` must not be empty, got ().")
        for value in num_buckets:
            check_int("num_buckets", value, 3)
        check_int("dim", dim, 1)
        check_rate("unknown_rate", unknown_rate)
        self.num_buckets = tuple(int(v) for v in num_buckets)
        self.dim = int(dim)
        self.unknown_rate = float(unknown_rate)
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed) if unknown_rate > 0 else None

    def build(self, input_shape=None):
        self.tables = [
            self.add_weight(
                name=f"table_{j}",
                shape=(size, self.dim),
                initializer=keras.initializers.RandomNormal(stddev=0.05),
            )
            for j, size in enumerate(self.num_buckets)
        ]
        self.built = True

    def call(self, inputs, training=None):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != len(self.num_buckets):
            raise ValueError(
                f"CandidateStatistics expects a list of {len(self.num_buckets)} bucket-id "
                f"tensors (one per entry of `num_buckets`), got {inputs!r}."
            )
        embedded = []
        for ids, table, size in zip(inputs, self.tables, self.num_buckets, strict=True):
            ids = ops.convert_to_tensor(ids)
            if len(ids.shape) == 2:
                ids = ops.squeeze(ids, 1)
            ids = ops.clip(ops.cast(ids, "int32"), 0, size - 1)
            if training and self._seed_generator is not None:
                keep = keras.random.uniform(ops.shape(ids), seed=self._seed_generator)
                ids = ops.where(keep < self.unknown_rate, ops.zeros_like(ids), ids)
            embedded.append(ops.take(table, ids, axis=0))
        return ops.concatenate(embedded, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], len(self.num_buckets) * self.dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_buckets": list(self.num_buckets),
                "dim": self.dim,
                "unknown_rate": self.unknown_rate,
                "seed": self.seed,
            }
        )
        return config
