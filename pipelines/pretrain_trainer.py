"""`run_fn` of the "pretrain" Trainer: SITN stage 1, a thin adapter to `sitn_tf.training`.

Input: the transformed train split, filtered by `sitn_tf.training.pretraining_pair`.
Output (the Trainer's Model artifact): `pretrainer.keras`, the whole
`SITNPretrainer`, which the "finetune" Trainer receives as `base_model`;
plus `sitn_config.json` and `history.json`. TensorBoard logs and
`training_summary.json` (budget, history and the eval split's cluster
health per granularity) go to the model_run artifact.

A re-run of this Trainer after it was killed mid-training continues from its
last finished epoch (`pipelines/trainer_backup.py` says where the backup is).
"""

from __future__ import annotations

import os

import tensorflow_transform as tft
from tfx import v1 as tfx

from pipelines.trainer_backup import trainer_backup
from sitn_tf import files, training
from sitn_tf.config import Config


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    config = Config.from_custom_config(fn_args.custom_config)
    transform_output = tft.TFTransformOutput(fn_args.transform_output)
    inputs = training.stage_inputs(
        training.PRETRAIN, config, transform_output, fn_args.train_files, fn_args.eval_files
    )
    backup = trainer_backup(fn_args, training.PRETRAIN)
    result = training.fit_pretrainer(
        inputs.model_config,
        config.training,
        inputs.train,
        inputs.eval,
        steps=fn_args.train_steps,
        eval_steps=fn_args.eval_steps,
        log_dir=fn_args.model_run_dir,
        backup_dir=backup.backup_dir,
        backup_inputs=backup.backup_inputs,
    )
    out = fn_args.serving_model_dir
    training.save_pretrainer(result.model, out)
    files.write_json(os.path.join(out, "sitn_config.json"), inputs.model_config.to_dict())
    files.write_json(os.path.join(out, "history.json"), result.history)
    # Budget, history and the eval split's cluster health (Eqs. 5-7), beside
    # the finetune Trainer's summary of the same name.
    files.write_json(os.path.join(fn_args.model_run_dir, "training_summary.json"), result.summary())
