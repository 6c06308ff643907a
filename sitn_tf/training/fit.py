"""Fitting both stages from tf.data datasets: the training API below TFX.

    config = Config(...)                                   # sitn_tf.config
    model_config = sized_model_config(config, tf_transform_output)
    train, eval_ = stage_datasets(PRETRAIN, tf_transform_output, files, files, config.training)
    stage1 = fit_pretrainer(model_config, config.training, train, eval_,
                            steps=config.run.pretrain_steps, eval_steps=config.run.eval_steps)
    train, eval_ = stage_datasets(FINETUNE, ...)
    stage2 = fit_ranker(model_config, config.training, train, eval_,
                        steps=config.run.train_steps, eval_steps=config.run.eval_steps,
                        pretrained=stage1.model)
    stage2.model, stage2.history, stage2.best_epoch      # Python objects, nothing read back

Stage 1 (`fit_pretrainer`) minimises `L_ssl = L_i2i + L_i2c` (Eqs. 3-7),
which `SITNPretrainer` owns. Stage 2 (`fit_ranker`) minimises Eq. 9's BCE,
which `SITNRanker` and `DIN` own (`CTRModel`), evaluates AUC and logloss on
the eval split after every epoch, stops early on eval AUC and restores the
best epoch's weights. Both log to TensorBoard when given a `log_dir`.

Given a `backup_dir`, both back the training up after every epoch and a
later call with the same arguments and folder continues after the last
finished epoch, with the full history, early stopping's state and the
same total steps (`sitn_tf.training.resume`; `FitResult.initial_epoch`
says where it continued). The TFX Trainers' `run_fn`s (`pipelines/`), the
experiments and the benchmarks (`sitn_tools/`) all train through these
functions.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import tensorflow as tf
import tensorflow_transform as tft

from sitn_tf import preprocessing
from sitn_tf.config import Config, TrainingConfig
from sitn_tf.models import DIN, SITNConfig, SITNPretrainer, SITNRanker
from sitn_tf.models.ctr import AUC, LOGLOSS
from sitn_tf.training.datasets import FINETUNE, PRETRAIN, stage_datasets
from sitn_tf.training.early_stopping import GuardedEarlyStopping
from sitn_tf.training.resume import TrainingBackup

logger = logging.getLogger(__name__)

PRETRAINER_FILE = "pretrainer.keras"


@dataclasses.dataclass
class FitResult:
    """What one stage's training gives back.

    Attributes:
        model: the trained model (stage 2: with the best epoch's weights).
        history: Keras' per-epoch logs (`loss`, ..., `val_auc`, ...).
        best_epoch: 1-based epoch whose weights `model` holds (the last
            epoch for stage 1, which has no early stopping).
        epochs_run: epochs trained before the budget ended or early stopping
            (a resumed training: including the epochs before the backup).
        steps_per_epoch: optimizer steps per epoch.
        seconds: wall time of this call's `fit` (a resumed training: the
            epochs after the backup).
        restored_variables: pretrained variable paths loaded into stage 2.
        initial_epoch: finished epochs restored from `backup_dir` (0: the
            training started from scratch).
        refused_epochs: stage 2: 1-based epochs that the logloss guard
            (`training.max_logloss_rise`) kept from being selected.
        cluster_health: stage 1: the eval split's cluster health of the
            last epoch per granularity and its instance collapse
            (`SITNPretrainer.cluster_health`); None for stage 2.
    """

    model: keras.Model
    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int
    steps_per_epoch: int
    seconds: float
    restored_variables: list[str] = dataclasses.field(default_factory=list)
    initial_epoch: int = 0
    cluster_health: dict[str, Any] | None = None
    refused_epochs: list[int] = dataclasses.field(default_factory=list)

    @property
    def steps(self) -> int:
        return self.epochs_run * self.steps_per_epoch

    def summary(self) -> dict[str, Any]:
        """JSON-safe description (no model), e.g. for a Trainer's `training_summary.json`."""
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "steps_per_epoch": self.steps_per_epoch,
            "train_seconds": round(self.seconds, 2),
            "restored_variables": len(self.restored_variables),
            "initial_epoch": self.initial_epoch,
            **({} if self.cluster_health is None else {"cluster_health": self.cluster_health}),
            "refused_epochs": self.refused_epochs,
            "history": self.history,
        }


def sized_model_config(config: Config, tf_transform_output: tft.TFTransformOutput) -> SITNConfig:
    """`config.model` with the vocabulary sizes of this Transform output (the model fits the data)."""
    sizes = preprocessing.vocab_sizes(tf_transform_output, config.transform.num_oov_buckets)
    return config.model.with_vocab_sizes(
        num_source_items=sizes["num_source_items"],
        num_target_items=sizes["num_target_items"],
        num_categories=sizes["num_categories"],
    )


@dataclasses.dataclass
class StageInputs:
    """What one stage trains on: the model config sized for the data, and its datasets."""

    model_config: SITNConfig
    train: tf.data.Dataset
    eval: tf.data.Dataset


