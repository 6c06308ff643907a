"""Golden tests: each op against an independent numpy version of its equation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from keras import ops

from sitn_tf import ops as sitn_ops

SHAPES = [(2, 3), (5, 4), (16, 8)]  # (batch, dim)
SIMILARITIES = ["dot", "cosine"]
TEMPERATURES = [0.07, 0.5, 2.0]


# ---------------------------------------------------------------- references
# Written as loops over the paper's sums on purpose: nothing is shared with
# the vectorised keras.ops implementation under test.


def np_sim(x: np.ndarray, y: np.ndarray, similarity: str) -> float:
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if similarity == "cosine":
        nx, ny = np.linalg.norm(x), np.linalg.norm(y)
        x = x / nx if nx > 0 else x
        y = y / ny if ny > 0 else y
    return float(np.dot(x, y))


def np_info_nce(a, p, tau, similarity, mask=None):
    b = len(a)
    valid = np.ones(b, bool) if mask is None else np.asarray(mask, bool)
    out = np.zeros(b)
    for k in range(b):
        if not valid[k]:
            continue
        denominator = sum(
            math.exp(np_sim(a[k], p[i], similarity) / tau) for i in range(b) if valid[i]
        )
        out[k] = -math.log(math.exp(np_sim(a[k], p[k], similarity) / tau) / denominator)
    return out


def np_soft_cluster_update(p, c, similarity):
    num_clusters, dim = c.shape
    u = np.zeros((num_clusters, dim))
    for i in range(len(p)):
        scores = np.array([np_sim(c[k], p[i], similarity) for k in range(num_clusters)])
        pi = np.exp(scores - scores.max())
        pi /= pi.sum()
        for k in range(num_clusters):
            u[k] += pi[k] * p[i]
    return u


def np_top_k(p, c, k, similarity):
    out = []
    for i in range(len(p)):
        scores = [np_sim(p[i], c[j], similarity) for j in range(len(c))]
        order = sorted(range(len(c)), key=lambda j: -scores[j])[:k]
        out.append(c[order])
    return np.stack(out)


def np_i2c(a, q, u, tau, similarity):
    out = []
    for i in range(len(a)):
        pos = math.exp(np_sim(a[i], q[i], similarity) / tau)
        neg = sum(math.exp(np_sim(a[i], u[j], similarity) / tau) for j in range(len(u)))
        out.append(-math.log(pos / (pos + neg)))
    return np.array(out)


def np_sinkhorn(scores, iterations, valid):
    """SwAV's Sinkhorn-Knopp as loops: columns to equal mass, then rows to 1."""
    q = np.where(np.asarray(valid)[:, None], np.exp(np.asarray(scores, np.float64)), 0.0)
    n, k = q.shape
    for _ in range(iterations):
        for j in range(k):
            q[:, j] /= q[:, j].sum()
        for i in range(n):
            total = q[i].sum()
            q[i] = q[i] / total if total > 0 else q[i]
    return q


def _random(seed, *shape):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# ---------------------------------------------------------------- info_nce


