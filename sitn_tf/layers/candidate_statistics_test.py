from __future__ import annotations

import keras
import numpy as np
import pytest

from sitn_tf.layers.candidate_statistics import CandidateStatistics


def _tables(layer):
    return [keras.ops.convert_to_numpy(t) for t in layer.tables]


def test_looks_up_each_statistic_in_its_own_table_and_clips():
    layer = CandidateStatistics((4, 6), dim=3)
    clicks = np.array([0, 1, 3, 9, -2])  # 9 and -2 are clipped to 3 and 0
    ages = np.array([[5], [0], [2], [1], [7]])
    got = keras.ops.convert_to_numpy(layer([clicks, ages]))
    t_clicks, t_ages = _tables(layer)
    expected = np.concatenate([t_clicks[[0, 1, 3, 3, 0]], t_ages[[5, 0, 2, 1, 5]]], axis=1)
    assert got.shape == (5, 6)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_unknown_rate_masks_only_in_training():
    layer = CandidateStatistics((5,), dim=2, unknown_rate=0.5, seed=3)
    ids = np.full((4000,), 4)
    inference = keras.ops.convert_to_numpy(layer([ids], training=False))
    (table,) = _tables(layer)
    np.testing.assert_allclose(inference, np.tile(table[4], (4000, 1)), rtol=1e-6)
    trained = keras.ops.convert_to_numpy(layer([ids], training=True))
    unknown = np.all(np.isclose(trained, table[0]), axis=1)
    kept = np.all(np.isclose(trained, table[4]), axis=1)
    assert np.all(unknown | kept)
    # 4,000 draws at p = 0.5: the fraction is within 0.5 +- 0.04 (5 sigma).
    assert abs(unknown.mean() - 0.5) < 0.04


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_buckets": (), "dim": 2}, "`num_buckets` must not be empty"),
        ({"num_buckets": (2,), "dim": 2}, "`num_buckets` must be an int >= 3"),
        ({"num_buckets": 5, "dim": 2}, "`num_buckets` must be a sequence"),
        ({"num_buckets": (4,), "dim": 0}, "`dim` must be an int >= 1"),
        ({"num_buckets": (4,), "dim": 2, "unknown_rate": 1.0}, "`unknown_rate`"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CandidateStatistics(**kwargs)


def test_wrong_number_of_inputs():
    layer = CandidateStatistics((4, 4), dim=2)
    with pytest.raises(ValueError, match="list of 2 bucket-id tensors"):
        layer([np.array([1, 2])])


def test_config_round_trip_and_save_load(tmp_path):
    layer = CandidateStatistics((4, 6), dim=3, unknown_rate=0.1, seed=7, name="stats")
    config = layer.get_config()
    assert CandidateStatistics.from_config(config).get_config() == config

    a = keras.Input((), dtype="int32")
    b = keras.Input((), dtype="int32")
    model = keras.Model([a, b], layer([a, b]))
    ids = [np.array([0, 1, 2, 3]), np.array([5, 4, 0, 1])]
    path = tmp_path / "stats.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(ids)), keras.ops.convert_to_numpy(restored(ids))
    )