def stage_inputs(
    stage: str,
    config: Config,
    tf_transform_output: tft.TFTransformOutput,
    train_files: Sequence[str] | str,
    eval_files: Sequence[str] | str,
) -> StageInputs:
    """`sized_model_config` and `stage_datasets` of one stage (`PRETRAIN` or `FINETUNE`)."""
    train, eval_ = stage_datasets(
        stage, tf_transform_output, train_files, eval_files, config.training
    )
    return StageInputs(sized_model_config(config, tf_transform_output), train, eval_)


def distribution_strategy(name: str) -> tf.distribute.Strategy:
    """`auto`: MirroredStrategy when GPUs are visible, else the default strategy."""
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if gpus else "default"
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    raise ValueError(f"`training.distribution` must be auto|default|mirrored, got {name!r}")


def epochs_for(steps: int, training: TrainingConfig) -> tuple[int, int]:
    """(epochs, steps_per_epoch) covering exactly `steps` when it divides evenly."""
    epochs = max(1, min(training.num_epochs, int(steps)))
    return epochs, max(1, int(steps) // epochs)


def build_pretrainer(config: SITNConfig, training: TrainingConfig) -> SITNPretrainer:
    """`SITNPretrainer` compiled as stage 1 trains it (Adam; `L_ssl` comes from the model)."""
    model = SITNPretrainer(config)
    model.compile(
        optimizer=keras.optimizers.Adam(training.pretrain_learning_rate),
        jit_compile=training.pretrain_jit_compile,
    )
    return model


def build_ranker(config: SITNConfig, training: TrainingConfig) -> SITNRanker | DIN:
    """Stage 2's model (`training.model`: `sitn` or `din`), compiled with its own BCE and metrics."""
    model = DIN(config) if training.model == "din" else SITNRanker(config)
    model.compile(
        optimizer=keras.optimizers.Adam(training.learning_rate),
        jit_compile=training.jit_compile,
    )
    return model


@dataclasses.dataclass
class _Fitted:
    history: dict[str, list[float]]
    epochs: int
    steps_per_epoch: int
    seconds: float
    initial_epoch: int


def _fingerprint(
    stage: str,
    config: SITNConfig,
    training: TrainingConfig,
    *,
    steps: int,
    eval_steps: int | None,
    inputs: Mapping[str, Any] | None,
    **extra: Any,
) -> dict[str, Any]:
    """What a backup belongs to: a backup with another fingerprint is refused."""
    return {
        "stage": stage,
        "model_config": config.to_dict(),
        "training": dataclasses.asdict(training),
        "steps": int(steps),
        "eval_steps": eval_steps,
        "inputs": dict(inputs or {}),
        **extra,
    }


def _fit(
    model: keras.Model,
    train: tf.data.Dataset,
    eval_: tf.data.Dataset,
    *,
    steps: int,
    training: TrainingConfig,
    eval_steps: int | None,
    log_dir: str | None,
    callbacks: list[keras.callbacks.Callback],
    verbose: int,
    backup: TrainingBackup | None,
) -> _Fitted:
    """`model.fit` over `steps` split into epochs, continuing `backup` when it holds one."""
    epochs, steps_per_epoch = epochs_for(steps, training)
    initial_epoch, history = 0, {}
    if backup is not None:
        with model.distribute_strategy.scope():
            point = backup.restore(model)
        history = point.history
        # An ended training (early stopped, or killed after its last backup)
        # runs no epoch: `fit` only restores the best weights.
        initial_epoch = epochs if point.stopped else point.epoch
        if 0 < initial_epoch < epochs:
            # The batches the finished epochs consumed: `fit` reuses one
            # iterator across epochs, so the next epoch starts where they ended.
            train = train.skip(initial_epoch * steps_per_epoch)
        # After `callbacks`: it saves and restores early stopping's state.
        callbacks = [*callbacks, backup]
    if log_dir:
        callbacks = [*callbacks, keras.callbacks.TensorBoard(log_dir=log_dir)]
    start = time.monotonic()
    fitted = model.fit(
        train,
        epochs=epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        validation_data=eval_,
        validation_steps=eval_steps or None,
        callbacks=callbacks,
        verbose=verbose,
    )
    seconds = time.monotonic() - start
    if backup is not None:
        history = backup.history  # every epoch, those before the backup too
        backup.delete()
    else:
        history = fitted.history
    return _Fitted(_plain_history(history), epochs, steps_per_epoch, seconds, initial_epoch)


def _backup(
    backup_dir: str | os.PathLike | None,
    fingerprint: dict[str, Any],
    early_stopping: keras.callbacks.EarlyStopping | None = None,
) -> TrainingBackup | None:
    if backup_dir is None:
        return None
    return TrainingBackup(os.fspath(backup_dir), fingerprint, early_stopping)


def fit_pretrainer(
    config: SITNConfig,
    training: TrainingConfig,
    train: tf.data.Dataset,
    eval_: tf.data.Dataset,
    *,
    steps: int,
    eval_steps: int | None = None,
    log_dir: str | None = None,
    verbose: int = 2,
    backup_dir: str | os.PathLike | None = None,
    backup_inputs: Mapping[str, Any] | None = None,
) -> FitResult:
    """Stage 1: `steps` optimizer steps of `L_ssl` on `train` (pairs), evaluated on `eval_`.

    `train` repeats (see `stage_datasets`); `eval_steps` caps each evaluation.
    `backup_dir`: back up each epoch there and continue a backup found
    there (`sitn_tf.training.resume`); `backup_inputs` (JSON-safe, e.g. the
    input file paths) is part of what a backup must match.
    """
    backup = _backup(
        backup_dir,
        _fingerprint(
            PRETRAIN, config, training, steps=steps, eval_steps=eval_steps, inputs=backup_inputs
        ),
    )
    keras.utils.set_random_seed(training.seed)
    with distribution_strategy(training.distribution).scope():
        model = build_pretrainer(config, training)
    fitted = _fit(
        model,
        train,
        eval_,
        steps=steps,
        training=training,
        eval_steps=eval_steps,
        log_dir=log_dir,
        callbacks=[],
        verbose=verbose,
        backup=backup,
    )
    logger.info(
        "stage 1 done in %.1fs: %s", fitted.seconds, {k: v[-1] for k, v in fitted.history.items()}
    )
    last = {name: values[-1] for name, values in fitted.history.items() if values}
    return FitResult(
        model=model,
        history=fitted.history,
        best_epoch=fitted.epochs,
        epochs_run=len(fitted.history.get("loss", [])),
        steps_per_epoch=fitted.steps_per_epoch,
        seconds=fitted.seconds,
        initial_epoch=fitted.initial_epoch,
        cluster_health=model.cluster_health(last),
    )


def fit_ranker(
    config: SITNConfig,
    training: TrainingConfig,
    train: tf.data.Dataset,
    eval_: tf.data.Dataset,
    *,
    steps: int,
    eval_steps: int | None = None,
    pretrained: SITNPretrainer | str | os.PathLike | None = None,
    log_dir: str | None = None,
    verbose: int = 2,
    backup_dir: str | os.PathLike | None = None,
    backup_inputs: Mapping[str, Any] | None = None,
) -> FitResult:
    """Stage 2 (or DIN): BCE on `train`, early stopping on `eval_` AUC, best epoch restored.

    `pretrained` (a `SITNPretrainer`, a `.keras` file or a folder with one)
    initialises the encoders (`SITNRanker.load_pretrained`); None trains
    from scratch. DIN takes no pretrained model. `backup_dir` and
    `backup_inputs`: as in `fit_pretrainer` (a path `pretrained` is part
    of what a backup must match; a model object is not).
    """
    if pretrained is not None and training.model == "din":
        raise ValueError("the DIN baseline takes no pretrained model")
    keras.utils.set_random_seed(training.seed)
    with distribution_strategy(training.distribution).scope():
        model = build_ranker(config, training)
        restored = model.load_pretrained(pretrained) if pretrained is not None else []
    early_stopping = GuardedEarlyStopping(
        guard=f"val_{LOGLOSS}",
        max_rise=training.max_logloss_rise,
        monitor=f"val_{AUC}",
        mode="max",
        patience=training.early_stopping_patience,
        restore_best_weights=True,
    )
    from_path = pretrained is not None and not isinstance(pretrained, SITNPretrainer)
    backup = _backup(
        backup_dir,
        _fingerprint(
            FINETUNE,
            config,
            training,
            steps=steps,
            eval_steps=eval_steps,
            inputs=backup_inputs,
            pretrained=os.fspath(pretrained) if from_path else None,
        ),
        early_stopping,
    )
    fitted = _fit(
        model,
        train,
        eval_,
        steps=steps,
        training=training,
        eval_steps=eval_steps,
        log_dir=log_dir,
        callbacks=[early_stopping],
        verbose=verbose,
        backup=backup,
    )
    val_auc = fitted.history.get(f"val_{AUC}", [])
    # The epoch whose weights early stopping restored (with a logloss guard,
    # not necessarily the highest eval AUC).
    best_epoch = int(early_stopping.best_epoch) + 1 if val_auc else fitted.epochs
    epochs_run = len(fitted.history.get("loss", []))
    logger.info(
        "stage 2 done in %.1fs, best epoch %d of %d, restored %d pretrained variables",
        fitted.seconds,
        best_epoch,
        epochs_run,
        len(restored),
    )
    return FitResult(
        model=model,
        history=fitted.history,
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        steps_per_epoch=fitted.steps_per_epoch,
        seconds=fitted.seconds,
        restored_variables=list(restored),
        initial_epoch=fitted.initial_epoch,
        refused_epochs=[e + 1 for e in early_stopping.refused_epochs],
    )


def _plain_history(history: dict[str, list]) -> dict[str, list[float]]:
    return {k: [float(v) for v in values] for k, values in history.items()}


def save_pretrainer(model: SITNPretrainer, folder: str) -> str:
    """Writes `folder/pretrainer.keras` (what `SITNRanker.load_pretrained(folder)` reads)."""
    tf.io.gfile.makedirs(folder)
    path = os.path.join(folder, PRETRAINER_FILE)
    model.save(path)
    return path
