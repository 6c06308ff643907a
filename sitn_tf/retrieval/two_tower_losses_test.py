from __future__ import annotations

import numpy as np
import pytest

from sitn_tf.retrieval import two_tower_losses as tl


def _np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


RNG = np.random.default_rng(0)
Q = RNG.normal(size=(4, 3)).astype("float32")
X = RNG.normal(size=(4, 3)).astype("float32")


def test_item_log_probabilities_are_training_frequencies():
    targets = np.array([1, 1, 2, 1, 3, 3])
    log_q = tl.item_log_probabilities(targets, num_candidates=5)
    np.testing.assert_allclose(np.exp(log_q[1:4]), [3 / 6, 1 / 6, 2 / 6], rtol=1e-6)
    # Never clicked (id 4): below every seen item, finite.
    assert np.isfinite(log_q[4]) and log_q[4] < log_q[1:4].min()
    with pytest.raises(ValueError, match="`targets`"):
        tl.item_log_probabilities(np.array([0, 1]), num_candidates=5)


@pytest.mark.parametrize("temperature", [0.05, 1.0])
def test_in_batch_softmax_with_log_q_and_an_accidental_hit(temperature):
    ids = np.array([7, 3, 7, 5])  # rows 0 and 2 are the same item
    log_q = np.log(np.array([0.3, 0.1, 0.3, 0.05], "float32"))
    logits = Q @ X.T / temperature - log_q[None, :]
    expected = []
    for i in range(4):
        # Negatives: every other column except those holding the same id.
        keep = [j for j in range(4) if j == i or ids[j] != ids[i]]
        expected.append(-_np_log_softmax(logits[i, keep])[keep.index(i)])
    got = np.asarray(tl.in_batch_softmax_loss(Q, X, ids, log_q, temperature))
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    # Rows 0 and 2 saw 3 columns, not 4: without the mask the loss is larger.
    unmasked = -_np_log_softmax(logits)[np.arange(4), np.arange(4)]
    assert (got[[0, 2]] < unmasked[[0, 2]] - 1e-3).all() or temperature < 1
    np.testing.assert_allclose(got[[1, 3]], unmasked[[1, 3]], rtol=1e-4)


def test_contrastive_loss_hand_case():
    # Two items, orthogonal unit views: s(z_i, z'_i) = 1, s(z_i, z'_j) = 0.
    a = np.array([[2.0, 0.0], [0.0, 3.0]], "float32")  # normalised inside
    b = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    tau = 0.5
    expected = -np.log(np.exp(1 / tau) / (np.exp(1 / tau) + np.exp(0.0)))
    np.testing.assert_allclose(tl.contrastive_loss(a, b, tau), [expected, expected], rtol=1e-5)
    # Swapped views: the positive is orthogonal, the negative aligned.
    swapped = -np.log(1.0 / (1.0 + np.exp(1 / tau)))
    np.testing.assert_allclose(tl.contrastive_loss(a, b[::-1], tau), [swapped] * 2, rtol=1e-5)


def test_spread_out_against_numpy():
    p = RNG.normal(size=(5, 4))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    ids = np.array([1, 2, 1, 3, 4])
    dots = p @ p.T
    pairs = (~np.eye(5, dtype=bool)) & (ids[:, None] != ids[None, :])
    m1, m2 = dots[pairs].mean(), (dots[pairs] ** 2).mean()
    expected = m1**2 + max(m2 - 1 / 4, 0.0)
    got = float(tl.spread_out_loss(p.astype("float32"), ids))
    assert got == pytest.approx(expected, rel=1e-4)
    # Orthonormal embeddings: M1 = 0 and M2 = 0 < 1/d, nothing to spread.
    assert float(tl.spread_out_loss(np.eye(4, dtype="float32"))) == pytest.approx(0.0, abs=1e-7)
