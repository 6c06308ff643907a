"""`run_fn` of the "finetune" Trainer: SITN stage 2 or DIN, a thin adapter to `sitn_tf.training`.

With a `base_model` (the "pretrain" Trainer's output) the ranker's encoders
start from the pretrained ones; without one it trains from scratch. Early
stopping on eval AUC keeps the best epoch (`training_summary.json`). The
exported SavedModel is described in `pipelines/serving.py`; the Keras model
as trained is kept beside the logs as `model.keras`.

A re-run of this Trainer after it was killed mid-training continues from its
last finished epoch (`pipelines/trainer_backup.py` says where the backup is).
"""

from __future__ import annotations

import os

import tensorflow_transform as tft
from tfx import v1 as tfx

from pipelines import serving
from pipelines.trainer_backup import trainer_backup
from sitn_tf import files, training
from sitn_tf.config import Config

KERAS_MODEL_FILE = "model.keras"


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    config = Config.from_custom_config(fn_args.custom_config)
    transform_output = tft.TFTransformOutput(fn_args.transform_output)
    inputs = training.stage_inputs(
        training.FINETUNE, config, transform_output, fn_args.train_files, fn_args.eval_files
    )
    backup = trainer_backup(fn_args, training.FINETUNE)
    result = training.fit_ranker(
        inputs.model_config,
        config.training,
        inputs.train,
        inputs.eval,
        steps=fn_args.train_steps,
        eval_steps=fn_args.eval_steps,
        pretrained=fn_args.base_model or None,
        log_dir=fn_args.model_run_dir,
        backup_dir=backup.backup_dir,
        backup_inputs=backup.backup_inputs,
    )
    serving.export_serving_model(result.model, transform_output, fn_args.serving_model_dir)
    run_dir = fn_args.model_run_dir
    result.model.save(os.path.join(run_dir, KERAS_MODEL_FILE))
    files.write_json(
        os.path.join(fn_args.serving_model_dir, "assets.extra", "sitn_config.json"),
        inputs.model_config.to_dict(),
    )
    files.write_json(os.path.join(run_dir, "restored_variables.json"), result.restored_variables)
    summary = {
        **result.summary(),
        "model": config.training.model,
        "pretrained": bool(fn_args.base_model),
        "training": config.to_dict()["training"],
    }
    files.write_json(os.path.join(run_dir, "training_summary.json"), summary)
