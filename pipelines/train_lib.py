"""What both Trainers share: configuration, input reading, distribution strategy.

The Trainers' `custom_config` has three parts, all JSON:

* `model`: `SITNConfig` fields without the vocabulary sizes, which are read
  from the Transform output here (so the model always matches the data);
* `training`: the `TRAINING_DEFAULTS` keys below;
* `transform`: the Transform's own config (`max_seq_len`, `num_oov_buckets`),
  needed to size the embedding tables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from pipelines import preprocessing
from sitn_tf import features as F
from sitn_tf.models import SITNConfig

logger = logging.getLogger(__name__)

TRAINING_DEFAULTS: dict[str, Any] = {
    "batch_size": 256,
    "learning_rate": 1e-3,
    "pretrain_batch_size": 256,
    "pretrain_learning_rate": 1e-3,
    # The train steps are split into this many epochs, each followed by an
    # evaluation on the eval split (early stopping, TensorBoard curves).
    "num_epochs": 4,
    "early_stopping_patience": 2,
    "shuffle_buffer": 10_000,
    "seed": 42,
    # "auto": MirroredStrategy when GPUs are visible, else the default
    # strategy; or "default" / "mirrored".
    "distribution": "auto",
    "model": "sitn",  # or "din" (the target-only baseline)
    # XLA for stage 2 / DIN and for stage 1: "auto" (Keras' choice: off on a
    # CPU-only host, on with a GPU), true or false. Separate because they
    # disagree: on CPU, XLA is 1.1-1.5x for stage 2 at large batches but
    # 6-10x slower for stage 1 (docs/benchmarks.md).
    "jit_compile": "auto",
    "pretrain_jit_compile": "auto",
}


def training_config(custom_config: dict[str, Any] | None) -> dict[str, Any]:
    """`TRAINING_DEFAULTS` updated by `custom_config["training"]`; unknown keys fail."""
    given = dict((custom_config or {}).get("training", {}))
    unknown = sorted(set(given) - set(TRAINING_DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown training option(s) {unknown}; known: {sorted(TRAINING_DEFAULTS)}"
        )
    config = {**TRAINING_DEFAULTS, **given}
    for key in ("batch_size", "pretrain_batch_size", "num_epochs", "shuffle_buffer"):
        if int(config[key]) < 1:
            raise ValueError(f"`training.{key}` must be >= 1, got {config[key]}")
    if config["model"] not in ("sitn", "din"):
        raise ValueError(f"`training.model` must be 'sitn' or 'din', got {config['model']!r}")
    for key in ("jit_compile", "pretrain_jit_compile"):
        # `is`, not `in`: 1 == True would let a number through.
        if not (config[key] == "auto" or config[key] is True or config[key] is False):
            raise ValueError(f"`training.{key}` must be auto, true or false, got {config[key]!r}")
    return config


def model_config(
    custom_config: dict[str, Any] | None, tf_transform_output: tft.TFTransformOutput
) -> SITNConfig:
    """The `SITNConfig` for this data: user settings plus vocabulary sizes."""
    custom_config = custom_config or {}
    transform = preprocessing._config(custom_config.get("transform"))
    sizes = preprocessing.vocab_sizes(tf_transform_output, int(transform["num_oov_buckets"]))
    model = dict(custom_config.get("model", {}))
    if "max_seq_len" in model and int(model["max_seq_len"]) != int(transform["max_seq_len"]):
        raise ValueError(
            f"model.max_seq_len={model['max_seq_len']} differs from the Transform's "
            f"max_seq_len={transform['max_seq_len']}"
        )
    model["max_seq_len"] = int(transform["max_seq_len"])
    model.update({k: v for k, v in sizes.items() if k != "num_users"})
    return SITNConfig.from_dict(model)


def distribution_strategy(name: str) -> tf.distribute.Strategy:
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if gpus else "default"
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    raise ValueError(f"`training.distribution` must be auto|default|mirrored, got {name!r}")


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
    time would give, without a per-example op. Only the model's id features
    (`features.MODEL_ID_FEATURES`) and the label are kept.
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
    wanted = (*F.MODEL_ID_FEATURES, F.LABEL) if with_label else F.MODEL_ID_FEATURES
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
        inputs = {name: x[name] for name in F.MODEL_ID_FEATURES}
        return (inputs, x[F.LABEL]) if with_label else inputs

    return ds.map(select).prefetch(tf.data.AUTOTUNE)


def epochs_for(train_steps: int, config: dict[str, Any]) -> tuple[int, int]:
    """(epochs, steps_per_epoch) covering exactly `train_steps` when it divides evenly."""
    epochs = max(1, min(int(config["num_epochs"]), int(train_steps)))
    return epochs, max(1, int(train_steps) // epochs)
