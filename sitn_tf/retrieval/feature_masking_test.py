from __future__ import annotations

import keras
import numpy as np
import pytest

from sitn_tf.retrieval.feature_masking import FeatureMasking

# 5 features: id, category, brand, price, tags. CFM groups (n = 2): each seed
# with its most correlated partner.
GROUPS = np.array(
    [
        [1, 1, 0, 0, 0],  # id -> category
        [0, 1, 1, 0, 0],  # category -> brand
        [0, 1, 1, 0, 0],  # brand -> category
        [0, 0, 1, 1, 0],  # price -> brand
        [0, 1, 0, 0, 1],  # tags -> category
    ],
    dtype=bool,
)


def _features(batch=64, f=5, d=3):
    return np.random.default_rng(0).normal(size=(batch, f, d)).astype("float32")


def test_rfm_masks_half_and_the_other_view_the_complement():
    layer = FeatureMasking(5, mode="rfm", seed=1)
    first, second = (np.asarray(m) for m in layer.masks(400))
    assert (first.sum(axis=1) == 2).all()
    np.testing.assert_array_equal(second, ~first)
    # Uniform over features: each is masked in the first view 2/5 of the time.
    np.testing.assert_allclose(first.mean(axis=0), 0.4, atol=0.08)
    # Not always the same set.
    assert len({tuple(row) for row in first}) > 5


def test_cfm_masks_a_whole_group_of_a_random_seed():
    layer = FeatureMasking(5, mode="cfm", groups=GROUPS, seed=2)
    first, second = (np.asarray(m) for m in layer.masks(300))
    rows = {tuple(row) for row in GROUPS.tolist()}
    assert {tuple(row) for row in first.tolist()} == rows  # every group drawn, nothing else
    np.testing.assert_array_equal(second, ~first)


def test_masked_features_become_the_learned_defaults():
    x = _features(batch=32)
    layer = FeatureMasking(5, mode="rfm", seed=3)
    layer.build(x.shape)
    defaults = layer.defaults.numpy()
    defaults[:] = np.arange(15, dtype="float32").reshape(5, 3) + 100.0
    layer.defaults.assign(defaults)
    a, b = (np.asarray(v) for v in layer(x))
    for view in (a, b):
        masked = (view >= 100.0).all(axis=-1)  # the defaults, never a real (normal) value
        assert (masked.sum(axis=1) >= 2).all()
        kept = ~masked
        np.testing.assert_array_equal(view[kept], x[kept])
        np.testing.assert_array_equal(view[masked], np.broadcast_to(defaults, x.shape)[masked])
    # Complementary: each feature is the real one in exactly one view.
    np.testing.assert_array_equal((a >= 100).all(-1), ~(b >= 100).all(-1))
    # The defaults are trainable: the masked entries carry a gradient to them.
    assert layer.defaults.trainable


def test_config_round_trip_and_save_load(tmp_path):
    layer = FeatureMasking(5, mode="cfm", groups=GROUPS, seed=4, name="masking")
    clone = FeatureMasking.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    inputs = keras.Input((5, 3))
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "masking.keras"
    model.save(path)
    restored = keras.saving.load_model(path).get_layer("masking")
    np.testing.assert_array_equal(restored.defaults.numpy(), layer.defaults.numpy())
    x = _features(batch=4)
    mask = np.array([[1, 0, 0, 0, 1]] * 4, dtype=bool)
    np.testing.assert_array_equal(restored.apply(x, mask), layer.apply(x, mask))
    assert restored.groups == GROUPS.tolist()


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"num_features": 1}, "num_features"),
        ({"num_features": 3, "mode": "random"}, "mode"),
        ({"num_features": 3, "mode": "cfm"}, "groups"),
        ({"num_features": 3, "mode": "cfm", "groups": np.eye(2, dtype=bool)}, "groups"),
        ({"num_features": 2, "mode": "cfm", "groups": np.ones((2, 2), bool)}, "groups"),
    ],
)
def test_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        FeatureMasking(**kwargs)