@pytest.mark.parametrize("batch,dim", SHAPES)
@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("tau", TEMPERATURES)
def test_info_nce_matches_numpy(batch, dim, similarity, tau):
    a, p = _random(1, batch, dim), _random(2, batch, dim)
    got = ops.convert_to_numpy(sitn_ops.info_nce(a, p, tau, similarity))
    assert got.shape == (batch,)
    np.testing.assert_allclose(got, np_info_nce(a, p, tau, similarity), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_info_nce_mask_removes_rows_and_negatives(similarity):
    a, p = _random(3, 6, 4), _random(4, 6, 4)
    mask = np.array([True, False, True, True, False, True])
    got = ops.convert_to_numpy(sitn_ops.info_nce(a, p, 0.3, similarity, mask=mask))
    np.testing.assert_allclose(got, np_info_nce(a, p, 0.3, similarity, mask), rtol=1e-4, atol=1e-5)
    assert got[1] == 0.0 and got[4] == 0.0
    # Equivalent to dropping the masked rows altogether.
    dropped = ops.convert_to_numpy(sitn_ops.info_nce(a[mask], p[mask], 0.3, similarity))
    np.testing.assert_allclose(got[mask], dropped, rtol=1e-5, atol=1e-6)


def test_info_nce_hand_computed_2x2():
    a = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    p = np.array([[1.0, 0.0], [1.0, 1.0]], "float32")
    # dot / 0.5: logits [[2, 2], [0, 2]].
    dot = ops.convert_to_numpy(sitn_ops.info_nce(a, p, 0.5, "dot"))
    np.testing.assert_allclose(dot, [math.log(2.0), math.log1p(math.exp(-2.0))], rtol=1e-6)
    # cosine / 0.5: logits [[2, sqrt(2)], [0, sqrt(2)]].
    r2 = math.sqrt(2.0)
    cos = ops.convert_to_numpy(sitn_ops.info_nce(a, p, 0.5, "cosine"))
    np.testing.assert_allclose(
        cos, [math.log1p(math.exp(r2 - 2.0)), math.log1p(math.exp(-r2))], rtol=1e-6
    )


def test_info_nce_all_zero_inputs_are_finite():
    zeros = np.zeros((4, 3), "float32")
    for similarity in SIMILARITIES:
        got = ops.convert_to_numpy(sitn_ops.info_nce(zeros, zeros, 0.1, similarity))
        np.testing.assert_allclose(got, np.full(4, math.log(4.0)), rtol=1e-6)
        masked = sitn_ops.info_nce(zeros, zeros, 0.1, similarity, mask=np.zeros(4, bool))
        np.testing.assert_array_equal(ops.convert_to_numpy(masked), np.zeros(4))


# ---------------------------------------------------------------- Eq. 5


@pytest.mark.parametrize("batch,dim", SHAPES)
@pytest.mark.parametrize("num_clusters", [1, 3, 7])
@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_soft_cluster_update_matches_numpy(batch, dim, num_clusters, similarity):
    p, c = _random(5, batch, dim), _random(6, num_clusters, dim)
    got = ops.convert_to_numpy(sitn_ops.soft_cluster_update(p, c, similarity))
    assert got.shape == (num_clusters, dim)
    np.testing.assert_allclose(got, np_soft_cluster_update(p, c, similarity), rtol=1e-4, atol=1e-5)


def test_soft_cluster_update_hand_computed_2x2():
    p = np.array([[1.0, 0.0], [0.0, 2.0]], "float32")
    c = np.eye(2, dtype="float32")
    e, e2 = math.e, math.e**2
    expected = [[e / (e + 1), 2 / (1 + e2)], [1 / (e + 1), 2 * e2 / (1 + e2)]]
    got = ops.convert_to_numpy(sitn_ops.soft_cluster_update(p, c, "dot"))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # Each instance hands out exactly one unit of weight over the clusters.
    np.testing.assert_allclose(got.sum(axis=0), p.sum(axis=0), rtol=1e-6)


def test_soft_cluster_update_mask_drops_instances():
    p, c = _random(7, 5, 3), _random(8, 4, 3)
    mask = np.array([True, True, False, True, False])
    got = sitn_ops.soft_cluster_update(p, c, "cosine", mask=mask)
    np.testing.assert_allclose(
        ops.convert_to_numpy(got),
        np_soft_cluster_update(p[mask], c, "cosine"),
        rtol=1e-4,
        atol=1e-5,
    )


# ---------------------------------------------------------------- Eq. 6


@pytest.mark.parametrize("batch,dim", SHAPES)
@pytest.mark.parametrize("num_clusters,k", [(1, 1), (4, 2), (9, 9), (12, 5)])
@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_top_k_clusters_matches_numpy(batch, dim, num_clusters, k, similarity):
    p, c = _random(9, batch, dim), _random(10, num_clusters, dim)
    got = ops.convert_to_numpy(sitn_ops.top_k_clusters(p, c, k, similarity))
    assert got.shape == (batch, k, dim)
    np.testing.assert_allclose(got, np_top_k(p, c, k, similarity), rtol=1e-6)


def test_top_k_clusters_hand_computed():
    p = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    c = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], "float32")
    got = ops.convert_to_numpy(sitn_ops.top_k_clusters(p, c, 2, "dot"))
    np.testing.assert_array_equal(got, [[c[1], c[2]], [c[0], c[2]]])


