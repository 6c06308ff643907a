"""Resuming a training from its backup: after a crash, after a SIGKILL, and never from another training's.

The data are in-memory and unshuffled, so a resumed training can be
compared with an uninterrupted one value for value.
"""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from sitn_tf import features as F
from sitn_tf import files, training
from sitn_tf.config import TrainingConfig
from sitn_tf.models._testing import random_batch, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = tiny_config(num_target_items=40, dropout=0.3)


def _ranker_data() -> tuple[tf.data.Dataset, tf.data.Dataset]:
    x, _ = random_batch(CONFIG, batch=512, seed=1, empty_target_rows=())
    y = (x[F.ITEM_ID] % 2 == 0).astype("float32")
    train = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(64)
    x, _ = random_batch(CONFIG, batch=256, seed=2, empty_target_rows=())
    # Eval rewards the opposite rule: eval AUC falls from the first epoch on,
    # so early stopping ends the training a few epochs after an early best.
    y = (x[F.ITEM_ID] % 2 == 1).astype("float32")
    return train, tf.data.Dataset.from_tensor_slices((x, y)).batch(256)


def _crash_at(dataset: tf.data.Dataset, index: int) -> tf.data.Dataset:
    """`dataset` that fails when asked for its element `index` (0-based): a crash mid-epoch."""

    def check(i, element):
        limit = tf.constant(index, tf.int64)
        with tf.control_dependencies([tf.debugging.assert_less(i, limit, message="crash")]):
            return tf.nest.map_structure(tf.identity, element)

    return dataset.enumerate().map(check)


def _backup_epochs(folder: str) -> list[int]:
    names = (os.path.basename(p) for p in glob.glob(os.path.join(folder, "state-*.json")))
    return sorted(int(re.match(r"state-(\d+)\.json", n).group(1)) for n in names)


def _assert_same_weights(a, b) -> None:
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)


@pytest.mark.parametrize("max_logloss_rise", [None, 0.0])
def test_a_crashed_training_resumes_like_an_uninterrupted_one(tmp_path, max_logloss_rise):
    settings = TrainingConfig(
        model="din",
        num_epochs=6,
        early_stopping_patience=2,
        learning_rate=3e-3,
        seed=3,
        max_logloss_rise=max_logloss_rise,
    )
    fit = dict(steps=60, eval_steps=1, verbose=0)  # 6 epochs of 10 steps
    reference = training.fit_ranker(CONFIG, settings, *_ranker_data(), **fit)
    # Early stopping acts after the crash point below and picks an epoch
    # before it: the resumed run needs early stopping's state to match.
    assert reference.best_epoch <= 2 < reference.epochs_run < settings.num_epochs

    backup = str(tmp_path / "backup")
    train, eval_ = _ranker_data()
    with pytest.raises(tf.errors.InvalidArgumentError, match="crash"):
        training.fit_ranker(CONFIG, settings, _crash_at(train, 23), eval_, backup_dir=backup, **fit)
    assert _backup_epochs(backup) == [2]  # step 24 of 60, in epoch 3

    resumed = training.fit_ranker(CONFIG, settings, *_ranker_data(), backup_dir=backup, **fit)
    assert resumed.initial_epoch == 2 and reference.initial_epoch == 0
    assert (resumed.epochs_run, resumed.steps, resumed.best_epoch) == (
        reference.epochs_run,
        reference.steps,
        reference.best_epoch,
    )
    # The logloss guard's state (its lowest logloss) survives the crash too.
    assert resumed.refused_epochs == reference.refused_epochs
    if max_logloss_rise is not None:
        assert reference.refused_epochs, "the guard refused nothing: the case tests nothing"
    assert resumed.history.keys() == reference.history.keys()
    for key, values in reference.history.items():
        assert resumed.history[key] == pytest.approx(values, abs=1e-6), key
    # Same weights (the best epoch's) and the optimizer's step counter carried over.
    _assert_same_weights(resumed.model, reference.model)
    assert int(resumed.model.optimizer.iterations) == int(reference.model.optimizer.iterations)
    assert not os.path.exists(backup)  # a finished training leaves no backup


def _killed_run_settings() -> TrainingConfig:
    # No early stopping: every epoch runs, the budget is 5 x 20 steps.
    return TrainingConfig(
        model="din", num_epochs=5, early_stopping_patience=5, learning_rate=3e-3, seed=5
    )


KILLED_RUN_STEPS = 100


def _killed_run_child(backup: str) -> None:
    """The process the test kills: the training of `_killed_run_settings`, slowed down."""

    def slow(x, y):
        # 20 ms a batch: an epoch takes 0.4 s or more, time to kill it mid-way.
        pause = tf.numpy_function(lambda: np.float32(time.sleep(0.02) or 0), [], tf.float32)
        with tf.control_dependencies([pause]):
            return tf.nest.map_structure(tf.identity, (x, y))

    train, eval_ = _ranker_data()
    training.fit_ranker(
        CONFIG,
        _killed_run_settings(),
        train.map(slow),
        eval_,
        steps=KILLED_RUN_STEPS,
        eval_steps=1,
        verbose=0,
        backup_dir=backup,
    )


