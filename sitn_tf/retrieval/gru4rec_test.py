from __future__ import annotations

import keras
import numpy as np
import pytest

from sitn_tf.retrieval.gru4rec import GRU4Rec


def _np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_scores_and_loss_from_the_last_gru_state():
    keras.utils.set_random_seed(0)
    model = GRU4Rec(9, embedding_dim=4)
    history = np.array([[1, 2, 3, 0], [4, 0, 0, 0]], "int32")
    targets = np.array([5, 8], "int32")
    table = model.item_embedding.embeddings.numpy()
    # Padding is skipped: the state of [1, 2, 3, 0] is the state of [1, 2, 3].
    state = keras.ops.convert_to_numpy(model.gru(table[np.array([[1, 2, 3], [4, 4, 4]])]))
    single = keras.ops.convert_to_numpy(model.gru(table[np.array([[4]])]))
    user = np.stack([state[0], single[0]])
    np.testing.assert_allclose(model.query_scores(history), user @ table.T, rtol=1e-4, atol=1e-5)
    expected = -np.log(_np_softmax(user @ table[1:].T)[np.arange(2), targets - 1]).mean()
    loss = model.compute_loss({"history": history, "target": targets})
    assert float(loss) == pytest.approx(expected, rel=1e-4)


def test_config_round_trip_and_save_load(tmp_path):
    model = GRU4Rec(9, embedding_dim=4, num_candidates=6)
    assert GRU4Rec.from_config(model.get_config()).get_config() == model.get_config()
    path = tmp_path / "gru4rec.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    history = np.array([[1, 7, 0]], "int32")
    np.testing.assert_allclose(restored.query_scores(history), model.query_scores(history))
    assert tuple(restored.query_scores(history).shape) == (1, 6)


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"num_items": 0}, "num_items"),
        ({"num_items": 5, "embedding_dim": 0}, "embedding_dim"),
        ({"num_items": 5, "num_candidates": 6}, "num_candidates"),
    ],
)
def test_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        GRU4Rec(**kwargs)
