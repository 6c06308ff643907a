from __future__ import annotations

import keras
import numpy as np
import pytest

from sitn_tf.retrieval.feature_dropout import FeatureDropout


def test_drops_values_only_in_training_and_never_invents_any():
    tags = np.tile(np.array([[3, 7, 9, 0]], "int32"), (2000, 1))
    layer = FeatureDropout(0.3, seed=0)
    np.testing.assert_array_equal(layer(tags), tags)  # inference: unchanged
    out = np.asarray(layer(tags, training=True))
    kept = out != 0
    # Kept values are the original ones in place; padding stays padding.
    np.testing.assert_array_equal(out[kept], tags[kept])
    assert (out[:, 3] == 0).all()
    # Each real value is dropped with probability 0.3, independently.
    np.testing.assert_allclose(1.0 - kept[:, :3].mean(axis=0), 0.3, atol=0.04)
    assert len({tuple(row) for row in out.tolist()}) == 8  # every subset of {3, 7, 9}


def test_rate_zero_is_the_identity():
    tags = np.array([[1, 2]], "int32")
    np.testing.assert_array_equal(FeatureDropout(0.0)(tags, training=True), tags)


def test_config_round_trip_and_save_load(tmp_path):
    layer = FeatureDropout(0.25, seed=3, name="dropout")
    assert FeatureDropout.from_config(layer.get_config()).get_config() == layer.get_config()
    inputs = keras.Input((4,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "dropout.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.get_layer("dropout").rate == 0.25
    tags = np.array([[5, 6, 0, 0]], "int32")
    np.testing.assert_array_equal(restored(tags), tags)


@pytest.mark.parametrize("rate", [-0.1, 1.0, "0.5", True])
def test_bad_arguments(rate):
    with pytest.raises(ValueError, match="`rate`"):
        FeatureDropout(rate)
