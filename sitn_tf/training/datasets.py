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
import numpy as np
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
# Records grouped per call in eval (train groups `shuffle_buffer` records).
# A group cut by a block boundary becomes two: it loses its sharing.
_GROUP_PARSE_BATCH = 1024
# The features whose equality makes rows one group (those the models encode).
_HISTORY_FEATURES = (
    F.SOURCE_ITEM_IDS,
    F.SOURCE_CATEGORIES,
    F.TARGET_ITEM_IDS,
    F.TARGET_CATEGORIES,
)


def _files(file_patterns: Sequence[str] | str) -> list[str]:
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise FileNotFoundError(f"no transformed examples match {patterns}")
    return files


def _records(files: list[str], *, shuffle: bool, seed: int, repeat: bool) -> tf.data.Dataset:
    """Serialized records of `files`: files shuffled (train), interleaved, repeated (train).

    The interleave is deterministic unless shuffling, so eval reads in a
    fixed order.
    """
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed)
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
        cycle_length=min(4, len(files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not shuffle,
    )
    return ds.repeat() if repeat else ds


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
    group_histories: bool = False,
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

    `group_histories` (stage 2 and DIN): the rows of one instance, a
    positive and its negatives, carry the same histories. Rows are read as
    without grouping (files shuffled, then interleaved), in blocks of
    `shuffle_buffer` rows (train) or 1,024 (eval); within a block, rows
    with equal histories (`history_keys`) are put next to each other, and
    the histories come in a random order (train) or in order of first
    appearance (eval). Batches of `batch_size` rows are then cut from the
    stream of blocks, so a batch holds whole groups except at its two ends,
    and the models encode each run of equal histories once
    (`SITNRanker.score`). This holds whether the Transform wrote an
    instance's rows next to each other or spread them over its output files
    (as a multi-worker run does), as long as they fall in one block. Every
    row is still read exactly once per pass, with its own label; the
    shuffle permutes whole histories within blocks of `shuffle_buffer`
    rows, where the per-example stream shuffles rows through a buffer of
    that size, so users mix as widely.
    """
    if group_histories and keep is not None:
        raise ValueError("`group_histories` and `keep` cannot be combined")
    spec = tf_transform_output.transformed_feature_spec()
    files = _files(file_patterns)
    wanted = (*F.MODEL_INPUT_FEATURES, F.LABEL) if with_label else F.MODEL_INPUT_FEATURES
    if group_histories:
        return _grouped_dataset(
            files, spec, wanted, batch_size, shuffle=shuffle, seed=seed, repeat=repeat,
            with_label=with_label, shuffle_buffer=shuffle_buffer,
        )  # fmt: skip
    ds = _records(files, shuffle=shuffle, seed=seed, repeat=repeat)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed)
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

    return ds.map(_selector(with_label)).prefetch(tf.data.AUTOTUNE)


def read_columns(
    file_patterns: Sequence[str] | str,
    tf_transform_output: tft.TFTransformOutput,
    names: Sequence[str],
    batch_size: int = 4096,
) -> dict[str, np.ndarray]:
    """Every transformed example of `file_patterns`, in reading order, as numpy columns.

    For consumers that hold a split in memory (the retrieval Trainer): each
    `names` feature becomes one array, `(N,)` or `(N, width)`. A name the
    Transform did not write raises a `KeyError` naming it and the features
    it has.
    """
    spec = tf_transform_output.transformed_feature_spec()
    missing = [name for name in names if name not in spec]
    if missing:
        raise KeyError(f"the transformed examples have no {missing}; they have {sorted(spec)}")
    wanted = {name: spec[name] for name in names}
    ds = _records(_files(file_patterns), shuffle=False, seed=0, repeat=False)
    ds = ds.batch(batch_size).map(lambda x: tf.io.parse_example(x, wanted))
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for batch in ds.as_numpy_iterator():
        for name in names:
            parts[name].append(batch[name])
    return {
        name: np.concatenate(chunks) if chunks else np.zeros((0,), np.int64)
        for name, chunks in parts.items()
    }


def _selector(with_label: bool):
    def select(x):
        inputs = {name: x[name] for name in F.MODEL_INPUT_FEATURES}
        return (inputs, x[F.LABEL]) if with_label else inputs

    return select


def history_keys(parsed: dict[str, tf.Tensor]) -> tf.Tensor:
    """`(batch,)` int64 fingerprint of each row's histories (`_HISTORY_FEATURES`).

    Equal histories give equal keys; two different histories may collide,
    which only puts them next to each other: the models compare the rows
    themselves (`sitn_tf.ops.adjacent_runs`).
    """
    rows = tf.concat([tf.cast(parsed[name], tf.int64) for name in _HISTORY_FEATURES], axis=1)
    return tf.bitcast(tf.fingerprint(rows), tf.int64)  # (batch, 8) uint8 -> (batch,)


def _grouped_dataset(
    files: list[str],
    spec: dict,
    wanted: tuple[str, ...],
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    repeat: bool,
    with_label: bool,
    shuffle_buffer: int,
) -> tf.data.Dataset:
    """`transformed_dataset(group_histories=True)`: see there."""
    # Shuffling permutes whole blocks of `shuffle_buffer` rows (as many as
    # the per-example shuffle buffer holds); eval keeps parse batches.
    block = max(1, shuffle_buffer) if shuffle else _GROUP_PARSE_BATCH

    def grouped_block(index: tf.Tensor, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, spec)
        # `first` numbers the distinct histories in order of first appearance.
        keys, first = tf.unique(history_keys(parsed), out_idx=tf.int64)
        if shuffle:
            # A random order of the histories, from the seed and the block's
            # number: reproducible, and different in every block and epoch.
            draw = tf.random.stateless_uniform(tf.shape(keys), seed=tf.stack([seed, index]))
            first = tf.gather(tf.argsort(tf.argsort(draw)), first)
        # A stable sort on the history's number: rows of one history become
        # adjacent, in reading order; histories come in order of first
        # appearance (eval) or in a random order (train).
        order = tf.argsort(first, stable=True)
        return {name: tf.gather(parsed[name], order) for name in wanted}

    ds = _records(files, shuffle=shuffle, seed=seed, repeat=repeat)
    ds = ds.batch(block).enumerate().map(grouped_block, num_parallel_calls=tf.data.AUTOTUNE)
    # Cutting fixed-size batches from the stream of blocks keeps the groups'
    # rows adjacent within each batch (a group is cut only at a batch's ends).
    ds = ds.rebatch(batch_size, drop_remainder=repeat)
    return ds.map(_selector(with_label)).prefetch(tf.data.AUTOTUNE)


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
    Stage 2 reads an instance's candidates as one group
    (`transformed_dataset(group_histories=True)`), in train and eval.
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
            group_histories=not pretrain,
        )

    return dataset(train_files, shuffle=True), dataset(eval_files, shuffle=False)
