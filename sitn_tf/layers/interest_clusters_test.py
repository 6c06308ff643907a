from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from sitn_tf.layers.interest_clusters import InterestClusters

DIM = 6


def _instances(seed=0, batch=8):
    return np.random.default_rng(seed).normal(size=(batch, DIM)).astype("float32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _normalize(x):
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _np_new_clusters(p, c, similarity):
    a, b = (p, c) if similarity == "dot" else (_normalize(p), _normalize(c))
    scores = a @ b.T
    pi = np.exp(scores - scores.max(1, keepdims=True))
    pi /= pi.sum(1, keepdims=True)
    return pi.T @ p


def _np_top(p, u, k, similarity):
    a, b = (p, u) if similarity == "dot" else (_normalize(p), _normalize(u))
    order = np.argsort(-(a @ b.T), axis=1, kind="stable")[:, :k]
    return u[order]


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_top_1_is_nearest_new_cluster_without_multi_view(similarity):
    layer = InterestClusters(5, top_k=1, similarity=similarity)
    p = _instances()
    u, q = layer(p)
    c = layer.clusters.numpy()
    expected_u = _np_new_clusters(p, c, similarity)
    np.testing.assert_allclose(_np(u), expected_u, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        _np(q), _np_top(p, expected_u, 1, similarity)[:, 0], rtol=1e-4, atol=1e-5
    )
    assert layer.multi_view is None
    assert [w.path for w in layer.weights] == [f"{layer.name}/clusters"]


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_multi_view_concatenates_top_k_in_order_then_mlp(similarity):
    layer = InterestClusters(7, top_k=3, similarity=similarity, multi_view_units=(10,))
    p = _instances(1)
    u, q = layer(p)
    top = _np_top(p, _np(u), 3, similarity)  # (B, 3, D) in descending similarity
    (w0, b0), (w1, b1) = ([w.numpy() for w in d.weights] for d in layer.multi_view.dense_layers)
    assert w0.shape == (3 * DIM, 10) and w1.shape == (10, DIM)
    hidden = np.maximum(top.reshape(len(p), -1) @ w0 + b0, 0.0)
    np.testing.assert_allclose(_np(q), hidden @ w1 + b1, rtol=1e-4, atol=1e-5)


def test_mask_excludes_instances_from_new_clusters():
    layer = InterestClusters(4)
    p = _instances(2)
    mask = np.array([True] * 5 + [False] * 3)
    u, _ = layer(p, mask=mask)
    np.testing.assert_allclose(
        _np(u), _np_new_clusters(p[:5], layer.clusters.numpy(), "dot"), rtol=1e-4, atol=1e-5
    )


def test_gradients_reach_clusters_and_multi_view_mlp():
    layer = InterestClusters(6, top_k=2, similarity="cosine")
    p = tf.Variable(_instances(3))
    with tf.GradientTape() as tape:
        u, q = layer(p)
        loss = tf.reduce_sum(q * tf.reverse(p, [0])) + tf.reduce_sum(u[:, 0])
    variables = [p] + layer.trainable_weights
    grads = tape.gradient(loss, variables)
    assert len(layer.trainable_weights) == 1 + 2  # C + one dense projection (kernel, bias)
    for var, grad in zip(variables, grads, strict=True):
        assert grad is not None and np.any(np.abs(grad.numpy()) > 0), var.path


def test_config_round_trip_and_save_load(tmp_path):
    layer = InterestClusters(
        5,
        top_k=2,
        similarity="cosine",
        multi_view_units=(4,),
        cluster_initializer="glorot_uniform",
        name="clusters_t_5",
    )
    clone = InterestClusters.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()

    inputs = keras.Input((DIM,))
    u, q = layer(inputs)
    model = keras.Model(inputs, q)
    p = _instances(4)
    path = tmp_path / "clusters.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(restored.predict(p, verbose=0), model.predict(p, verbose=0))


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"num_clusters": 4, "top_k": 5}, "top_k"),
        ({"num_clusters": 0}, "num_clusters"),
        ({"num_clusters": 4, "top_k": 0}, "top_k"),
        ({"num_clusters": 4, "similarity": "l2"}, "similarity"),
        ({"num_clusters": 4, "multi_view_units": (0,)}, "multi_view_units"),
    ],
)
def test_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        InterestClusters(**kwargs)