# ---------------------------------------------------------------- Eq. 7


@pytest.mark.parametrize("batch,dim", SHAPES)
@pytest.mark.parametrize("num_clusters", [1, 6])
@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("tau", TEMPERATURES)
def test_instance_to_cluster_nce_matches_numpy(batch, dim, num_clusters, similarity, tau):
    a, q, u = _random(11, batch, dim), _random(12, batch, dim), _random(13, num_clusters, dim)
    got = ops.convert_to_numpy(sitn_ops.instance_to_cluster_nce(a, q, u, tau, similarity))
    assert got.shape == (batch,)
    np.testing.assert_allclose(got, np_i2c(a, q, u, tau, similarity), rtol=1e-4, atol=1e-4)


def test_instance_to_cluster_nce_hand_computed():
    a = np.array([[1.0, 0.0]], "float32")
    q = np.array([[1.0, 0.0]], "float32")
    u = np.array([[0.0, 1.0], [1.0, 1.0]], "float32")
    # positive logit 1, negatives 0 and 1: -log(e / (e + 1 + e)).
    got = ops.convert_to_numpy(sitn_ops.instance_to_cluster_nce(a, q, u, 1.0, "dot"))
    np.testing.assert_allclose(got, [math.log(2.0 + math.exp(-1.0))], rtol=1e-6)


# ---------------------------------------------------------------- Eq. 2 and helpers


def test_masked_mean_ignores_padding_and_empty_rows_are_zero():
    x = _random(14, 3, 4, 2)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
    got = ops.convert_to_numpy(sitn_ops.masked_mean(x, mask))
    np.testing.assert_allclose(got[0], x[0, :2].mean(0), rtol=1e-6)
    np.testing.assert_allclose(got[1], x[1].mean(0), rtol=1e-6)
    np.testing.assert_array_equal(got[2], [0.0, 0.0])


def test_padding_mask():
    ids = np.array([[3, 0, 7], [0, 0, 0]], "int64")
    np.testing.assert_array_equal(
        ops.convert_to_numpy(sitn_ops.padding_mask(ids)), [[True, False, True], [False] * 3]
    )


@pytest.mark.parametrize(
    ("mask", "length"),
    [
        ([[1, 1, 0, 0, 0], [1, 0, 1, 0, 0]], 3),  # row 1's last real item is at 2
        ([[0, 0, 0, 1], [1, 0, 0, 0]], 4),  # a real item at the end: nothing to drop
        ([[0, 1, 1, 0], [0, 0, 0, 0]], 3),  # left padding keeps its leading zeros
        ([[0, 0, 0], [0, 0, 0]], 0),  # all empty
        (np.zeros((0, 4)), 0),  # no rows
    ],
)
def test_real_length_keeps_every_real_position(mask, length):
    got = ops.convert_to_numpy(sitn_ops.real_length(np.asarray(mask, bool)))
    assert int(got) == length


def test_drop_padded_tail_cuts_ids_and_categories_alike_keeping_one_position():
    ids = np.array([[3, 1, 0, 0, 0], [2, 0, 4, 0, 0]])
    categories = ids * 10
    cut_ids, cut_categories = sitn_ops.drop_padded_tail(ids, categories)
    np.testing.assert_array_equal(ops.convert_to_numpy(cut_ids), ids[:, :3])
    np.testing.assert_array_equal(ops.convert_to_numpy(cut_categories), categories[:, :3])
    empty, none = sitn_ops.drop_padded_tail(np.zeros((2, 4), "int32"))
    assert ops.convert_to_numpy(empty).shape == (2, 1) and none is None


