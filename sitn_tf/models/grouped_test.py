"""Grouped scoring: each distinct history encoded once, outputs as if per candidate.

The reference is the per-example model: every candidate scored alone, in a
batch of one, where no two candidates can share an encoding.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from sitn_tf import features
from sitn_tf import ops as sitn_ops
from sitn_tf.models._testing import random_batch, record_input_shapes, tiny_config
from sitn_tf.models.din import DIN
from sitn_tf.models.ranker import SITNRanker

HISTORY_FEATURES = (
    features.SOURCE_ITEM_IDS,
    features.SOURCE_CATEGORIES,
    features.TARGET_ITEM_IDS,
    features.TARGET_CATEGORIES,
)
# Candidates per history, in batch order: groups of 1 + 4 negatives as the
# converter writes them, a lone candidate, a group cut by a batch boundary.
GROUP_SIZES = (5, 1, 5, 3)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def grouped_batch(config, seed=0):
    """A batch whose rows repeat their group's histories; distinct candidates."""
    histories, _ = random_batch(config, batch=len(GROUP_SIZES), seed=seed, empty_target_rows=(1,))
    rows = np.repeat(np.arange(len(GROUP_SIZES)), GROUP_SIZES)
    x, labels = random_batch(config, batch=len(rows), seed=seed + 1, empty_target_rows=())
    for name in HISTORY_FEATURES:
        x[name] = histories[name][rows]
    return x, labels, rows


def _row(x, i):
    return {name: value[i : i + 1] for name, value in x.items()}


def _loss_and_gradients(model, x, labels):
    with tf.GradientTape() as tape:
        loss = keras.losses.binary_crossentropy(labels, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    return float(loss), [_np(tf.convert_to_tensor(g)) for g in grads]


def test_adjacent_runs_finds_adjacent_runs_only():
    ids = np.array([[1, 2], [1, 2], [3, 0], [1, 2], [1, 2]])
    cats = np.array([[1, 1], [1, 1], [2, 0], [1, 1], [2, 1]])
    starts, index = sitn_ops.adjacent_runs([ids, None, cats])
    # Row 3 equals rows 0-1 but is not adjacent; row 4 differs in a category.
    np.testing.assert_array_equal(_np(starts), [0, 2, 3, 4])
    np.testing.assert_array_equal(_np(index), [0, 0, 1, 2, 3])
    starts, index = sitn_ops.adjacent_runs([np.zeros((0, 2), "int64")])
    assert _np(starts).shape == (0,) and _np(index).shape == (0,)


@pytest.mark.parametrize("model_class", [SITNRanker, DIN])
def test_grouped_batch_gives_the_per_example_predictions_loss_and_gradients(model_class):
    config = tiny_config()  # dropout 0: one mask per history changes nothing
    model = model_class(config)
    x, labels, _ = grouped_batch(config)
    predictions = _np(model(x))
    alone = np.concatenate([_np(model(_row(x, i))) for i in range(len(labels))])
    np.testing.assert_allclose(predictions, alone, rtol=1e-6, atol=1e-7)

    loss, grads = _loss_and_gradients(model, x, labels)
    # Eq. 9's BCE is a mean over candidates: the mean of the one-row losses,
    # and its gradient the mean of theirs.
    per_row = [
        _loss_and_gradients(model, _row(x, i), labels[i : i + 1]) for i in range(len(labels))
    ]
    np.testing.assert_allclose(loss, np.mean([r[0] for r in per_row]), rtol=1e-6)
    for i, grad in enumerate(grads):
        expected = np.mean([r[1][i] for r in per_row], axis=0)
        np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("model_class", [SITNRanker, DIN])
def test_score_with_history_index_reads_one_row_per_history(model_class):
    config = tiny_config()
    model = model_class(config)
    x, _, rows = grouped_batch(config, seed=3)
    starts = np.concatenate([[0], np.cumsum(GROUP_SIZES)[:-1]])
    compact = {
        name: (value[starts] if name in HISTORY_FEATURES else value) for name, value in x.items()
    }
    scored = _np(model.score(compact, history_index=rows.astype("int32")))
    np.testing.assert_allclose(scored, _np(model(x)), rtol=1e-6, atol=1e-7)


def test_grouping_encodes_each_history_once():
    config = tiny_config()
    model = SITNRanker(config)
    x, _, _ = grouped_batch(config)
    seen = record_input_shapes(model.source_encoder)
    model(x)
    assert seen == [(len(GROUP_SIZES), config.max_seq_len)]


@pytest.mark.parametrize("model_class", [SITNRanker, DIN])
def test_a_common_padded_tail_is_dropped_with_the_same_outputs_and_gradients(model_class):
    config = tiny_config(max_seq_len=10)
    model = model_class(config)
    x, labels, _ = grouped_batch(config, seed=5)
    for name in HISTORY_FEATURES:
        x[name][:, 7:] = 0  # positions 7-9 are padding in every row
    length = {name: int(_np(sitn_ops.real_length(x[name] != 0))) for name in HISTORY_FEATURES}
    assert max(length.values()) <= 7
    attention = model.target_attention if model_class is SITNRanker else model.attention
    attended = record_input_shapes(attention, argument=1)  # the keys
    if model_class is SITNRanker:
        encoded = record_input_shapes(model.source_encoder)
    model.jit_compile = False  # drops the tail
    trimmed = _np(model(x))
    trimmed_loss, trimmed_grads = _loss_and_gradients(model, x, labels)
    assert attended[0][1] == length[features.TARGET_ITEM_IDS] < config.max_seq_len
    if model_class is SITNRanker:  # the encoders read the trimmed histories too
        assert encoded[0][1] == length[features.SOURCE_ITEM_IDS] < config.max_seq_len
    model.jit_compile = True  # keeps all L positions (called eagerly here)
    full = _np(model(x))
    full_loss, full_grads = _loss_and_gradients(model, x, labels)
    assert attended[-1][1] == config.max_seq_len
    np.testing.assert_allclose(trimmed, full, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(trimmed_loss, full_loss, rtol=1e-6)
    for got, expected in zip(trimmed_grads, full_grads, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("model_class", [SITNRanker, DIN])
def test_a_batch_without_any_target_history_scores_like_the_full_length(model_class):
    # Every target history empty: the kept length is 0 and the attention reads nothing.
    config = tiny_config(max_seq_len=6)
    model = model_class(config)
    x, labels, _ = grouped_batch(config, seed=7)
    x[features.TARGET_ITEM_IDS][:] = 0
    x[features.TARGET_CATEGORIES][:] = 0
    model.jit_compile = False
    trimmed = _np(model(x))
    trimmed_loss, _ = _loss_and_gradients(model, x, labels)
    model.jit_compile = True
    full = _np(model(x))
    assert np.isfinite(trimmed).all()
    np.testing.assert_allclose(trimmed, full, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(trimmed_loss, _loss_and_gradients(model, x, labels)[0], rtol=1e-6)
