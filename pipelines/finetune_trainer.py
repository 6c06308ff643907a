"""`run_fn` of the "finetune" Trainer: SITN stage 2 (Eqs. 8-9), or the DIN baseline.

With a `base_model` (the "pretrain" Trainer's output) the ranker's encoders
start from the pretrained ones (`SITNRanker.load_pretrained`); the restored
variables are listed in `restored_variables.json`. Without one (the
`pretrain=False` ablation) it trains from scratch.

Training runs `train_steps` steps split into `training.num_epochs` epochs,
evaluating AUC and logloss on the eval split after each; early stopping keeps
the best epoch's weights, recorded in `training_summary.json`. The exported
SavedModel is described in `pipelines/serving.py`.
"""

from __future__ import annotations

import logging
import os
import time

import keras
import tensorflow_transform as tft
from tfx import v1 as tfx

from pipelines import serving, train_lib
from sitn_tf import files
from sitn_tf.models import DIN, SITNRanker

logger = logging.getLogger(__name__)

KERAS_MODEL_FILE = "model.keras"


def build_model(config, training: dict) -> keras.Model:
    model = DIN(config) if training["model"] == "din" else SITNRanker(config)
    model.compile(
        optimizer=keras.optimizers.Adam(float(training["learning_rate"])),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryCrossentropy(name="logloss")],
        jit_compile=training["jit_compile"],
    )
    return model


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    config = train_lib.model_config(fn_args.custom_config, tf_transform_output)
    training = train_lib.training_config(fn_args.custom_config)
    keras.utils.set_random_seed(int(training["seed"]))
    batch = int(training["batch_size"])

    def dataset(files, shuffle):
        return train_lib.transformed_dataset(
            files,
            tf_transform_output,
            batch,
            shuffle=shuffle,
            seed=int(training["seed"]),
            repeat=shuffle,
            shuffle_buffer=int(training["shuffle_buffer"]),
        )

    strategy = train_lib.distribution_strategy(training["distribution"])
    with strategy.scope():
        model = build_model(config, training)
        restored: list[str] = []
        if fn_args.base_model:
            if training["model"] == "din":
                raise ValueError("the DIN baseline takes no pretrained base_model")
            restored = model.load_pretrained(fn_args.base_model)
    epochs, steps_per_epoch = train_lib.epochs_for(fn_args.train_steps, training)
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_auc",
        mode="max",
        patience=int(training["early_stopping_patience"]),
        restore_best_weights=True,
    )
    start = time.monotonic()
    history = model.fit(
        dataset(fn_args.train_files, shuffle=True),
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=dataset(fn_args.eval_files, shuffle=False),
        validation_steps=fn_args.eval_steps or None,
        callbacks=[early_stopping, keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)],
        verbose=2,
    )
    train_seconds = time.monotonic() - start
    val_auc = history.history.get("val_auc", [])
    best_epoch = int(max(range(len(val_auc)), key=val_auc.__getitem__)) + 1 if val_auc else epochs
    serving.export_serving_model(model, tf_transform_output, fn_args.serving_model_dir)
    # The Keras model as trained, beside the logs: for analysis and for
    # checking the SavedModel against it.
    model.save(os.path.join(fn_args.model_run_dir, KERAS_MODEL_FILE))
    out = fn_args.serving_model_dir
    files.write_json(os.path.join(out, "assets.extra", "sitn_config.json"), config.to_dict())
    files.write_json(os.path.join(fn_args.model_run_dir, "restored_variables.json"), restored)
    files.write_json(
        os.path.join(fn_args.model_run_dir, "training_summary.json"),
        {
            "model": training["model"],
            "pretrained": bool(fn_args.base_model),
            "restored_variables": len(restored),
            "epochs_run": len(history.history.get("loss", [])),
            "best_epoch": best_epoch,
            "steps_per_epoch": steps_per_epoch,
            "train_seconds": round(train_seconds, 2),
            "history": history.history,
            "training": training,
        },
    )
    logger.info(
        "stage 2 done in %.1fs, best epoch %d of %d, restored %d pretrained variables",
        train_seconds,
        best_epoch,
        len(history.history.get("loss", [])),
        len(restored),
    )
