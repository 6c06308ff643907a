"""Resuming a killed training at its last finished epoch.

`fit_pretrainer` and `fit_ranker` take a `backup_dir`. At the end of every
epoch `TrainingBackup` writes there what a restart needs to continue as if
nothing had happened:

  * the model's weights with the optimizer's state (`model.save_weights`:
    Adam's moments and step counter, so `SITNRanker`'s encoder freeze,
    which reads the step counter, resumes too);
  * the dropout seed generators' states (`model.variables` that are not
    `model.weights`), so a resumed run draws the masks the killed one
    would have drawn;
  * the per-epoch history of every finished epoch;
  * early stopping's state: best value, best epoch, epochs waited, and the
    best epoch's weights (stage 2 restores them at the end).

`keras.callbacks.BackupAndRestore` keeps only the first item and the epoch
counter: a resumed run would forget the earlier epochs' history, restart
early stopping's patience and lose the best weights, so it would pick
another best epoch. Hence this callback.

Layout of `backup_dir` (local or `gs://`):

    fingerprint.json          what was trained: refused if it differs
    weights-{n}.weights.h5    after n finished epochs
    seeds-{n}.npz
    best-{b}.npz              early stopping's best weights (epoch b)
    state-{n}.json            written last: the commit of epoch n

A restart reads the highest `state-{n}.json`; files of an epoch killed
half-written have no state file and are ignored. Older epochs' files are
deleted once a newer state is committed, so at most one epoch's backup
(plus the best weights) is on disk. The fit functions delete the folder
when training finishes, so a later call with the same folder starts over.

The data continue where they stopped too: the fit functions skip the
batches the finished epochs consumed (`train.skip`, which reads them again
without training on them). When `train`'s order depends on its seed alone,
the resumed run is the uninterrupted one, to the bit on a CPU (the tests
check it). `stage_datasets` interleaves the train files non-deterministically
for speed, so a resumed Trainer continues with the same number of batches
from an equivalent, not an identical, stream.

A backup of another training is never reused: `fingerprint.json` holds the
model and training configs, the step budgets and the caller's description
of its inputs (`backup_inputs`, e.g. file paths), and a `backup_dir` whose
fingerprint differs raises `ValueError` (a clear error rather than a silent
fresh start, which could delete someone's backup).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import posixpath
import re
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from sitn_tf import files

logger = logging.getLogger(__name__)

FINGERPRINT_FILE = "fingerprint.json"
_STATE = re.compile(r"^state-(\d+)\.json$")
_FORMAT = 1


@dataclasses.dataclass
class ResumePoint:
    """Where a training continues: `epoch` finished epochs (0: from the start).

    Attributes:
        epoch: finished epochs restored from the backup.
        stopped: early stopping had ended the training at `epoch`.
        history: per-epoch logs of the finished epochs.
    """

    epoch: int = 0
    stopped: bool = False
    history: dict[str, list[float]] = dataclasses.field(default_factory=dict)


def _join(folder: str, name: str) -> str:
    # posixpath keeps `gs://bucket/...` intact (os.path would too on Linux,
    # but this states that remote paths are expected).
    return posixpath.join(folder, name)


def _write_arrays(path: str, arrays: list[np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, *arrays)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())


def _read_arrays(path: str) -> list[np.ndarray]:
    with tf.io.gfile.GFile(path, "rb") as f:
        data = np.load(io.BytesIO(f.read()))
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def _plain_json(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(files.dumps_json(value))


class TrainingBackup(keras.callbacks.Callback):
    """Backs the training up after every epoch and restores it before `fit`.

    Use: `point = backup.restore(model)` before `model.fit(...,
    initial_epoch=point.epoch, callbacks=[..., early_stopping, backup])`;
    the backup must come after `early_stopping` in the callbacks, so that it
    saves the state early stopping has just updated and restores it after
    early stopping's own `on_train_begin` has reset it.

    Args:
        backup_dir: the folder of this training's backup.
        fingerprint: JSON-safe description of the training; a backup with
            another fingerprint is refused.
        early_stopping: the `EarlyStopping` callback whose state to keep.
    """

    def __init__(
        self,
        backup_dir: str,
        fingerprint: Mapping[str, Any],
        early_stopping: keras.callbacks.EarlyStopping | None = None,
    ):
        super().__init__()
        if not backup_dir or not isinstance(backup_dir, str):
            raise ValueError(f"`backup_dir` must be a non-empty path, got {backup_dir!r}")
        self.backup_dir = backup_dir
        self.fingerprint = _plain_json({"format": _FORMAT, **fingerprint})
        self.early_stopping = early_stopping
        self.history: dict[str, list[float]] = {}
        self._early_stopping_state: dict[str, Any] | None = None
        self._best_file: str | None = None

    def _seed_variables(self, model: keras.Model) -> list[Any]:
        weights = {id(v) for v in model.weights}
        return [v for v in model.variables if id(v) not in weights]

    def _latest_state(self) -> int | None:
        if not tf.io.gfile.isdir(self.backup_dir):
            return None
        epochs = [
            int(m.group(1)) for m in map(_STATE.match, tf.io.gfile.listdir(self.backup_dir)) if m
        ]
        return max(epochs) if epochs else None

    def _check_fingerprint(self) -> None:
        path = _join(self.backup_dir, FINGERPRINT_FILE)
        if not tf.io.gfile.exists(path):
            # The folder is deleted when training ends: never take over one
            # that holds something else.
            if tf.io.gfile.isdir(self.backup_dir) and tf.io.gfile.listdir(self.backup_dir):
                raise ValueError(
                    f"`backup_dir` {self.backup_dir} is not empty and holds no "
                    f"{FINGERPRINT_FILE}; pass an empty or new folder"
                )
            return
        found = files.read_json(path)
        if found != self.fingerprint:
            differs = sorted(
                key
                for key in set(found) | set(self.fingerprint)
                if found.get(key) != self.fingerprint.get(key)
            )
            raise ValueError(
                f"`backup_dir` {self.backup_dir} holds the backup of another training "
                f"(it differs in {', '.join(differs)}); delete it or pass another folder"
            )

    def restore(self, model: keras.Model) -> ResumePoint:
        """Loads the latest backup into `model` (built and compiled); where training continues.

        Call it inside the model's distribution strategy scope. With no
        backup, writes the fingerprint and returns `ResumePoint()`.
        """
        self._check_fingerprint()
        tf.io.gfile.makedirs(self.backup_dir)
        files.write_json(_join(self.backup_dir, FINGERPRINT_FILE), self.fingerprint)
        epoch = self._latest_state()
        if epoch is None:
            self.history = {}
            return ResumePoint()
        state = files.read_json(_join(self.backup_dir, f"state-{epoch}.json"))
        # The optimizer's variables exist only once built; the backup holds them.
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(_join(self.backup_dir, state["weights"]))
        seeds = _read_arrays(_join(self.backup_dir, state["seeds"]))
        for variable, value in zip(self._seed_variables(model), seeds, strict=True):
            variable.assign(value)
        self.history = {k: [float(v) for v in values] for k, values in state["history"].items()}
        self._early_stopping_state = state.get("early_stopping")
        self._best_file = (self._early_stopping_state or {}).get("best_weights")
        logger.info(
            "resuming from the backup of epoch %d in %s%s",
            epoch,
            self.backup_dir,
            " (early stopping had ended it)" if state["stopped"] else "",
        )
        return ResumePoint(epoch=epoch, stopped=bool(state["stopped"]), history=self.history)

    def on_train_begin(self, logs: dict | None = None) -> None:
        es, saved = self.early_stopping, self._early_stopping_state
        if es is None or saved is None:
            return
        # EarlyStopping.on_train_begin (called before this one) has reset these.
        es.wait = saved["wait"]
        es.stopped_epoch = saved["stopped_epoch"]
        es.best = saved["best"]
        es.best_epoch = saved["best_epoch"]
        if hasattr(es, "lowest_guard"):  # GuardedEarlyStopping
            es.lowest_guard = saved.get("lowest_guard")
            es.refused_epochs = list(saved.get("refused_epochs", []))
        if saved["best_weights"] is not None:
            es.best_weights = _read_arrays(_join(self.backup_dir, saved["best_weights"]))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        done = epoch + 1
        weights = f"weights-{done}.weights.h5"
        seeds = f"seeds-{done}.npz"
        self.model.save_weights(_join(self.backup_dir, weights), overwrite=True)
        _write_arrays(
            _join(self.backup_dir, seeds),
            [np.asarray(v.numpy()) for v in self._seed_variables(self.model)],
        )
        state: dict[str, Any] = {
            "epoch": done,
            "stopped": bool(self.model.stop_training),
            "weights": weights,
            "seeds": seeds,
            "history": self.history,
        }
        es = self.early_stopping
        if es is not None:
            if es.best_weights is not None and es.best_epoch == epoch:
                # A new best: its weights are written once and kept until a better one.
                self._best_file = f"best-{epoch + 1}.npz"
                _write_arrays(_join(self.backup_dir, self._best_file), es.best_weights)
            state["early_stopping"] = {
                "wait": int(es.wait),
                "stopped_epoch": int(es.stopped_epoch),
                "best": None if es.best is None else float(es.best),
                "best_epoch": int(es.best_epoch),
                "best_weights": self._best_file if es.best_weights is not None else None,
                "lowest_guard": getattr(es, "lowest_guard", None),
                "refused_epochs": list(getattr(es, "refused_epochs", [])),
            }
        files.write_json(_join(self.backup_dir, f"state-{done}.json"), state)
        self._delete_all_but(
            {FINGERPRINT_FILE, f"state-{done}.json", weights, seeds, self._best_file}
        )

    def _delete_all_but(self, keep: set[str | None]) -> None:
        for name in tf.io.gfile.listdir(self.backup_dir):
            name = name.rstrip("/")
            if name not in keep:
                path = _join(self.backup_dir, name)
                if tf.io.gfile.isdir(path):
                    tf.io.gfile.rmtree(path)
                else:
                    tf.io.gfile.remove(path)

    def delete(self) -> None:
        """Removes the backup (training finished: a later run starts over)."""
        if tf.io.gfile.exists(self.backup_dir):
            tf.io.gfile.rmtree(self.backup_dir)
