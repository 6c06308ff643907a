"""End-to-end learning checks of the SITN models on the planted-signal data.

They live here, not beside the models, because the planted-data generator is
tooling (`sitn_tools.studies.planted`), which the library's own tests do not
import.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from sitn_tf import ops as sitn_ops
from sitn_tf.models._testing import tiny_config
from sitn_tf.models.din import DIN
from sitn_tf.models.pretrainer import SITNPretrainer
from sitn_tf.models.ranker import SITNRanker
from sitn_tools.studies.planted import make_planted_data


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_stage_1_lowers_loss_and_aligns_domains_on_planted_data():
    data = make_planted_data(
        num_users=1200,
        num_topics=8,
        items_per_topic=10,
        max_seq_len=8,
        cold_fraction=0.2,
        labeled_fraction=0.5,
        test_fraction=0.25,
        seed=1,
    )
    config = tiny_config(
        num_source_items=data.num_source_items,
        num_target_items=data.num_target_items,
        num_categories=0,
        embedding_dim=16,
        max_seq_len=8,
        granularities=(4, 8),
        top_k=2,
        temperature=0.1,
    )
    keras.utils.set_random_seed(1)
    model = SITNPretrainer(config)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = model.evaluate(data.test_pairs, batch_size=300, verbose=0, return_dict=True)
    dataset = (
        tf.data.Dataset.from_tensor_slices(data.pairs).shuffle(2000, seed=1).repeat().batch(64)
    )
    model.fit(dataset, steps_per_epoch=200, epochs=1, verbose=0)
    after = model.evaluate(data.test_pairs, batch_size=300, verbose=0, return_dict=True)
    assert after["loss"] < 0.8 * before["loss"], (before, after)
    assert after["loss_i2i"] < before["loss_i2i"]
    # Held-out users: the nearest target instance to a source instance
    # mostly belongs to a user with the same planted topic (chance: 1/8).
    out = model(data.test_pairs)
    both = _np(out["source_valid"]) & _np(out["target_valid"])
    scores = _np(
        sitn_ops.similarity_matrix(out["source_instance"], out["target_instance"], "cosine")
    )
    scores = scores[both][:, both]
    np.fill_diagonal(scores, -np.inf)
    topics = data.user_topics[-len(both) :][both]
    assert np.mean(topics[scores.argmax(1)] == topics) > 0.5


def test_planted_signal_sitn_beats_chance_and_transfers_to_cold_users():
    data = make_planted_data(
        num_users=1600,
        num_topics=8,
        items_per_topic=10,
        max_seq_len=8,
        purity=0.8,
        cold_fraction=0.3,
        labeled_fraction=0.5,
        test_fraction=0.25,
        seed=2,
    )
    config = tiny_config(
        num_source_items=data.num_source_items,
        num_target_items=data.num_target_items,
        num_categories=data.num_categories,
        embedding_dim=16,
        max_seq_len=8,
        granularities=(4, 8),
        top_k=2,
        attention_units=(16,),
        mlp_units=(16,),
    )
    keras.utils.set_random_seed(2)
    pretrainer = SITNPretrainer(config)
    pretrainer.compile(optimizer=keras.optimizers.Adam(3e-3))
    pairs = tf.data.Dataset.from_tensor_slices(data.pairs).shuffle(2000, seed=2).repeat().batch(64)
    pretrainer.fit(pairs, steps_per_epoch=60, epochs=1, verbose=0)

    x_test, y_test = data.test
    cold = data.test_cold
    aucs = {}
    for name, model in (("sitn", SITNRanker(config)), ("din", DIN(config))):
        if name == "sitn":
            model.load_pretrained(pretrainer)
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
        model.fit(*data.train, batch_size=64, epochs=3, verbose=0)
        scores = model.predict(x_test, batch_size=1024, verbose=0)
        aucs[name] = (roc_auc_score(y_test, scores), roc_auc_score(y_test[cold], scores[cold]))
    assert aucs["sitn"][0] > 0.8, aucs
    # Without target history only the source domain can tell the topic.
    assert aucs["sitn"][1] > 0.8, aucs
    assert aucs["din"][1] < 0.6, aucs
    assert aucs["din"][0] > 0.6, aucs