def test_cosine_of_zero_vector_is_zero_with_finite_gradient():
    import tensorflow as tf

    zero = tf.Variable(np.zeros((1, 3), "float32"))
    other = np.ones((2, 3), "float32")
    with tf.GradientTape() as tape:
        sim = sitn_ops.similarity_matrix(zero, other, "cosine")
        total = tf.reduce_sum(sim)
    np.testing.assert_array_equal(sim.numpy(), [[0.0, 0.0]])
    assert np.all(np.isfinite(tape.gradient(total, zero).numpy()))


# ---------------------------------------------------------------- bad arguments


def test_bad_arguments_name_the_argument():
    x = np.ones((2, 3), "float32")
    with pytest.raises(ValueError, match="`similarity`"):
        sitn_ops.info_nce(x, x, 0.1, "euclidean")
    with pytest.raises(ValueError, match="`temperature`"):
        sitn_ops.info_nce(x, x, 0.0)
    with pytest.raises(ValueError, match="`temperature`"):
        sitn_ops.instance_to_cluster_nce(x, x, x, -1.0)
    with pytest.raises(ValueError, match="`k`"):
        sitn_ops.top_k_clusters(x, x, 3)
    with pytest.raises(ValueError, match="`k`"):
        sitn_ops.top_k_clusters(x, x, 0)
    with pytest.raises(ValueError, match="`similarity`"):
        sitn_ops.soft_cluster_update(x, x, "l2")


# ---------------------------------------------------------- cluster remedies


def test_sinkhorn_hand_case_balances_a_collapsed_assignment():
    # Four instances that all prefer cluster 0: the softmax gives it most of
    # the mass, Sinkhorn spreads the batch evenly over the two clusters.
    p = np.array([[3.0, 0.0], [2.0, 0.5], [2.0, 1.0], [1.0, 0.9]], "float32")
    c = np.eye(2, dtype="float32")
    softmax = ops.convert_to_numpy(sitn_ops.cluster_assignment(p, c, "dot"))
    assert softmax[:, 0].sum() > 3.0
    pi = ops.convert_to_numpy(
        sitn_ops.cluster_assignment(p, c, "dot", method="sinkhorn", sinkhorn_iterations=50)
    )
    np.testing.assert_allclose(pi.sum(axis=1), np.ones(4), rtol=1e-6)  # rows: one unit each
    np.testing.assert_allclose(pi.sum(axis=0), [2.0, 2.0], rtol=1e-3)  # columns: B / K each
    # The ordering of preferences survives the balancing.
    assert np.all(np.diff(pi[:, 0]) < 0)
    np.testing.assert_allclose(pi, np_sinkhorn(p @ c.T, 50, np.ones(4, bool)), rtol=1e-4)


@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("temperature", [0.1, 1.0])
@pytest.mark.parametrize("iterations", [1, 3])
def test_sinkhorn_matches_numpy_with_mask(similarity, temperature, iterations):
    p, c = _random(30, 9, 4), _random(31, 5, 4)
    valid = np.array([1, 1, 0, 1, 1, 1, 0, 1, 1], bool)
    scores = np.array([[np_sim(x, y, similarity) for y in c] for x in p]) / temperature
    got = ops.convert_to_numpy(
        sitn_ops.cluster_assignment(
            p,
            c,
            similarity,
            mask=valid,
            method="sinkhorn",
            temperature=temperature,
            sinkhorn_iterations=iterations,
        )
    )
    np.testing.assert_allclose(got, np_sinkhorn(scores, iterations, valid), rtol=1e-4, atol=1e-6)
    assert np.all(got[~valid] == 0)


def test_softmax_assignment_temperature_and_default_is_the_paper():
    p, c = _random(32, 6, 3), _random(33, 4, 3)
    for tau in (1.0, 0.2):
        scores = p @ c.T / tau
        expected = np.exp(scores - scores.max(1, keepdims=True))
        expected /= expected.sum(1, keepdims=True)
        got = sitn_ops.cluster_assignment(p, c, "dot", temperature=tau)
        np.testing.assert_allclose(ops.convert_to_numpy(got), expected, rtol=1e-5)
    # soft_cluster_update with its defaults is Eq. 5 exactly.
    np.testing.assert_allclose(
        ops.convert_to_numpy(sitn_ops.soft_cluster_update(p, c, "dot")),
        np_soft_cluster_update(p, c, "dot"),
        rtol=1e-4,
        atol=1e-5,
    )