def test_a_killed_training_process_resumes_from_a_later_epoch(tmp_path):
    backup = str(tmp_path / "backup")
    log = tmp_path / "child.log"  # a file, not a pipe nobody reads while polling
    with open(log, "w") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "sitn_tf.training.resume_test", backup],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while not _backup_epochs(backup) and child.poll() is None:
            assert time.monotonic() < deadline, "no backup within 120 s"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    killed_at = _backup_epochs(backup)[-1]
    assert 1 <= killed_at < _killed_run_settings().num_epochs

    # The re-run: the same call, with the same folder.
    settings = _killed_run_settings()
    fit = dict(steps=KILLED_RUN_STEPS, eval_steps=1, verbose=0)
    resumed = training.fit_ranker(CONFIG, settings, *_ranker_data(), backup_dir=backup, **fit)
    assert resumed.initial_epoch == killed_at >= 1
    assert resumed.epochs_run == settings.num_epochs
    assert resumed.steps == KILLED_RUN_STEPS == int(resumed.model.optimizer.iterations)
    assert all(len(values) == settings.num_epochs for values in resumed.history.values())
    assert not os.path.exists(backup)
    # It ends where an uninterrupted run ends.
    reference = training.fit_ranker(CONFIG, settings, *_ranker_data(), **fit)
    assert resumed.best_epoch == reference.best_epoch
    for key, values in reference.history.items():
        assert resumed.history[key] == pytest.approx(values, abs=1e-5), key


def test_a_backup_of_another_training_is_refused(tmp_path):
    settings = TrainingConfig(model="din", num_epochs=2, seed=0)
    train, eval_ = _ranker_data()
    backup = str(tmp_path / "backup")
    inputs = {"train_files": ["a.gz"]}
    fit = dict(steps=4, eval_steps=1, verbose=0, backup_dir=backup)
    with pytest.raises(tf.errors.InvalidArgumentError, match="crash"):
        training.fit_ranker(
            CONFIG, settings, _crash_at(train, 3), eval_, backup_inputs=inputs, **fit
        )
    assert _backup_epochs(backup) == [1]

    # Another step budget, other inputs, another seed: each is refused before training.
    refused = [
        (r"`backup_dir` .* differs in steps", settings, inputs, {"steps": 6}),
        (r"differs in inputs", settings, {"train_files": ["b.gz"]}, {}),
        (r"differs in training", TrainingConfig(model="din", num_epochs=2, seed=1), inputs, {}),
    ]
    for message, other_settings, other_inputs, changes in refused:
        with pytest.raises(ValueError, match=message):
            training.fit_ranker(
                CONFIG,
                other_settings,
                train,
                eval_,
                backup_inputs=other_inputs,
                **{**fit, **changes},
            )
    assert _backup_epochs(backup) == [1]  # a refused call leaves the backup as it was

    # A folder with other files is never taken over (it is deleted at the end).
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"`backup_dir` .* is not empty and holds no"):
        training.fit_ranker(CONFIG, settings, train, eval_, **{**fit, "backup_dir": str(other)})
    assert (other / "notes.txt").read_text() == "mine"


def test_the_pretrainer_resumes_from_its_backup(tmp_path):
    settings = TrainingConfig(num_epochs=2, seed=0)
    x, _ = random_batch(CONFIG, batch=256, seed=0, empty_target_rows=())
    train = tf.data.Dataset.from_tensor_slices(x).repeat().batch(32)
    eval_ = tf.data.Dataset.from_tensor_slices(x).take(64).batch(64)
    backup = str(tmp_path / "backup")
    fit = dict(steps=4, verbose=0, backup_dir=backup)
    with pytest.raises(tf.errors.InvalidArgumentError, match="crash"):
        training.fit_pretrainer(CONFIG, settings, _crash_at(train, 3), eval_, **fit)
    assert _backup_epochs(backup) == [1]
    first_epoch = files.read_json(os.path.join(backup, "state-1.json"))["history"]

    resumed = training.fit_pretrainer(CONFIG, settings, train, eval_, **fit)
    assert resumed.initial_epoch == 1
    assert resumed.epochs_run == resumed.best_epoch == 2 and resumed.steps == 4
    assert int(resumed.model.optimizer.iterations) == 4
    # The first epoch's logs come from the backup, the second from this run.
    assert {k: v[:1] for k, v in resumed.history.items()} == first_epoch
    assert all(len(values) == 2 for values in resumed.history.values())
    assert not os.path.exists(backup)


if __name__ == "__main__":
    _killed_run_child(sys.argv[1])
