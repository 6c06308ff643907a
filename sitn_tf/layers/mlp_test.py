from __future__ import annotations

import keras
import numpy as np
import pytest

from sitn_tf.layers.mlp import MLP


def _numpy_forward(layer: MLP, x: np.ndarray) -> np.ndarray:
    for i, dense in enumerate(layer.dense_layers):
        kernel, bias = (w.numpy() for w in dense.weights)
        x = x @ kernel + bias
        if i < len(layer.dense_layers) - 1:
            x = np.maximum(x, 0.0)
        elif layer.output_activation == "sigmoid":
            x = 1.0 / (1.0 + np.exp(-x))
    return x


@pytest.mark.parametrize("units,output_activation", [((3,), None), ((8, 4, 1), "sigmoid")])
def test_forward_matches_numpy(units, output_activation):
    layer = MLP(units, output_activation=output_activation)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    got = keras.ops.convert_to_numpy(layer(x))
    assert got.shape == (5, units[-1])
    np.testing.assert_allclose(got, _numpy_forward(layer, x), rtol=1e-5, atol=1e-6)


def test_dropout_only_in_training():
    layer = MLP((64, 2), dropout=0.5)
    x = np.ones((4, 3), "float32")
    inference = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_allclose(inference, _numpy_forward(layer, x), rtol=1e-5, atol=1e-6)
    trained = keras.ops.convert_to_numpy(layer(x, training=True))
    assert not np.allclose(trained, inference)


def test_config_round_trip_and_save_load(tmp_path):
    layer = MLP((4, 2), activation="tanh", output_activation="sigmoid", dropout=0.1, name="head")
    clone = MLP.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()

    inputs = keras.Input((3,))
    model = keras.Model(inputs, layer(inputs))
    x = np.random.default_rng(1).normal(size=(6, 3)).astype("float32")
    path = tmp_path / "mlp.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"units": ()}, "units"),
        ({"units": (4, 0)}, "units"),
        ({"units": (4,), "dropout": 1.0}, "dropout"),
    ],
)
def test_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        MLP(**kwargs)
