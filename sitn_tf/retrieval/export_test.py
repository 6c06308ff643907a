from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from sitn_tf.retrieval import export
from sitn_tf.retrieval.timirec import TiMiRec


def test_saved_retrieve_signature_matches_numpy_top_k(tmp_path):
    keras.utils.set_random_seed(0)
    model = TiMiRec(15, embedding_dim=4, num_interests=2, phase="distill", num_candidates=11)
    path = export.export_retriever(model, tmp_path / "retriever", k=4)
    served = tf.saved_model.load(path).signatures[export.SIGNATURE]
    # Row 1 holds junk beyond its length (must be ignored) and a source-domain id (13).
    history = np.array([[3, 5, 13, 0], [7, 2, 9, 9]], "int64")
    length = np.array([3, 1], "int64")
    out = served(history=tf.constant(history), history_length=tf.constant(length))
    assert out["item_ids"].dtype == tf.int64 and out["scores"].shape == (2, 4)

    for row, (ids, n) in enumerate(zip(history, length, strict=True)):
        real = ids[:n]
        scores = keras.ops.convert_to_numpy(model.query_scores(real[None].astype("int32")))[0]
        allowed = [j for j in range(1, 11) if j not in set(real.tolist())]
        best = sorted(allowed, key=lambda j: -scores[j])[:4]
        np.testing.assert_array_equal(out["item_ids"].numpy()[row], best)
        np.testing.assert_allclose(out["scores"].numpy()[row], scores[best], rtol=1e-5)


def test_without_history_mask_history_items_can_return():
    keras.utils.set_random_seed(1)
    model = TiMiRec(8, embedding_dim=3, num_interests=2)
    module = export.RetrieveModule(model, k=7, mask_history=False)
    out = module.retrieve(tf.constant([[1, 2]], tf.int64), tf.constant([2], tf.int64))
    assert sorted(out["item_ids"].numpy()[0].tolist()) == list(range(1, 8))


def test_bad_arguments():
    with pytest.raises(ValueError, match="`k`"):
        export.RetrieveModule(TiMiRec(5, embedding_dim=2, num_interests=1), k=0)
    with pytest.raises(ValueError, match="`retriever`"):
        export.RetrieveModule(object())
