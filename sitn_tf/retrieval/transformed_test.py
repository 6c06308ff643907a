from __future__ import annotations

import json

import numpy as np

from sitn_tf import features as F
from sitn_tf.retrieval import mutual_information as mi
from sitn_tf.retrieval.data import Split
from sitn_tf.retrieval.transformed import (
    MUTUAL_INFORMATION_FILE,
    Corpus,
    beam_mutual_information,
    item_features,
    popularity_metrics,
)

# Target vocabulary of 5 items (ids 1..5, OOV id 6), so C = 6; source
# vocabulary of 3 items (ids 1..3, OOV 4).
COLUMNS = {
    F.LABEL: np.array([1, 0, 1, 1, 1, 0]),
    F.ITEM_ID: np.array([2, 4, 6, 5, 1, 3]),
    F.TARGET_ITEM_IDS: np.array([[1, 0, 0], [1, 0, 0], [2, 3, 0], [6, 2, 0], [0, 0, 0], [0, 0, 0]]),
    F.SOURCE_ITEM_IDS: np.array([[1, 4, 0], [1, 4, 0], [3, 0, 0], [2, 2, 0], [0, 0, 0], [1, 0, 0]]),
}


def test_queries_are_the_clicks_on_corpus_items_with_oov_ids_dropped():
    split, counts = Corpus(num_candidates=6, num_items=6, history="target").queries(COLUMNS)
    # Row 2 clicked the OOV id 6: not a query, counted. Row 3's OOV history id goes.
    np.testing.assert_array_equal(split.targets, [2, 5, 1])
    np.testing.assert_array_equal(split.histories, [[1, 0, 0], [0, 2, 0], [0, 0, 0]])
    assert counts == {"queries": 3, "unknown_targets": 1, "negatives": 2}


def test_both_histories_move_source_ids_past_the_corpus():
    # num_items = C + 3 source vocabulary ids: source id s -> 5 + s; OOV (4) dropped.
    split, _ = Corpus(num_candidates=6, num_items=9, history="both").queries(COLUMNS)
    np.testing.assert_array_equal(
        split.histories,
        [[1, 0, 0, 6, 0, 0], [0, 2, 0, 7, 7, 0], [0, 0, 0, 0, 0, 0]],
    )


def test_item_features_take_each_candidates_first_row_negatives_included():
    columns = {
        F.ITEM_ID: np.array([2, 4, 2, 6, 1]),
        F.ITEM_CATEGORY: np.array([3, 4, 9, 5, 2]),
        F.ITEM_BRAND: np.array([1, 2, 7, 3, 1]),
        F.ITEM_PRICE_BUCKET: np.array([4, 4, 1, 2, 4]),  # one value over the corpus rows
        F.ITEM_TAGS: np.array([[1, 2], [3, 0], [5, 5], [4, 0], [0, 0]]),
    }
    vocab = {"category": 10, "brand": 8, "price_bucket": 6, "tags": 6}
    features, counts = item_features(columns, num_candidates=6, vocab=vocab)
    # Ids 3 and 5 never were a candidate; id 6 is OOV, outside the corpus.
    assert counts == {"candidates_without_features": 2, "uninformative_price_bucket": 1}
    np.testing.assert_array_equal(features.columns["category"], [0, 2, 3, 0, 4, 0])
    np.testing.assert_array_equal(features.columns["brand"], [0, 1, 1, 0, 2, 0])
    np.testing.assert_array_equal(features.columns["price_bucket"], np.zeros(6))
    np.testing.assert_array_equal(features.tags, [[0, 0], [0, 0], [1, 2], [0, 0], [3, 0], [0, 0]])
    assert features.vocab == {"category": 10, "brand": 8, "tags": 6}


def test_beam_mutual_information_equals_numpy_and_is_written(tmp_path):
    table = {
        "id": [1, 2, 3, 4, 5, 6],
        "category": [1, 1, 1, 2, 2, 2],
        "brand": [1, 1, 2, 3, 3, 4],  # determines category
        "tags": [[1], [1, 2], [2], [3], [3], [4, 3]],
    }
    path = tmp_path / "assets" / MUTUAL_INFORMATION_FILE
    names, matrix = beam_mutual_information(table, str(path))
    expected_names, expected = mi.mutual_information(table, normalized=True)
    assert names == expected_names
    np.testing.assert_allclose(matrix, expected, atol=1e-12)
    written = json.loads(path.read_text())
    assert written["names"] == names
    np.testing.assert_allclose(written["normalized_mutual_information"], expected, atol=1e-12)


def test_popularity_baseline_by_hand():
    # Corpus 1..13: item k has 12 - k train clicks (k <= 11); items 12, 13 none.
    targets = np.concatenate([np.full(12 - k, k) for k in range(1, 12)])
    train = Split(np.zeros((len(targets), 1), np.int32), targets)
    # Query 0 clicked item 1 before (masked): items 2..10 rank above item 11,
    # rank 9. Query 1: items 1..11 above item 12 and item 13's tie counts, rank 12.
    split = Split(np.array([[1], [0]]), np.array([11, 12]))
    head = np.zeros(14, bool)
    head[1] = True
    out = popularity_metrics(train, split, num_candidates=14, head=head)
    assert out["recall@10"] == 0.5 and out["recall@50"] == 1.0
    assert out["queries_head"] == 0 and out["recall@10_tail"] == 0.5
