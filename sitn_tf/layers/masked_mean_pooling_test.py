from __future__ import annotations

import keras
import numpy as np
import pytest

from sitn_tf.layers.masked_mean_pooling import MaskedMeanPooling


def _numpy_pool(x, mask):
    out = np.zeros((x.shape[0], x.shape[2]), np.float64)
    for b in range(x.shape[0]):
        rows = [x[b, j] for j in range(x.shape[1]) if mask[b, j]]
        if rows:
            out[b] = np.mean(rows, axis=0)
    return out


def test_matches_numpy_and_empty_rows_are_zero():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 0, 1, 0, 1, 0], [0] * 6, [1] * 6], bool)
    got = keras.ops.convert_to_numpy(MaskedMeanPooling()(x, mask=mask))
    np.testing.assert_allclose(got, _numpy_pool(x, mask), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got[2], np.zeros(3))


def test_padding_values_do_not_matter():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 0]], bool)
    noisy = x.copy()
    noisy[~mask] = 1e3
    layer = MaskedMeanPooling()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x, mask=mask)),
        keras.ops.convert_to_numpy(layer(noisy, mask=mask)),
        rtol=1e-6,
    )


def test_mask_is_required():
    with pytest.raises(ValueError, match="`mask`"):
        MaskedMeanPooling()(np.ones((1, 2, 3), "float32"))


def test_config_round_trip_and_save_load(tmp_path):
    layer = MaskedMeanPooling(name="g")
    assert MaskedMeanPooling.from_config(layer.get_config()).get_config() == layer.get_config()

    values = keras.Input((5, 3))
    ids = keras.Input((5,), dtype="int32")
    model = keras.Model([values, ids], layer(values, mask=keras.ops.not_equal(ids, 0)))
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    i = rng.integers(0, 3, size=(4, 5)).astype("int32")
    path = tmp_path / "pool.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        restored.predict([x, i], verbose=0), model.predict([x, i], verbose=0)
    )