def test_normalized_new_clusters_have_unit_norm_and_eq5_direction():
    p, c = _random(34, 7, 3), _random(35, 4, 3)
    u = ops.convert_to_numpy(sitn_ops.soft_cluster_update(p, c, "dot", normalize=True))
    reference = np_soft_cluster_update(p, c, "dot")
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), np.ones(4), rtol=1e-5)
    np.testing.assert_allclose(
        u, reference / np.linalg.norm(reference, axis=1, keepdims=True), rtol=1e-4, atol=1e-6
    )


def test_instance_to_cluster_gap_hand_case():
    a = np.array([[1.0, 0.0]], "float32")
    q = np.array([[2.0, 0.0]], "float32")
    u = np.array([[1.0, 1.0], [0.0, 3.0], [1.5, 0.0]], "float32")
    # dot: positive 2, negatives 1, 0, 1.5 -> gap (2 - 1.5) / 0.5 = 1.
    gap = sitn_ops.instance_to_cluster_gap(a, q, u, 0.5, "dot")
    np.testing.assert_allclose(ops.convert_to_numpy(gap), [1.0], rtol=1e-6)


def test_cluster_assignment_bad_arguments():
    p, c = _random(36, 3, 2), _random(37, 2, 2)
    with pytest.raises(ValueError, match="`method`"):
        sitn_ops.cluster_assignment(p, c, method="kmeans")
    with pytest.raises(ValueError, match="`sinkhorn_iterations`"):
        sitn_ops.cluster_assignment(p, c, method="sinkhorn", sinkhorn_iterations=0)
    with pytest.raises(ValueError, match="`temperature`"):
        sitn_ops.cluster_assignment(p, c, temperature=0.0)


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_instance_to_cluster_nce_with_view_negatives_matches_numpy(similarity):
    a, q, u = _random(40, 5, 3), _random(41, 5, 3), _random(42, 4, 3)
    valid = np.array([1, 1, 0, 1, 1], bool)
    tau = 0.5
    got = ops.convert_to_numpy(
        sitn_ops.instance_to_cluster_nce(a, q, u, tau, similarity, view_negatives=True, mask=valid)
    )
    for i in range(5):
        pos = math.exp(np_sim(a[i], q[i], similarity) / tau)
        others = sum(
            math.exp(np_sim(a[i], q[j], similarity) / tau) for j in range(5) if j != i and valid[j]
        )
        clusters = sum(math.exp(np_sim(a[i], u[j], similarity) / tau) for j in range(4))
        # A row's own positive always counts, even when its column is masked.
        if valid[i]:
            expected = -math.log(pos / (pos + others + clusters))
            assert got[i] == pytest.approx(expected, rel=1e-4)
    # Off, it is Eq. 7 exactly.
    np.testing.assert_allclose(
        ops.convert_to_numpy(sitn_ops.instance_to_cluster_nce(a, q, u, tau, similarity)),
        np_i2c(a, q, u, tau, similarity),
        rtol=1e-4,
    )


def test_view_negatives_remove_the_collapsed_minimum():
    # Every user encoded alike, views aligned, clusters opposite: Eq. 7 is
    # near 0, but with the other views as negatives it is ln(batch).
    a = np.tile([[1.0, 0.0]], (4, 1)).astype("float32")
    u = np.tile([[-1.0, 0.0]], (3, 1)).astype("float32")
    plain = ops.convert_to_numpy(sitn_ops.instance_to_cluster_nce(a, a, u, 0.1, "cosine"))
    views = ops.convert_to_numpy(
        sitn_ops.instance_to_cluster_nce(a, a, u, 0.1, "cosine", view_negatives=True)
    )
    assert np.all(plain < 1e-6)
    np.testing.assert_allclose(views, np.log(4.0), rtol=1e-4)
