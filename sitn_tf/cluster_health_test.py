from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from sitn_tf.cluster_health import (
    ClusterUsage,
    nearest_cross_domain_cosine,
    nearest_cross_domain_cosine_tensor,
    random_baseline,
)


def _result(metric):
    return {name: float(value) for name, value in metric.result().items()}


def test_collapsed_usage_is_zero_entropy_one_cluster_and_k_minus_1_dead():
    metric = ClusterUsage(8, name="target_k8")
    metric.update_state(np.full(10, 3))
    metric.update_state(np.full(6, 3))
    assert _result(metric) == {
        "target_k8_usage_entropy": 0.0,
        "target_k8_effective_clusters": 1.0,
        "target_k8_dead_clusters": 7.0,
    }


def test_uniform_usage_is_entropy_one_and_k_effective_clusters():
    metric = ClusterUsage(4, name="u")
    metric.update_state(np.array([0, 1, 2, 3, 3, 2]))
    metric.update_state(np.array([1, 0]))
    r = _result(metric)
    assert r["u_usage_entropy"] == pytest.approx(1.0)
    assert r["u_effective_clusters"] == pytest.approx(4.0)
    assert r["u_dead_clusters"] == 0.0


def test_partial_usage_with_mask_against_hand_values():
    metric = ClusterUsage(4, name="s")
    # Counted: clusters 0, 0, 1 (the masked rows, one of them cluster 2, are not).
    metric.update_state(np.array([0, 2, 0, 1, 2]), mask=np.array([1, 0, 1, 1, 0], bool))
    h = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    r = _result(metric)
    assert r["s_usage_entropy"] == pytest.approx(h / math.log(4), rel=1e-5)
    assert r["s_effective_clusters"] == pytest.approx(math.exp(h), rel=1e-5)
    assert r["s_dead_clusters"] == 2.0
    metric.reset_state()
    assert _result(metric) == {
        "s_usage_entropy": 0.0,
        "s_effective_clusters": 0.0,
        "s_dead_clusters": 0.0,
    }


def test_cross_domain_cosine_tensor_matches_numpy_and_random_level():
    rng = np.random.default_rng(0)
    source, target = rng.normal(size=(5, 8)), rng.normal(size=(7, 8))
    got = float(
        nearest_cross_domain_cosine_tensor(source.astype("float32"), target.astype("float32"))
    )
    assert got == pytest.approx(nearest_cross_domain_cosine(source, target), rel=1e-5)
    # Identical cluster sets match exactly; the random level is far below.
    assert float(nearest_cross_domain_cosine_tensor(source, source)) == pytest.approx(1.0)
    assert random_baseline((5, 8), seed=1, n_draws=20).mean < 0.9


def test_config_round_trip_and_bad_argument():
    metric = ClusterUsage(6, name="x")
    clone = ClusterUsage.from_config(metric.get_config())
    assert clone.get_config() == metric.get_config() and clone.num_clusters == 6
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert isinstance(restored, ClusterUsage) and restored.name == "x"
    with pytest.raises(ValueError, match="`num_clusters`"):
        ClusterUsage(1)
