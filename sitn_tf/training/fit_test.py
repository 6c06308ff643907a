"""The training API on in-memory datasets: what `fit_*` return and that stage 2 keeps its best epoch."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from sitn_tf import features as F
from sitn_tf import training
from sitn_tf.config import TrainingConfig
from sitn_tf.models._testing import random_batch, tiny_config


def _labelled(config, n: int, seed: int) -> tf.data.Dataset:
    x, y = random_batch(config, batch=n, seed=seed, empty_target_rows=())
    # A learnable rule, so eval AUC moves between epochs: clicks on even items.
    y = (x[F.ITEM_ID] % 2 == 0).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y))


def _pairs(config, n: int, seed: int) -> tf.data.Dataset:
    x, _ = random_batch(config, batch=n, seed=seed, empty_target_rows=())
    return tf.data.Dataset.from_tensor_slices(x)


@pytest.mark.parametrize(
    ("steps", "num_epochs", "expected"),
    [(600, 4, (4, 150)), (3, 4, (3, 1)), (10, 3, (3, 3)), (1, 1, (1, 1))],
)
def test_epochs_for_splits_the_step_budget(steps, num_epochs, expected):
    assert training.epochs_for(steps, TrainingConfig(num_epochs=num_epochs)) == expected


def test_fit_ranker_returns_the_best_epoch_and_keeps_its_weights():
    config = tiny_config(num_target_items=40)
    settings = TrainingConfig(num_epochs=5, early_stopping_patience=5, learning_rate=3e-3, seed=3)
    train = _labelled(config, 512, seed=1).repeat().batch(64)
    # Eval rewards the opposite rule, so eval AUC falls as training goes on:
    # the best epoch is an early one, and keeping the last epoch's weights
    # (no restore) would show in the evaluation below.
    eval_ = _labelled(config, 256, seed=2).map(lambda x, y: (x, 1.0 - y)).batch(256)
    result = training.fit_ranker(config, settings, train, eval_, steps=50, eval_steps=1, verbose=0)
    val_auc = result.history["val_auc"]
    assert result.epochs_run == len(val_auc) == 5 and result.steps_per_epoch == 10
    assert result.steps == 50
    assert result.best_epoch == int(np.argmax(val_auc)) + 1
    assert result.best_epoch < result.epochs_run and max(val_auc) > val_auc[-1]
    assert {"loss", "auc", "logloss", "val_loss", "val_auc", "val_logloss"} <= set(result.history)
    # The returned model holds the best epoch's weights (early stopping restores them).
    scores = result.model.evaluate(eval_, verbose=0, return_dict=True)
    assert scores["auc"] == pytest.approx(max(val_auc), abs=1e-6)
    assert result.restored_variables == []
    summary = result.summary()
    assert summary["best_epoch"] == result.best_epoch and "model" not in summary


def test_fit_ranker_starts_from_a_pretrainer_and_din_refuses_one():
    config = tiny_config()
    settings = TrainingConfig(num_epochs=1, seed=0)
    stage1 = training.fit_pretrainer(
        config,
        settings,
        _pairs(config, 256, seed=0).repeat().batch(32),
        _pairs(config, 64, seed=1).batch(64),
        steps=4,
        verbose=0,
    )
    assert stage1.epochs_run == stage1.best_epoch == 1 and stage1.steps == 4
    assert {"loss", "loss_i2i", "loss_i2c", "val_loss"} <= set(stage1.history)
    # The eval split's cluster health of the last epoch, per granularity.
    health = stage1.summary()["cluster_health"]["granularities"]
    assert set(health) == {str(k) for k in config.granularities}
    for k, entry in health.items():
        assert entry["target_dead_clusters"] == stage1.history[f"val_target_k{k}_dead_clusters"][-1]
    train = _labelled(config, 64, seed=3).repeat().batch(32)
    eval_ = _labelled(config, 64, seed=4).batch(64)
    stage2 = training.fit_ranker(
        config, settings, train, eval_, steps=2, pretrained=stage1.model, verbose=0
    )
    encoders = {v.path for v in stage2.model.source_encoder.weights} | {
        v.path for v in stage2.model.target_encoder.weights
    }
    assert encoders and set(stage2.restored_variables) == encoders
    din = TrainingConfig(model="din")
    with pytest.raises(ValueError, match="DIN baseline takes no pretrained model"):
        training.fit_ranker(config, din, train, eval_, steps=1, pretrained=stage1.model)
