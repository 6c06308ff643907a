"""The training API: both SITN stages from tf.data, with no TFX.

`sitn_tf.config.Config` says what to train; `stage_datasets` reads the
Transform's output; `fit_pretrainer` (stage 1) and `fit_ranker` (stage 2 or
DIN) train and return a `FitResult` (model, history, chosen epoch); with a
`backup_dir` they back up each epoch and a killed training continues from
its last one (`resume`). The TFX Trainers' `run_fn`s are thin adapters over
these.
"""

from sitn_tf.training.datasets import (
    FINETUNE,
    PRETRAIN,
    pretraining_pair,
    stage_datasets,
    transformed_dataset,
)
from sitn_tf.training.fit import (
    PRETRAINER_FILE,
    FitResult,
    StageInputs,
    build_pretrainer,
    build_ranker,
    distribution_strategy,
    epochs_for,
    fit_pretrainer,
    fit_ranker,
    save_pretrainer,
    sized_model_config,
    stage_inputs,
)
from sitn_tf.training.resume import ResumePoint, TrainingBackup

__all__ = [
    "FINETUNE",
    "PRETRAIN",
    "PRETRAINER_FILE",
    "FitResult",
    "ResumePoint",
    "StageInputs",
    "TrainingBackup",
    "build_pretrainer",
    "build_ranker",
    "distribution_strategy",
    "epochs_for",
    "fit_pretrainer",
    "fit_ranker",
    "pretraining_pair",
    "save_pretrainer",
    "sized_model_config",
    "stage_datasets",
    "stage_inputs",
    "transformed_dataset",
]
