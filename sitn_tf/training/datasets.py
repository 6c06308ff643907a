"""tf.data input for both stages: transformed examples -> batches of model inputs.

`transformed_dataset` reads the Transform's output (gzip TFRecords of the
integer ids `sitn_tf.preprocessing` writes) and parses a batch at a time.
`pretraining_pair` is stage 1's filter: one row per clicked instance with a
non-empty target history. `stage_datasets` gives the (train, eval) pair each
stage reads, as the Trainers, the experiments and the benchmarks read them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import tensorflow as tf
import tensorflow_transform as tft

from sitn_tf import features as F
from sitn_tf.config import TrainingConfig

PRETRAIN = "pretrain"
FINETUNE = "finetune"


def pretraining_pair(x: dict[str, tf.Tensor]) -> tf.Tensor:
    """`(batch,)` bool: clicked examples with a non-empty target history (stage 1's input).

    Negatives repeat their positive's histories (false negatives for the
    in-batch InfoNCE of Eqs. 3-4), and a user with no target history has no
    cross-domain pair to contrast. `x` is a parsed batch: `label` `(batch,)`,
    `target_item_ids` `(batch, max_seq_len)` with 0 as padding.
    """
    has_history = tf.reduce_any(tf.not_equal(x[F.TARGET_ITEM_IDS], 0), axis=-1)
    return tf.logical_and(tf.equal(x[F.LABEL], 1), has_history)


# Records parsed (and filtered) per `parse_example` call when `keep` is given.
_FILTER_PARSE_BATCH = 1024


def _files(file_patterns: Sequence[str] | str) -> list[str]:
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise FileNotFoundError(f"no transformed examples match {patterns}")
    return files


def transformed_dataset(
    file_patterns: Sequence[str] | str,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    repeat: bool,
    keep: Callable[[dict[str, tf.Tensor]], tf.Tensor] | None = None,
    with_label: bool = True,
    shuffle_buffer: int = 10_000,
) -> tf.data.Dataset:
    """Batches of model inputs, `(features, label)` or `features` only.

    Records are parsed a batch at a time (one `parse_example` call per batch
    rather than per record). `keep` is a vectorised predicate: it receives a
    parsed batch (features `(batch,)` or `(batch, max_seq_len)`) and returns a
    `(batch,)` bool mask of the examples to keep. Kept examples stay in
    reading order and are regrouped into batches of `batch_size` (the last
    one shorter unless `repeat`), exactly what filtering one example at a
    time would give, without a per-example op. Only the model inputs
    (`features.MODEL_INPUT_FEATURES`) and the label are kept.
    """
    spec = tf_transform_output.transformed_feature_spec()
    files = _files(file_patterns)
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed)
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
        cycle_length=min(4, len(files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not shuffle,
    )
    if repeat:
        ds = ds.repeat()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed)
    wanted = (*F.MODEL_INPUT_FEATURES, F.LABEL) if with_label else F.MODEL_INPUT_FEATURES
    if keep is not None:

        def parse_and_filter(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
            parsed = tf.io.parse_example(serialized, spec)
            mask = keep(parsed)
            if mask.dtype != tf.bool or mask.shape.rank != 1:
                raise ValueError(
                    "`keep` must return a (batch,) bool mask over a parsed batch, got "
                    f"{mask.dtype.name} of shape {mask.shape}"
                )
            return {name: tf.boolean_mask(parsed[name], mask) for name in wanted}

        # Filtering whole parsed batches, then regrouping them, replaces an
        # unbatch + per-example filter that ran at about a third of the speed
        # (docs/benchmarks.md). The parse batch is larger than most training
        # batches because a filter may keep only a fraction of it.
        ds = ds.batch(_FILTER_PARSE_BATCH).map(
            parse_and_filter, num_parallel_calls=tf.data.AUTOTUNE
        )
        ds = ds.rebatch(batch_size, drop_remainder=repeat)
    else:
        ds = ds.batch(batch_size, drop_remainder=repeat).map(
            lambda x: tf.io.parse_example(x, spec), num_parallel_calls=tf.data.AUTOTUNE
        )

    def select(x):
        inputs = {name: x[name] for name in F.MODEL_INPUT_FEATURES}
        return (inputs, x[F.LABEL]) if with_label else inputs

    return ds.map(select).prefetch(tf.data.AUTOTUNE)


def stage_datasets(
    stage: str,
    tf_transform_output: tft.TFTransformOutput,
    train_files: Sequence[str] | str,
    eval_files: Sequence[str] | str,
    training: TrainingConfig,
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """(train, eval) datasets of one stage: `PRETRAIN` (pairs) or `FINETUNE` (labelled).

    Train repeats and shuffles (seeded by `training.seed`); eval is one pass
    in reading order. Stage 1 keeps `pretraining_pair` rows and no label.
    """
    if stage not in (PRETRAIN, FINETUNE):
        raise ValueError(f"`stage` must be {PRETRAIN!r} or {FINETUNE!r}, got {stage!r}")
    pretrain = stage == PRETRAIN
    # The shuffles' op seeds pair with the global seed: set it first, so the
    # order depends on `training.seed` alone (the fit functions set it again
    # before building the model, which gives the same weights).
    keras.utils.set_random_seed(training.seed)

    def dataset(files, shuffle: bool) -> tf.data.Dataset:
        return transformed_dataset(
            files,
            tf_transform_output,
            training.pretrain_batch_size if pretrain else training.batch_size,
            shuffle=shuffle,
            seed=training.seed,
            repeat=shuffle,
            keep=pretraining_pair if pretrain else None,
            with_label=not pretrain,
            shuffle_buffer=training.shuffle_buffer,
        )

    return dataset(train_files, shuffle=True), dataset(eval_files, shuffle=False)
