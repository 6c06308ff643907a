from __future__ import annotations

import numpy as np
import pytest

from sitn_tf.retrieval import metrics


def test_hand_ranked_list():
    # Item ids 0..6 (0 = padding). Scores, best first: 3 (0.9), 5 (0.8), 1 (0.7), 6 (0.4), 2, 4.
    scores = np.array([[9.0, 0.7, 0.2, 0.9, 0.1, 0.8, 0.4]])
    masked = metrics.mask_history(scores, np.zeros((1, 2), int), np.array([1]))
    # Target 1 is third: rank 2.
    ranks = metrics.target_ranks(masked, np.array([1]))
    assert ranks.tolist() == [2]
    assert metrics.hit_rate(ranks, 2) == 0.0 and metrics.hit_rate(ranks, 3) == 1.0
    assert metrics.ndcg(ranks, 3) == pytest.approx(1.0 / np.log2(4.0))
    assert metrics.ndcg(ranks, 2) == 0.0


def test_history_is_masked_but_not_the_target_and_padding_never_ranks():
    scores = np.array([[100.0, 0.7, 0.2, 0.9, 0.1, 0.8, 0.4]])
    # History holds 3 and 5 (both above the target 1) and the target itself.
    histories = np.array([[3, 5, 1, 0]])
    masked = metrics.mask_history(scores, histories, np.array([1]))
    assert np.isneginf(masked[0, [0, 3, 5]]).all()
    assert masked[0, 1] == 0.7
    assert metrics.target_ranks(masked, np.array([1])).tolist() == [0]


def test_ids_beyond_the_corpus_in_history_are_ignored():
    scores = np.zeros((1, 4))
    masked = metrics.mask_history(scores, np.array([[7, 2]]), np.array([1]))
    assert np.isneginf(masked[0, [0, 2]]).all() and np.isfinite(masked[0, [1, 3]]).all()


def test_ties_count_against_the_target():
    scores = np.array([[0.0, 1.0, 1.0, 1.0, 0.5]])
    ranks = metrics.target_ranks(metrics.mask_history(scores, np.zeros((1, 1), int), [2]), [2])
    assert ranks.tolist() == [2]  # items 1 and 3 tie with it


def test_summary_against_an_independent_formula():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, 30))
    targets = rng.integers(1, 30, size=50)
    histories = rng.integers(0, 30, size=(50, 5))
    ranks = metrics.target_ranks(metrics.mask_history(scores, histories, targets), targets)
    expected = []
    for row, target, history in zip(scores, targets, histories, strict=True):
        allowed = [j for j in range(1, 30) if j == target or j not in set(history.tolist())]
        order = sorted(allowed, key=lambda j: -row[j])
        expected.append(order.index(target))
    np.testing.assert_array_equal(ranks, expected)
    summary = metrics.summarize(ranks)
    expected = np.array(expected)
    for k in metrics.CUTOFFS:
        assert summary[f"hr@{k}"] == pytest.approx(np.mean(expected < k))
        gains = [1 / np.log2(r + 2) if r < k else 0.0 for r in expected]
        assert summary[f"ndcg@{k}"] == pytest.approx(np.mean(gains))


def test_recall_with_several_targets():
    top = np.array([[4, 2, 9, 1], [3, 5, 6, 7]])
    assert metrics.recall_at_k(top, [{2, 1, 8}, {7}], 2) == pytest.approx((1 / 3 + 0) / 2)
    assert metrics.recall_at_k(top, [{2, 1, 8}, set()], 4) == pytest.approx(2 / 3)


def test_masked_target_is_an_error():
    scores = np.array([[0.0, 1.0, 2.0]])
    scores[0, 1] = -np.inf
    with pytest.raises(ValueError, match="non-finite"):
        metrics.target_ranks(scores, np.array([1]))


def test_head_items_are_the_top_share_by_training_clicks():
    # Clicks: id 3 x3, id 1 x2, ids 2 and 5 x1 (tie: lower id first), id 4 never.
    head = metrics.head_items(np.array([3, 3, 3, 1, 1, 5, 2]), num_candidates=6, share=0.4)
    assert np.flatnonzero(head).tolist() == [1, 3]
    with pytest.raises(ValueError, match="`share`"):
        metrics.head_items(np.array([1]), 3, share=1.0)


def test_sliced_recall_by_hand():
    head = np.array([False, True, False, False])
    ranks = np.array([0, 12, 60, 5])
    targets = np.array([1, 1, 2, 3])  # two head queries, two tail queries
    out = metrics.sliced_recall(ranks, targets, head, cutoffs=(10, 50))
    assert out["recall@10"] == 0.5 and out["recall@50"] == 0.75
    assert out["recall@10_head"] == 0.5 and out["recall@50_head"] == 1.0
    assert out["recall@10_tail"] == 0.5 and out["recall@50_tail"] == 0.5
    assert (out["queries_head"], out["queries_tail"]) == (2, 2)


@pytest.mark.parametrize("batch_size", [1, 512])
def test_popularity_ranks_by_hand_in_any_batch_size(batch_size):
    # Corpus 1..13: item k has 12 - k train clicks (k <= 11); items 12, 13 none.
    train_targets = np.concatenate([np.full(12 - k, k) for k in range(1, 12)])
    # Query 0 clicked item 1 (masked): items 2..10 above its target 11, rank 9.
    # Query 1: items 1..11 above item 12, and item 13's tie counts: rank 12.
    ranks = metrics.popularity_ranks(
        train_targets, np.array([[1], [0]]), np.array([11, 12]), 14, batch_size=batch_size
    )
    np.testing.assert_array_equal(ranks, [9, 12])
