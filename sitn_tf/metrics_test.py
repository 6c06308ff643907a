import numpy as np
import pytest

from sitn_tf import metrics


def _pairwise_auc(labels, scores):
    """Independent definition: P(score_pos > score_neg) + 0.5 P(tie), over all pairs."""
    pos = scores[labels == 1]
    neg = scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def test_auc_hand_case():
    # Pairs (pos, neg): (0.8,0.3) win, (0.8,0.9) loss, (0.4,0.3) win, (0.4,0.9) loss -> 0.5.
    assert metrics.auc(np.array([1, 0, 1, 0]), np.array([0.8, 0.3, 0.4, 0.9])) == 0.5
    assert metrics.auc(np.array([1, 0]), np.array([0.7, 0.7])) == 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_pairwise_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300), 1)  # many ties
    assert metrics.auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores), abs=1e-12)


def test_auc_one_class_is_nan():
    assert np.isnan(metrics.auc(np.array([1, 1]), np.array([0.1, 0.2])))


def test_logloss_hand_and_clipping():
    expected = -(np.log(0.8) + np.log(1 - 0.4)) / 2
    assert metrics.logloss(np.array([1, 0]), np.array([0.8, 0.4])) == pytest.approx(expected)
    assert np.isfinite(metrics.logloss(np.array([1, 0]), np.array([0.0, 1.0])))


def test_gauc_weights_users_by_instances_and_skips_one_class_users():
    labels = np.array([1, 0, 0, 1, 0, 1, 1])
    scores = np.array([0.9, 0.1, 0.2, 0.1, 0.5, 0.3, 0.4])
    users = np.array(["a", "a", "a", "b", "b", "c", "c"])
    # a: AUC 1.0 over 3 instances; b: AUC 0.0 over 2; c: only positives -> skipped.
    value, counted = metrics.gauc(labels, scores, users)
    assert counted == 2
    assert value == pytest.approx((1.0 * 3 + 0.0 * 2) / 5)


def test_gauc_shape_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.gauc(np.array([1, 0]), np.array([0.1]), np.array(["a", "a"]))


def test_all_metrics_keys():
    out = metrics.all_metrics(np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.6, 0.4]), list("aabb"))
    assert out["auc"] == 1.0 and out["gauc"] == 1.0 and out["gauc_users"] == 2
    assert out["examples"] == 4 and out["mean_label"] == 0.5


def _weighted_user_auc(labels, scores, users):
    """Independent GAUC: pairwise AUC per user, weighted by the user's rows; one-class users out."""
    total, weight = 0.0, 0
    for user in sorted(set(users.tolist())):
        mask = users == user
        if len(set(labels[mask].tolist())) < 2:
            continue
        total += _pairwise_auc(labels[mask], scores[mask]) * mask.sum()
        weight += mask.sum()
    return total / weight


@pytest.mark.parametrize("seed", [0, 1])
def test_score_metrics_match_pairwise_formulas_and_have_no_logloss(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    scores = rng.integers(0, 5, 200).astype(float)  # counts, not probabilities; many ties
    users = rng.integers(0, 12, 200)
    out = metrics.score_metrics(labels, scores, users)
    assert set(out) == {"auc", "gauc", "gauc_users", "examples", "mean_label"}
    assert out["auc"] == pytest.approx(_pairwise_auc(labels, scores), abs=1e-12)
    assert out["gauc"] == pytest.approx(_weighted_user_auc(labels, scores, users), abs=1e-12)
    assert out["examples"] == 200 and out["mean_label"] == pytest.approx(labels.mean())


def test_all_metrics_adds_logloss_and_mean_prediction_to_score_metrics():
    labels, scores, users = np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.6, 0.4]), list("aabb")
    out = metrics.all_metrics(labels, scores, users)
    ranking = metrics.score_metrics(labels, scores, users)
    assert {k: out[k] for k in ranking} == ranking
    assert out["logloss"] == metrics.logloss(labels, scores)
    assert out["mean_prediction"] == pytest.approx(0.525)
