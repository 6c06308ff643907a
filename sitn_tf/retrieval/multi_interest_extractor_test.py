from __future__ import annotations

import keras
import numpy as np
import pytest

from sitn_tf.retrieval.multi_interest_extractor import MultiInterestExtractor


def _np_extract(h, mask, w1, w2):
    """Eqs. 12-13 in the paper's column layout: H is (D, n), A = softmax_n(W2^T tanh(W1 H))^T."""
    out = []
    for hb, mb in zip(h, mask, strict=True):
        H = hb[mb].T  # (D, n_real): padding dropped
        logits = w2.T @ np.tanh(w1.T @ H)  # (K, n_real)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        A = (e / e.sum(axis=1, keepdims=True)).T  # (n_real, K)
        out.append((H @ A).T)  # V = H A, rows = interests
    return np.stack(out)


def test_hand_case():
    layer = MultiInterestExtractor(2, 1)
    h = np.array([[[1.0, 0.0], [0.0, 2.0], [9.0, 9.0]]], dtype="float32")
    mask = np.array([[True, True, False]])
    layer.build(h.shape)
    # W1 = [1, 0]: tanh(x_1); W2 = [1, -1]: interest 1 prefers large x_1, interest 2 small.
    layer.w1.assign(np.array([[1.0], [0.0]]))
    layer.w2.assign(np.array([[1.0, -1.0]]))
    t = np.tanh(1.0)
    a1 = np.exp(t) / (np.exp(t) + 1.0)  # position 0's weight for interest 1
    a2 = np.exp(-t) / (np.exp(-t) + 1.0)
    expected = np.array([[[a1, 2 * (1 - a1)], [a2, 2 * (1 - a2)]]])
    np.testing.assert_allclose(layer(h, mask=mask), expected, rtol=1e-5)


def test_random_case_matches_numpy_and_padding_is_ignored():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(4, 6, 5)).astype("float32")
    mask = np.arange(6)[None, :] < np.array([[6], [3], [1], [5]])
    layer = MultiInterestExtractor(3, 7)
    out = keras.ops.convert_to_numpy(layer(h, mask=mask))
    expected = _np_extract(h, mask, layer.w1.numpy(), layer.w2.numpy())
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    # Changing what sits under padding changes nothing.
    h2 = np.where(mask[..., None], h, 100.0).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(h2, mask=mask)), out, atol=1e-6)


def test_all_padding_gives_zero_interests():
    layer = MultiInterestExtractor(2, 4)
    out = layer(np.ones((1, 3, 5), "float32"), mask=np.zeros((1, 3), bool))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), 0.0)


def test_config_round_trip_and_save_load(tmp_path):
    layer = MultiInterestExtractor(3, 8, name="extractor")
    clone = MultiInterestExtractor.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    history = keras.Input((None, 5))
    mask = keras.Input((None,), dtype="bool")
    model = keras.Model([history, mask], layer(history, mask=mask))
    rng = np.random.default_rng(1)
    x = [rng.normal(size=(2, 4, 5)).astype("float32"), np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)]
    path = tmp_path / "extractor.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"num_interests": 0, "attention_units": 4}, "num_interests"),
        ({"num_interests": 2, "attention_units": 0}, "attention_units"),
        ({"num_interests": 2.0, "attention_units": 4}, "num_interests"),
    ],
)
def test_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        MultiInterestExtractor(**kwargs)


def test_missing_mask_is_an_error():
    with pytest.raises(ValueError, match="mask"):
        MultiInterestExtractor(2, 3)(np.ones((1, 2, 3), "float32"))
