from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from sitn_tf.training.early_stopping import GuardedEarlyStopping


class _Model:
    """What EarlyStopping touches of a model: weights and stop_training."""

    def __init__(self):
        self.stop_training = False
        self.weights = [np.zeros(1)]

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [w.copy() for w in weights]


def _run(callback, aucs, loglosses):
    model = _Model()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, (auc, logloss) in enumerate(zip(aucs, loglosses, strict=True)):
        model.weights = [np.array([float(epoch)])]
        callback.on_epoch_end(epoch, {"val_auc": auc, "val_logloss": logloss})
        if model.stop_training:
            break
    callback.on_train_end()
    return model, epoch


AUCS = [0.60, 0.65, 0.66, 0.67, 0.68, 0.69]
LOGLOSSES = [0.50, 0.47, 0.475, 0.49, 0.55, 0.60]


def test_without_a_guard_it_is_keras_early_stopping():
    ours = GuardedEarlyStopping(
        monitor="val_auc", mode="max", patience=2, restore_best_weights=True
    )
    model, _ = _run(ours, AUCS, LOGLOSSES)
    assert ours.best_epoch == 5 and model.weights[0][0] == 5.0 and ours.refused_epochs == []


def test_guard_refuses_epochs_whose_logloss_ran_away():
    # Lowest logloss 0.47 (epoch 1); 5% allows up to 0.4935: epochs 2 and 3
    # qualify, epochs 4 and 5 (0.55, 0.60) are refused although their AUC is higher.
    ours = GuardedEarlyStopping(
        max_rise=0.05, monitor="val_auc", mode="max", patience=2, restore_best_weights=True
    )
    model, last = _run(ours, AUCS, LOGLOSSES)
    assert ours.refused_epochs == [4, 5]
    assert ours.best_epoch == 3 and model.weights[0][0] == 3.0
    assert ours.lowest_guard == pytest.approx(0.47)
    assert last == 5 and model.stop_training  # two refused epochs exhaust patience 2


def test_non_finite_logloss_is_refused_and_bad_arguments_are_named():
    ours = GuardedEarlyStopping(max_rise=0.0, monitor="val_auc", mode="max", patience=5)
    _run(ours, [0.6, 0.7, 0.8], [0.5, math.nan, 0.5])
    assert ours.refused_epochs == [1] and ours.best_epoch == 2
    with pytest.raises(ValueError, match="`max_rise`"):
        GuardedEarlyStopping(max_rise=-0.1, monitor="val_auc", mode="max")
    with pytest.raises(ValueError, match="`mode`"):
        GuardedEarlyStopping(max_rise=0.1, monitor="val_auc", mode="auto")
    assert isinstance(GuardedEarlyStopping(), keras.callbacks.EarlyStopping)
