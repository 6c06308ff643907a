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
        assignment="sinkhorn",
        assignment_temperature=0.2,
        sinkhorn_iterations=4,
        normalize_new_clusters=True,
        stop_gradient_views=True,
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
        ({"num_clusters": 4, "assignment": "kmeans"}, "assignment"),
        ({"num_clusters": 4, "assignment_temperature": 0.0}, "assignment_temperature"),
        ({"num_clusters": 4, "sinkhorn_iterations": 0}, "sinkhorn_iterations"),
        ({"num_clusters": 4, "normalize_new_clusters": 1}, "normalize_new_clusters"),
        ({"num_clusters": 4, "stop_gradient_views": "yes"}, "stop_gradient_views"),
    ],
)
def test_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        InterestClusters(**kwargs)


def test_remedies_sinkhorn_normalised_u_and_nearest():
    layer = InterestClusters(
        4,
        similarity="cosine",
        assignment="sinkhorn",
        assignment_temperature=0.5,
        normalize_new_clusters=True,
    )
    p = _instances(5, batch=12)
    u, q = layer(p)
    c = layer.clusters.numpy()
    scores = _normalize(p) @ _normalize(c).T / 0.5
    pi = np.exp(scores - scores.max())
    for _ in range(3):
        pi /= pi.sum(0, keepdims=True)
        pi /= pi.sum(1, keepdims=True)
    expected_u = _normalize(pi.T @ p)
    np.testing.assert_allclose(_np(u), expected_u, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(
        _np(layer.nearest(p)), (_normalize(p) @ _normalize(c).T).argmax(1)
    )


def test_stop_gradient_views_blocks_only_the_view_path():
    layer = InterestClusters(6, top_k=2, similarity="cosine", stop_gradient_views=True)
    p = tf.Variable(_instances(3))
    with tf.GradientTape(persistent=True) as tape:
        u, q = layer(p)
        view_loss = tf.reduce_sum(q)
        cluster_loss = tf.reduce_sum(u)
    assert all(g is None for g in tape.gradient(view_loss, [p] + layer.trainable_weights))
    assert tape.gradient(cluster_loss, layer.clusters) is not None


def test_call_can_return_the_assignment():
    layer = InterestClusters(4, similarity="cosine", assignment_temperature=0.5)
    p = _instances(6)
    u, q, pi = layer(p, return_assignment=True)
    np.testing.assert_allclose(_np(pi), _np(layer.assign(p)), rtol=1e-6)
    np.testing.assert_allclose(_np(u), _np(layer(p)[0]), rtol=1e-6)
    spec = layer.compute_output_spec(keras.KerasTensor((6, DIM)), return_assignment=True)
    assert [tuple(s.shape) for s in spec] == [(4, DIM), (6, DIM), (6, 4)]
