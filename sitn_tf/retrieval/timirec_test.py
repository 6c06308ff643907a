from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from sitn_tf.retrieval.timirec import TiMiRec

NUM_ITEMS = 12


def _np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_cos(v, e):
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    e = e / np.linalg.norm(e, axis=-1, keepdims=True)
    return np.einsum("bkd,bd->bk", v, e)


def _batch():
    history = np.array([[1, 4, 7, 0], [2, 3, 0, 0], [9, 10, 11, 5]], "int32")
    return {"history": history, "target": np.array([5, 8, 2], "int32")}


def _model(**kwargs):
    keras.utils.set_random_seed(0)
    return TiMiRec(
        NUM_ITEMS,
        embedding_dim=6,
        num_interests=3,
        attention_units=5,
        predictor_dim=4,
        predictor_units=5,
        **kwargs,
    )


def _np_rec(user, table, targets):
    logits = user @ table[1:].T
    return -np.log(_np_softmax(logits)[np.arange(len(targets)), targets - 1])


def test_pretrain_loss_uses_the_best_matching_interest():
    model = _model()
    x = _batch()
    out = model(x)
    v = keras.ops.convert_to_numpy(out["interests"])
    table = model.item_embedding.embeddings.numpy()
    e_t = table[x["target"]]
    user = v[np.arange(3), np.argmax(np.einsum("bkd,bd->bk", v, e_t), axis=1)]  # Eq. 2
    expected = _np_rec(user, table, x["target"]).mean()  # Eq. 10
    loss = model.compute_loss(x, y_pred=out)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(model.loss_rec_tracker.result()) == pytest.approx(expected, rel=1e-5)
    # ComiRec retrieval: a candidate's best interest.
    scores = keras.ops.convert_to_numpy(model.query_scores(x["history"]))
    np.testing.assert_allclose(scores, np.einsum("bkd,cd->bkc", v, table).max(1), rtol=1e-5)


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_distill_loss_is_eq11(temperature):
    model = _model(temperature=temperature, phase="distill")
    x = _batch()
    out = model(x)
    v = keras.ops.convert_to_numpy(out["interests"])
    z = keras.ops.convert_to_numpy(out["intent_logits"])
    table = model.item_embedding.embeddings.numpy()
    user = np.einsum("bk,bkd->bd", _np_softmax(z), v)  # Eq. 4
    rec = _np_rec(user, table, x["target"]).mean()
    p = _np_softmax(_np_cos(v, table[x["target"]]) / temperature)
    distill = -(p * np.log(_np_softmax(z / temperature))).sum(-1).mean()
    loss = model.compute_loss(x, y_pred=out)
    assert float(loss) == pytest.approx(rec + temperature**2 * distill, rel=1e-5)
    assert float(model.loss_distill_tracker.result()) == pytest.approx(distill, rel=1e-5)
    scores = keras.ops.convert_to_numpy(model.query_scores(x["history"]))
    np.testing.assert_allclose(scores, user @ table.T, rtol=1e-4, atol=1e-5)


def test_without_distillation_the_loss_is_l_rec_of_the_mixed_interest():
    model = _model(phase="distill", use_distillation=False)
    x = _batch()
    out = model(x)
    terms = model.compute_terms(out, x["target"])
    loss = model.compute_loss(x, y_pred=out)
    assert float(loss) == pytest.approx(float(np.mean(terms["loss_rec"])), rel=1e-6)
    assert float(model.loss_distill_tracker.result()) > 0  # still logged


@pytest.mark.parametrize("stop_gradient", [True, False])
def test_distillation_gradient_reaches_the_extractor_only_without_stop_gradient(stop_gradient):
    model = _model(phase="distill", stop_gradient=stop_gradient)
    x = _batch()
    with tf.GradientTape() as tape:
        out = model(x)
        distill = tf.reduce_mean(model.compute_terms(out, x["target"])["loss_distill"])
    extractor = model.extractor.trainable_weights
    grads = tape.gradient(distill, extractor + model.predictor.trainable_weights)
    for grad in grads[: len(extractor)]:
        assert (grad is not None) == (not stop_gradient)
    assert all(g is not None for g in grads[len(extractor) :])


@pytest.mark.filterwarnings("ignore:Gradients do not exist")  # phase 1 leaves the predictor be
def test_training_lowers_the_loss_in_both_phases():
    model = _model(temperature=0.5)
    x = _batch()
    ds = tf.data.Dataset.from_tensors(x).repeat(10)
    for phase in ("pretrain", "distill"):
        model.set_phase(phase)
        # Eager: ten steps do not repay a graph compilation.
        model.compile(optimizer=keras.optimizers.Adam(0.05), run_eagerly=True)
        before = float(model.compute_loss(x))
        logs = model.fit(ds, epochs=1, verbose=0).history
        assert float(model.compute_loss(x)) < before
        assert "loss_rec" in logs
        assert ("loss_distill" in logs) == (phase == "distill")


def test_candidates_exclude_source_items():
    model = TiMiRec(NUM_ITEMS, embedding_dim=4, num_interests=2, num_candidates=6)
    scores = model.query_scores(np.array([[1, 9, 11, 0]], "int32"))
    assert tuple(scores.shape) == (1, 6)


def test_config_round_trip_and_save_load(tmp_path):
    model = _model(temperature=0.3, phase="distill", stop_gradient=False, num_candidates=10)
    clone = TiMiRec.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    path = tmp_path / "timirec.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.get_config() == model.get_config()
    history = _batch()["history"]
    np.testing.assert_allclose(
        restored.query_scores(history), model.query_scores(history), rtol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"num_items": 1}, "num_items"),
        ({"num_candidates": 20}, "num_candidates"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": "1"}, "temperature"),
        ({"phase": "finetune"}, "phase"),
        ({"stop_gradient": 1}, "stop_gradient"),
        ({"use_distillation": None}, "use_distillation"),
        ({"num_interests": 0}, "num_interests"),
        ({"embedding_dim": 0}, "embedding_dim"),
    ],
)
def test_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        TiMiRec(**({"num_items": NUM_ITEMS} | kwargs))


def test_set_phase_rejects_unknown_phase():
    with pytest.raises(ValueError, match="`phase`"):
        _model().set_phase("joint")
