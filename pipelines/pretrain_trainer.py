"""`run_fn` of the "pretrain" Trainer: SITN stage 1 (Eqs. 1-7, `L_ssl = L_i2i + L_i2c`).

Input: the transformed train split, reduced to one row per clicked instance
with a non-empty target history: negatives repeat their positive's histories
(false negatives for InfoNCE), and a user with no target history has no
cross-domain pair to contrast.

Output (the Trainer's Model artifact): `pretrainer.keras`, the whole
`SITNPretrainer`, which the "finetune" Trainer receives as `base_model` and
loads with `SITNRanker.load_pretrained`; plus `sitn_config.json` and
`history.json`. TensorBoard logs go to the model_run artifact.
"""

from __future__ import annotations

import logging
import os

import keras
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from pipelines import train_lib
from sitn_tf import features as F
from sitn_tf import files
from sitn_tf.models import SITNPretrainer

logger = logging.getLogger(__name__)

PRETRAINER_FILE = "pretrainer.keras"


def _pretraining_pair(x: dict[str, tf.Tensor]) -> tf.Tensor:
    """`(batch,)` bool: clicked examples with a non-empty target history.

    `x` is a parsed batch: `label` `(batch,)`, `target_item_ids`
    `(batch, max_seq_len)` with 0 as padding.
    """
    has_history = tf.reduce_any(tf.not_equal(x[F.TARGET_ITEM_IDS], 0), axis=-1)
    return tf.logical_and(tf.equal(x[F.LABEL], 1), has_history)


def build_model(config, training: dict) -> keras.Model:
    """`SITNPretrainer` compiled as this Trainer trains it (Adam, `L_ssl` from the model)."""
    model = SITNPretrainer(config)
    model.compile(
        optimizer=keras.optimizers.Adam(float(training["pretrain_learning_rate"])),
        jit_compile=training["pretrain_jit_compile"],
    )
    return model


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    config = train_lib.model_config(fn_args.custom_config, tf_transform_output)
    training = train_lib.training_config(fn_args.custom_config)
    keras.utils.set_random_seed(int(training["seed"]))

    def dataset(files, shuffle):
        return train_lib.transformed_dataset(
            files,
            tf_transform_output,
            int(training["pretrain_batch_size"]),
            shuffle=shuffle,
            seed=int(training["seed"]),
            repeat=shuffle,
            keep=_pretraining_pair,
            with_label=False,
            shuffle_buffer=int(training["shuffle_buffer"]),
        )

    epochs, steps_per_epoch = train_lib.epochs_for(fn_args.train_steps, training)
    strategy = train_lib.distribution_strategy(training["distribution"])
    with strategy.scope():
        model = build_model(config, training)
    history = model.fit(
        dataset(fn_args.train_files, shuffle=True),
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=dataset(fn_args.eval_files, shuffle=False),
        validation_steps=fn_args.eval_steps or None,
        callbacks=[keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)],
        verbose=2,
    )
    os.makedirs(fn_args.serving_model_dir, exist_ok=True)
    model.save(os.path.join(fn_args.serving_model_dir, PRETRAINER_FILE))
    files.write_json(os.path.join(fn_args.serving_model_dir, "sitn_config.json"), config.to_dict())
    files.write_json(os.path.join(fn_args.serving_model_dir, "history.json"), history.history)
    logger.info("stage 1 done: %s", {k: v[-1] for k, v in history.history.items()})
