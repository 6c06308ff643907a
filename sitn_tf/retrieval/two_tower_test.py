from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from sitn_tf.retrieval import export, item_features, mutual_information
from sitn_tf.retrieval import two_tower_losses as tl
from sitn_tf.retrieval.data import synthetic
from sitn_tf.retrieval.two_tower import TwoTowerRetriever

SEQS = synthetic(num_users=4, num_clusters=3, items_per_cluster=5, seed=0)  # 16 ids
FEATURES = item_features.synthetic_item_features(SEQS.item_cluster, seed=0)
_, MI = mutual_information.mutual_information(FEATURES.table(), normalized=True)
GROUPS = mutual_information.correlated_groups(MI)
BATCH = {
    "history": np.array([[1, 2, 0], [6, 7, 8], [11, 0, 0], [3, 4, 5]], "int32"),
    "target": np.array([3, 9, 12, 3], "int32"),  # rows 0 and 3: an accidental hit
}
LOG_Q = tl.item_log_probabilities(np.array([3, 3, 9, 12, 1, 2]), SEQS.num_candidates)


def _model(**kwargs):
    keras.utils.set_random_seed(0)
    settings = dict(
        num_items=SEQS.num_items,
        embedding_dim=4,
        feature_dim=3,
        hidden_units=(5,),
        feature_vocab=FEATURES.vocab,
        max_tags=3,
        item_features=FEATURES,
        item_log_q=LOG_Q,
        ssl_batch_size=6,
    )
    return TwoTowerRetriever(**(settings | kwargs))


def test_towers_and_the_main_loss_against_numpy():
    model = _model(temperature=0.2)
    assert model.features == ["id", "category", "brand", "price_bucket", "tags"]
    q = keras.ops.convert_to_numpy(model.query_tower(BATCH["history"]))
    x = keras.ops.convert_to_numpy(model.item_tower(BATCH["target"]))
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    # Item tower by hand: embeddings of the item's features, tags averaged.
    item = 9
    tags = [t for t in FEATURES.tags[item] if t]
    parts = [model.feature_embeddings["id"].embeddings.numpy()[item]]
    for name in ("category", "brand", "price_bucket"):
        parts.append(
            model.feature_embeddings[name].embeddings.numpy()[FEATURES.columns[name][item]]
        )
    parts.append(model.feature_embeddings["tags"].embeddings.numpy()[tags].mean(0))
    hidden = keras.ops.convert_to_numpy(model.item_mlp(np.concatenate(parts)[None]))[0]
    np.testing.assert_allclose(x[1], hidden / np.linalg.norm(hidden), rtol=1e-4, atol=1e-6)
    # Scores: q^T x over every candidate.
    scores = keras.ops.convert_to_numpy(model.query_scores(BATCH["history"]))
    assert scores.shape == (4, SEQS.num_candidates)
    np.testing.assert_allclose(scores[:, BATCH["target"]], q @ x.T, rtol=1e-4, atol=1e-6)
    # Main loss: logQ-corrected in-batch softmax, accidental hit 0 <-> 3 masked.
    logits = q @ x.T / 0.2 - LOG_Q[BATCH["target"]][None, :]
    expected = []
    for i in range(4):
        keep = [j for j in range(4) if j == i or BATCH["target"][j] != BATCH["target"][i]]
        row = logits[i, keep]
        expected.append(np.log(np.exp(row - row.max()).sum()) + row.max() - logits[i, i])
    loss = float(model.compute_loss(BATCH, training=False))
    assert loss == pytest.approx(np.mean(expected), rel=1e-4)


@pytest.mark.parametrize(
    "kwargs,logged",
    [
        # FD and SO together: one compiled model less (the test's cost is tracing).
        ({"spread_out_weight": 0.5, "feature_dropout": 0.5}, {"loss_retrieval", "loss_spread_out"}),
        ({"masking": "rfm", "ssl_weight": 0.3}, {"loss_retrieval", "loss_ssl"}),
        (
            {"masking": "cfm", "feature_groups": GROUPS, "ssl_weight": 0.3, "view_dropout": 0.2},
            {"loss_retrieval", "loss_ssl"},
        ),
    ],
)
def test_variants_train_and_log_each_term(kwargs, logged):
    model = _model(**kwargs)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    terms = model.compute_terms(model(BATCH), BATCH["target"])
    assert set(terms) == logged
    history = model.fit(
        tf.data.Dataset.from_tensor_slices(BATCH).batch(4), epochs=1, verbose=0
    ).history
    assert logged <= set(history) and "loss" in history
    assert all(np.isfinite(v).all() for v in history.values())


