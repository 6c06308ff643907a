from __future__ import annotations

import keras
import numpy as np
import pytest

from sitn_tf.retrieval.target_interest_predictor import TargetInterestPredictor


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np_gru(x, kernel, recurrent, bias):
    """Keras' GRU (reset_after=True, gates z, r, h) in numpy, over unpadded steps."""
    units = recurrent.shape[0]
    h = np.zeros(units)
    b_in, b_rec = bias
    for x_t in x:
        xz, xr, xh = np.split(x_t @ kernel + b_in, 3)
        hz, hr, hh = np.split(h @ recurrent + b_rec, 3)
        z, r = _sigmoid(xz + hz), _sigmoid(xr + hr)
        h = z * h + (1 - z) * np.tanh(xh + r * hh)
    return h


def test_eq15_over_the_gru_state_matches_numpy_and_skips_padding():
    layer = TargetInterestPredictor(num_items=9, embedding_dim=4, hidden_units=5, num_interests=3)
    ids = np.array([[3, 1, 7, 0, 0], [2, 0, 0, 0, 0], [8, 8, 5, 4, 6]])
    logits = keras.ops.convert_to_numpy(layer(ids))
    table = layer.embedding.embeddings.numpy()
    kernel, recurrent, bias = (w.numpy() for w in layer.gru.weights)
    w3, b3 = (w.numpy() for w in layer.hidden.weights)
    w4, b4 = (w.numpy() for w in layer.logits.weights)
    for row, out in zip(ids, logits, strict=True):
        h = _np_gru(table[row[row > 0]], kernel, recurrent, bias)
        expected = np.maximum(h @ w3 + b3, 0.0) @ w4 + b4  # Eq. 15
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    assert logits.shape == (3, 3)


def test_config_round_trip_and_save_load(tmp_path):
    layer = TargetInterestPredictor(12, 4, 6, 2, name="predictor")
    clone = TargetInterestPredictor.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    ids = keras.Input((None,), dtype="int32")
    model = keras.Model(ids, layer(ids))
    x = np.array([[1, 5, 11, 0], [3, 0, 0, 0]], "int32")
    path = tmp_path / "predictor.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"num_items": 1}, "num_items"),
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"hidden_units": -1}, "hidden_units"),
        ({"num_interests": 0}, "num_interests"),
    ],
)
def test_bad_arguments(kwargs, argument):
    base = {"num_items": 5, "embedding_dim": 2, "hidden_units": 2, "num_interests": 2}
    with pytest.raises(ValueError, match=f"`{argument}`"):
        TargetInterestPredictor(**(base | kwargs))
