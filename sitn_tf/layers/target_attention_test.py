from __future__ import annotations

import keras
import numpy as np
import pytest

from sitn_tf.layers.target_attention import TargetAttention

DIM = 4


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(3, DIM)).astype("float32")
    keys = rng.normal(size=(3, 5, DIM)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], bool)
    keys[~mask] = 0.0
    return query, keys, mask


def _np_scores(layer, query, keys):
    (w0, b0), (w1, b1) = (
        [w.numpy() for w in d.weights] for d in layer.activation_unit.dense_layers
    )
    scores = np.zeros(keys.shape[:2])
    for b in range(keys.shape[0]):
        for j in range(keys.shape[1]):
            z, v = keys[b, j], query[b]
            features = np.concatenate([z, v, z - v, z * v])
            scores[b, j] = (np.maximum(features @ w0 + b0, 0.0) @ w1 + b1)[0]
    return scores


def test_din_weights_are_raw_activation_unit_outputs_masked():
    layer = TargetAttention(hidden_units=(6,))
    query, keys, mask = _inputs()
    out = _np(layer(query, keys, mask=mask))
    weights = np.where(mask, _np_scores(layer, query, keys), 0.0)
    np.testing.assert_allclose(out, np.einsum("bl,bld->bd", weights, keys), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(out[2], np.zeros(DIM))


def test_softmax_normalization_over_real_positions():
    layer = TargetAttention(hidden_units=(6,), normalization="softmax")
    query, keys, mask = _inputs(1)
    weights = _np(layer.attention_weights(query, keys, mask))
    np.testing.assert_allclose(weights[:2].sum(1), [1.0, 1.0], rtol=1e-5)
    np.testing.assert_array_equal(weights[~mask], 0.0)
    assert np.all(np.isfinite(weights))
    scores = _np_scores(layer, query, keys)[0, :3]
    np.testing.assert_allclose(weights[0, :3], np.exp(scores) / np.exp(scores).sum(), rtol=1e-4)


def test_padding_keys_do_not_matter():
    layer = TargetAttention(hidden_units=(6,))
    query, keys, mask = _inputs(2)
    noisy = keys.copy()
    noisy[~mask] = 100.0
    np.testing.assert_allclose(
        _np(layer(query, noisy, mask=mask)), _np(layer(query, keys, mask=mask)), rtol=1e-6
    )


def test_mask_is_required():
    query, keys, _ = _inputs()
    with pytest.raises(ValueError, match="`mask`"):
        TargetAttention()(query, keys)


def test_config_round_trip_and_save_load(tmp_path):
    layer = TargetAttention(hidden_units=(8, 4), activation="sigmoid", normalization="softmax")
    assert TargetAttention.from_config(layer.get_config()).get_config() == layer.get_config()

    query_in = keras.Input((DIM,))
    keys_in = keras.Input((5, DIM))
    mask_in = keras.Input((5,), dtype="bool")
    model = keras.Model([query_in, keys_in, mask_in], layer(query_in, keys_in, mask=mask_in))
    query, keys, mask = _inputs(3)
    path = tmp_path / "attention.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        restored.predict([query, keys, mask], verbose=0),
        model.predict([query, keys, mask], verbose=0),
    )


@pytest.mark.parametrize(
    "kwargs,argument",
    [({"hidden_units": (0,)}, "hidden_units"), ({"normalization": "sum"}, "normalization")],
)
def test_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        TargetAttention(**kwargs)