def test_ssl_views_are_the_masked_features_through_the_same_tower():
    model = _model(masking="cfm", feature_groups=GROUPS, ssl_weight=1.0)
    ids = np.array([1, 5, 9], "int32")
    features = keras.ops.convert_to_numpy(model.item_feature_embeddings(ids))
    first, second = model.masker.masks(3)
    a = model.item_tower_from_features(model.masker.apply(features, first))
    b = model.item_tower_from_features(model.masker.apply(features, second))
    # Unmasked, the view is the plain item tower; the two views differ.
    np.testing.assert_allclose(
        model.item_tower_from_features(features), model.item_tower(ids), rtol=1e-5
    )
    assert not np.allclose(a, b)


def test_config_round_trip_and_save_load(tmp_path):
    model = _model(masking="cfm", feature_groups=GROUPS, mutual_information=MI, ssl_weight=0.5)
    clone = TwoTowerRetriever.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.get_config()["feature_groups"] == GROUPS.tolist()
    path = tmp_path / "two_tower.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    # The feature tables and log q are weights: restored without the constructor arrays.
    np.testing.assert_array_equal(restored.tag_table.numpy(), model.tag_table.numpy())
    np.testing.assert_allclose(restored.item_log_q.numpy(), LOG_Q)
    np.testing.assert_allclose(
        restored.query_scores(BATCH["history"]), model.query_scores(BATCH["history"]), rtol=1e-5
    )
    np.testing.assert_allclose(restored.get_config()["mutual_information"], MI)


def test_export_reload_and_retrieve(tmp_path):
    model = _model()
    path = export.export_retriever(model, tmp_path / "retriever", k=3)
    served = tf.saved_model.load(path).signatures[export.SIGNATURE]
    out = served(
        history=tf.constant([[1, 2, 7], [4, 0, 0]], tf.int64),
        history_length=tf.constant([2, 1], tf.int64),
    )
    for row, real in enumerate(([1, 2], [4])):
        scores = keras.ops.convert_to_numpy(model.query_scores(np.array([real], "int32")))[0]
        allowed = [j for j in range(1, SEQS.num_candidates) if j not in real]
        best = sorted(allowed, key=lambda j: -scores[j])[:3]
        np.testing.assert_array_equal(out["item_ids"].numpy()[row], best)


def test_id_only_model_for_sets_without_metadata():
    model = TwoTowerRetriever(10, num_candidates=7, embedding_dim=4, spread_out_weight=0.1)
    assert model.features == ["id"] and model.masker is None
    assert tuple(model.query_scores(np.array([[8, 1]], "int32")).shape) == (1, 7)


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"num_items": 1}, "num_items"),
        ({"num_items": 5, "num_candidates": 6}, "num_candidates"),
        ({"num_items": 5, "temperature": 0.0}, "temperature"),
        ({"num_items": 5, "ssl_weight": -1.0}, "ssl_weight"),
        ({"num_items": 5, "feature_dropout": 1.0}, "feature_dropout"),
        ({"num_items": 5, "masking": "random"}, "masking"),
        ({"num_items": 5, "masking": "rfm"}, "masking"),  # id only: nothing to split
        ({"num_items": 5, "feature_vocab": {"colour": 3}}, "feature_vocab"),
        ({"num_items": 5, "feature_vocab": {"brand": 3}, "masking": "cfm"}, "feature_groups"),
        ({"num_items": 5, "item_log_q": np.zeros(3)}, "item_log_q"),
    ],
)
def test_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        TwoTowerRetriever(**kwargs)


def test_item_features_must_fit_the_tables():
    with pytest.raises(ValueError, match="`max_tags`"):
        _model(max_tags=1)  # items have up to 3 tags
    with pytest.raises(ValueError, match="`feature_vocab` of 'brand'"):
        _model(feature_vocab=FEATURES.vocab | {"brand": 3})
