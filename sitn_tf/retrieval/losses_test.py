from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from sitn_tf.retrieval import losses


def _np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_cos(v, e):
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    e = e / np.linalg.norm(e, axis=-1, keepdims=True)
    return np.einsum("bkd,bd->bk", v, e)


RNG = np.random.default_rng(0)
V = RNG.normal(size=(4, 3, 5)).astype("float32")  # (batch, K, D)
E_T = RNG.normal(size=(4, 5)).astype("float32")
Z = RNG.normal(size=(4, 3)).astype("float32")
TABLE = RNG.normal(size=(7, 5)).astype("float32")
TARGETS = np.array([1, 6, 3, 3])


def test_next_item_loss_is_a_full_softmax_without_padding():
    user = RNG.normal(size=(4, 5)).astype("float32")
    logits = user @ TABLE[1:].T  # candidates 1..6 only
    expected = -np.log(_np_softmax(logits)[np.arange(4), TARGETS - 1])
    np.testing.assert_allclose(losses.next_item_loss(user, TABLE, TARGETS), expected, rtol=1e-5)


def test_best_matching_interest_and_mixing():
    chosen = np.argmax(np.einsum("bkd,bd->bk", V, E_T), axis=1)
    np.testing.assert_allclose(losses.best_matching_interest(V, E_T), V[np.arange(4), chosen])
    np.testing.assert_allclose(
        losses.mix_interests(V, Z), np.einsum("bk,bkd->bd", _np_softmax(Z), V), rtol=1e-5
    )


@pytest.mark.parametrize("temperature", [0.1, 1.0, 2.5])
def test_distillation_loss_against_numpy(temperature):
    p = _np_softmax(_np_cos(V, E_T) / temperature)  # Eqs. 5, 7
    log_q = np.log(_np_softmax(Z / temperature))  # Eq. 6
    expected = -(p * log_q).sum(-1)  # Eq. 9
    teacher = losses.teacher_distribution(V, E_T, temperature)
    np.testing.assert_allclose(teacher, p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        losses.distillation_loss(teacher, Z, temperature), expected, rtol=1e-5
    )


def test_stop_gradient_blocks_the_teacher_and_only_the_teacher():
    v, e, z = tf.Variable(V), tf.Variable(E_T), tf.Variable(Z)
    for stop, reaches_teacher in ((True, False), (False, True)):
        with tf.GradientTape() as tape:
            teacher = losses.teacher_distribution(v, e, 0.5, stop_gradient=stop)
            loss = tf.reduce_mean(losses.distillation_loss(teacher, z, 0.5))
        grad_v, grad_e, grad_z = tape.gradient(loss, [v, e, z])
        assert (grad_v is not None) == reaches_teacher
        assert (grad_e is not None) == reaches_teacher
        assert grad_z is not None and np.abs(grad_z.numpy()).max() > 0
    # With sg, dL/dz = (q - p) / T / batch: the student moves toward the fixed p.
    with tf.GradientTape() as tape:
        teacher = losses.teacher_distribution(v, e, 0.5)
        loss = tf.reduce_mean(losses.distillation_loss(teacher, z, 0.5))
    p = _np_softmax(_np_cos(V, E_T) / 0.5)
    q = _np_softmax(Z / 0.5)
    np.testing.assert_allclose(tape.gradient(loss, z), (q - p) / 0.5 / 4, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("temperature", [0.2, 1.0, 3.0])
def test_eq11_weights_distillation_by_t_squared(temperature):
    rec = np.array([1.5, 0.25], "float32")
    distill = np.array([0.75, 2.0], "float32")
    np.testing.assert_allclose(
        losses.total_loss(rec, distill, temperature),
        rec + temperature**2 * distill,
        rtol=1e-6,
    )
