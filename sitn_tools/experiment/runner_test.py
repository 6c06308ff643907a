"""The experiment runner's pieces that need no training."""

from __future__ import annotations

import numpy as np
import pytest

from sitn_tools.experiment import baselines, runner


def _slices() -> baselines.RowSlices:
    return baselines.RowSlices(
        labels=np.array([1, 0, 1, 0, 1, 0]),
        items=np.array([b"a", b"b", b"c", b"d", b"e", b"f"], dtype=object),
        known=np.array([True, True, True, True, False, False]),
        history_lengths=np.array([0, 0, 1, 2, 6, 7]),
    )


def _store(run_dir, labels) -> None:
    np.savez_compressed(
        run_dir / "test_predictions.npz",
        labels=labels,
        probabilities=np.array([0.9, 0.2, 0.3, 0.4, 0.6, 0.7], np.float32),
        users=np.array([b"u", b"u", b"v", b"v", b"w", b"w"], dtype=object),
        known_candidate=np.zeros(6, bool),
    )


def test_complete_metrics_adds_known_and_history_metrics_from_stored_predictions(tmp_path):
    _store(tmp_path, _slices().labels)
    record = {"metrics": {"auc": 0.5, "logloss": 0.7, "gauc": 0.5}}
    assert runner.complete_metrics(record, str(tmp_path), _slices())
    m = record["metrics"]
    # Known rows 0-3: positives 0.9, 0.3 against negatives 0.2, 0.4 -> 3 of 4 pairs.
    assert m["known_auc"] == pytest.approx(0.75) and m["known_examples"] == 4
    # Per user: u (0.9 > 0.2) AUC 1, v (0.3 < 0.4) AUC 0, two rows each.
    assert m["known_gauc"] == pytest.approx(0.5)
    assert m["by_history_length"]["0"] == {"auc": 1.0, "examples": 2, "positives": 1}
    assert m["by_history_length"]["6+"] == {"auc": 0.0, "examples": 2, "positives": 1}
    assert m["logloss"] is not None
    # Complete records are left alone.
    assert not runner.complete_metrics(record, str(tmp_path), _slices())


def test_complete_metrics_refuses_other_rows_and_skips_without_predictions(tmp_path):
    record = {"metrics": {"auc": 0.5}}
    assert not runner.complete_metrics(record, str(tmp_path), _slices())
    _store(tmp_path, _slices().labels[::-1])
    with pytest.raises(ValueError, match="not the test split's rows"):
        runner.complete_metrics(record, str(tmp_path), _slices())
