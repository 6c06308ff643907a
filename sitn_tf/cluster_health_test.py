from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from sitn_tf.cluster_health import (
    ClusterUsage,
    assignment_agreement,
    centroid_alignment,
    cluster_centroids,
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


def test_cluster_centroids_are_means_of_clusters_with_enough_instances():
    x = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 4.0], [9.0, 9.0]])
    nearest = np.array([2, 2, 0, 0, 1])
    # Cluster 1 has one instance (< min_size 2): left out; clusters in index order.
    np.testing.assert_allclose(cluster_centroids(x, nearest, 4, min_size=2), [[0, 3], [2, 0]])
    np.testing.assert_allclose(
        cluster_centroids(x, nearest, 4, min_size=1), [[0, 3], [9, 9], [2, 0]]
    )
    with pytest.raises(ValueError, match="nearest"):
        cluster_centroids(x, np.array([0, 1, 4, 0, 0]), 4)
    with pytest.raises(ValueError, match="nearest"):
        cluster_centroids(x, nearest[:3], 4)
    with pytest.raises(ValueError, match="min_size"):
        cluster_centroids(x, nearest, 4, min_size=0)


def test_centroid_alignment_of_shared_interests_is_one_and_beats_random():
    rng = np.random.default_rng(0)
    interests = rng.standard_normal((6, 16))
    labels = np.repeat(np.arange(6), 10)
    # Both domains hold the same 6 interests (noise-free), under permuted cluster ids.
    source = interests[labels]
    target = interests[labels]
    report = centroid_alignment(source, target, labels, (labels + 2) % 6, 6, min_size=5, seed=1)
    assert report["centroid_cross_cosine"] == pytest.approx(1.0)
    assert report["source_centroids"] == report["target_centroids"] == 6
    expected = random_baseline((6, 16), 1)
    assert report["random_centroid_cross_cosine"] == pytest.approx(expected.mean)
    assert report["centroid_cross_cosine_margin"] == pytest.approx(1.0 - expected.mean)
    with pytest.raises(ValueError, match="fewer than 2 clusters"):
        centroid_alignment(source, target, np.zeros(60, int), labels, 6)


def test_assignment_agreement_and_chance_against_hand_values():
    a = np.array([0, 0, 1, 2])
    b = np.array([0, 1, 1, 1])
    agree, chance = assignment_agreement(a, b, 3)
    assert agree == pytest.approx(2 / 4)
    # P_a = (1/2, 1/4, 1/4), P_b = (1/4, 3/4, 0).
    assert chance == pytest.approx(0.5 * 0.25 + 0.25 * 0.75)
    with pytest.raises(ValueError, match="from_source"):
        assignment_agreement(a, b[:3], 3)
    with pytest.raises(ValueError, match="from_target"):
        assignment_agreement(a, np.array([0, 1, 3, 0]), 3)
