"""Simple baselines and row metrics on hand cases and against an independent reference."""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict

import numpy as np
import pytest

from sitn_tools.experiment import baselines

# Train split. Target clicks (clicked candidates + target histories):
#   u1 {A, B}, u2 {A, C}, u3 {B}; D only as a negative, so never clicked.
# Source histories: u1 {s1, s2}, u2 {s1}, u3 {s2}.
TRAIN = [
    ("u1", "A", 1, [], ["s1"]),
    ("u1", "D", 0, [], ["s1"]),
    ("u1", "B", 1, ["A"], ["s1", "s2"]),
    ("u2", "C", 1, [], ["s1"]),
    ("u2", "A", 1, ["C"], ["s1"]),
    ("u3", "B", 1, [], ["s2"]),
    ("u3", "C", 0, [], ["s2"]),
]
# Clickers n: A 2, B 2, C 1, D 0. Target cosine c(h, j) = |T_h ∩ T_j| / sqrt(n_h n_j):
#   c(A,B) = 1/2, c(A,C) = 1/sqrt(2), c(B,C) = 0, c(A,A) = 1.
# Source cosine c_s(i, j) = |S_i ∩ T_j| / sqrt(m_i n_j), m(s1) = m(s2) = 2:
#   c_s(s1,A) = 2/2 = 1, c_s(s1,B) = 1/2, c_s(s1,C) = 1/sqrt(2),
#   c_s(s2,A) = 1/2, c_s(s2,B) = 2/2 = 1, c_s(s2,C) = 0.
TEST = [
    ("u1", "C", 1, ["A", "B"], ["s1", "s2"]),
    ("u1", "D", 0, ["A", "B"], ["s1", "s2"]),
    ("u2", "B", 1, ["A", "C", "A"], ["s1"]),  # A twice: counted once
    ("u2", "E", 0, ["A", "C"], ["s1"]),  # E: new everywhere
    ("u3", "A", 1, ["B"], ["s2", "s3"]),  # s3: never in train
    ("u3", "C", 0, ["B"], ["s2", "s3"]),
    ("u4", "A", 0, [], []),
    ("u4", "F", 1, [], ["s1"]),
    ("u5", "B", 0, ["F", "A"], ["s1", "s1"]),
    ("u5", "A", 1, ["F"], ["s2"]),
]
R2 = 1.0 / math.sqrt(2.0)
# Columns: novelty, popularity = log(1 + n), cocl_target, cocl_source (means over distinct items).
EXPECTED = np.array(
    [
        [0, math.log1p(1), (R2 + 0.0) / 2, (R2 + 0.0) / 2],
        [1, 0, 0, 0],
        [0, math.log1p(2), (0.5 + 0.0) / 2, 0.5],
        [1, 0, 0, 0],
        [0, math.log1p(2), 0.5, (0.5 + 0.0) / 2],
        [0, math.log1p(1), 0.0, (0.0 + 0.0) / 2],
        [0, math.log1p(2), 0, 0],  # empty histories
        [1, 0, 0, 0],
        [0, math.log1p(2), (0.0 + 0.5) / 2, 0.5],
        [0, math.log1p(2), 0.0, 0.5],
    ]
)
# Eval rows: both classes, so the blend can be fitted.
EVAL = [
    ("u1", "C", 1, ["A"], ["s1"]),
    ("u1", "D", 0, ["A"], ["s1"]),
    ("u2", "B", 0, ["A"], ["s2"]),
    ("u2", "G", 1, ["A", "C"], ["s1"]),
    ("u3", "A", 1, ["B"], ["s2"]),
    ("u3", "C", 0, ["B"], ["s2"]),
]


def _dataset(test=TEST, eval_=EVAL, train=TRAIN) -> baselines.Dataset:
    return baselines.dataset_from_rows(train, eval_, test)


def test_train_statistics_and_vocabulary_by_hand():
    dataset = _dataset()
    stats = baselines.train_statistics(dataset)
    names = dataset.target_items.names().tolist()
    clickers = dict(zip(names, stats.target_clickers.tolist(), strict=True))
    assert {k: clickers[k] for k in "ABCD"} == {"A": 2, "B": 2, "C": 1, "D": 0}
    assert set(dataset.target_items.names()[stats.target_clickers > 0]) == {"A", "B", "C"}
    known = baselines.known_candidates(dataset.test, stats)
    assert known.tolist() == [True, False, True, False, True, True, True, False, True, True]


def test_every_feature_on_the_hand_case():
    dataset = _dataset()
    x = baselines.features(dataset.test, baselines.train_statistics(dataset))
    assert x.shape == (10, 4) and x.dtype == np.float64
    np.testing.assert_allclose(x, EXPECTED, rtol=1e-12, atol=0)


def _reference_features(train, test) -> np.ndarray:
    """Independent definition with Python sets: the module docstring's formulas, row by row."""
    clickers, source_users = defaultdict(set), defaultdict(set)
    for user, item, label, target, source in train:
        if label == 1:
            clickers[item].add(user)
        for h in target:
            clickers[h].add(user)
        for i in source:
            source_users[i].add(user)

    def cos(a: set, b: set) -> float:
        return len(a & b) / math.sqrt(len(a) * len(b)) if a and b else 0.0

    out = []
    for _, item, _, target, source in test:
        n = len(clickers[item])
        ct = np.mean([cos(clickers[h], clickers[item]) for h in set(target)]) if target else 0.0
        cs = np.mean([cos(source_users[i], clickers[item]) for i in set(source)]) if source else 0.0
        out.append([float(n == 0), math.log1p(n), ct, cs])
    return np.array(out)


def _random_rows(rng: np.random.Generator, n: int) -> list:
    rows = []
    for _ in range(n):
        target = [f"t{k}" for k in rng.integers(0, 15, rng.integers(0, 6))]
        source = [f"s{k}" for k in rng.integers(0, 20, rng.integers(0, 7))]
        rows.append(
            (
                f"u{rng.integers(0, 20)}",
                f"t{rng.integers(0, 18)}",
                int(rng.integers(0, 2)),
                target,
                source,
            )
        )
    return rows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_features_match_the_set_definition_on_random_data(seed):
    rng = np.random.default_rng(seed)
    train, eval_, test = (_random_rows(rng, n) for n in (120, 40, 60))
    dataset = baselines.dataset_from_rows(train, eval_, test)
    x = baselines.features(dataset.test, baselines.train_statistics(dataset))
    np.testing.assert_allclose(x, _reference_features(train, test), rtol=1e-12, atol=1e-15)


def test_row_metrics_known_candidates_and_history_buckets_by_hand():
    dataset = _dataset()
    stats = baselines.train_statistics(dataset)
    test = dataset.test
    scores = EXPECTED[:, 2]  # cocl_target
    m = baselines.row_metrics(
        test.labels,
        scores,
        test.users,
        baselines.known_candidates(test, stats),
        test.target_history.lengths,
        probabilities=False,
    )
    # Positives 0.354, 0.25, 0.5, 0, 0 against negatives 0, 0, 0, 0, 0.25 (ties count 1/2):
    # 5 + 4.5 + 5 + 2 + 2 = 18.5 of 25 pairs.
    assert m["auc"] == pytest.approx(18.5 / 25)
    assert m["logloss"] is None and m["mean_prediction"] is None
    # Known rows (candidates A, B, C): positives 0.354, 0.25, 0.5, 0 against 0, 0, 0.25:
    # 3 + 2.5 + 3 + 1 = 9.5 of 12.
    assert m["known_auc"] == pytest.approx(9.5 / 12) and m["known_examples"] == 7
    # Per user on known rows: u3 (0.5 pos, 0 neg) AUC 1, u5 (0 pos, 0.25 neg) AUC 0, two
    # rows each; u1, u2, u4 have one known row each (one class), left out.
    assert m["known_gauc"] == pytest.approx(0.5)
    # Raw history lengths 2, 2, 3, 2, 1, 1, 0, 0, 2, 1 (duplicates count).
    assert m["by_history_length"] == {
        "0": {"auc": 0.5, "examples": 2, "positives": 1},
        "1-2": {"auc": pytest.approx(9.5 / 12), "examples": 7, "positives": 3},
        "3-5": {"auc": None, "examples": 1, "positives": 1},
        "6+": {"auc": None, "examples": 0, "positives": 0},
    }


def test_history_buckets_edges():
    lengths = np.array([0, 1, 2, 3, 5, 6, 50])
    assert baselines.history_buckets(lengths).tolist() == [0, 1, 1, 2, 2, 3, 3]


def test_evaluate_has_every_baseline_and_logloss_only_for_the_blend():
    result = baselines.evaluate(_dataset())
    # No candidate statistics in these rows: the two baselines that need them are left out.
    assert list(result) == [
        b for b in baselines.BASELINES if b not in baselines.STATISTICS_BASELINES
    ]
    for name, entry in result.items():
        m = entry["metrics"]
        assert (m["logloss"] is not None) == (name == "blend") == entry["probability"]
        assert {"auc", "gauc", "known_auc", "known_gauc", "by_history_length"} <= set(m)
    # Novelty: 1 of 5 positives and 2 of 5 negatives are new. The new positive beats 3
    # negatives and ties 2 (4 pairs); each other positive ties 3 and loses 2 (1.5): 10 of 25.
    assert result["novelty"]["metrics"]["auc"] == pytest.approx(10 / 25)
    assert result["cocl_target"]["metrics"]["auc"] == pytest.approx(18.5 / 25)
    fit = result["blend"]["fit"]
    assert fit["fitted_on"] == "eval" and len(fit["coefficients"]) == 4
    assert json.loads(json.dumps(result)) == result


def test_blend_is_fitted_on_eval_only():
    dataset = _dataset()
    stats = baselines.train_statistics(dataset)
    scores, blends = baselines.score(dataset, stats)
    blend = blends["blend"]
    flipped = [(u, i, 1 - y, t, s) for u, i, y, t, s in TEST]
    other_scores, other_blends = baselines.score(_dataset(test=flipped))
    assert other_blends["blend"].describe() == blend.describe()
    np.testing.assert_array_equal(other_scores["blend"], scores["blend"])
    # The same as fitting on the eval rows' features by hand.
    direct = baselines.fit_blend(baselines.features(dataset.eval, stats), dataset.eval.labels)
    assert direct.describe() == blend.describe()
    assert np.all((scores["blend"] > 0) & (scores["blend"] < 1))
    # Changing eval labels does change it.
    changed = [(u, i, 1 - y, t, s) for u, i, y, t, s in EVAL]
    assert baselines.score(_dataset(eval_=changed))[1]["blend"].describe() != blend.describe()


def test_fit_blend_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        baselines.fit_blend(np.zeros((3, 4)), np.array([1, 1, 1]))


def test_deterministic():
    first = json.dumps(baselines.evaluate(_dataset()), sort_keys=True)
    assert json.dumps(baselines.evaluate(_dataset()), sort_keys=True) == first


def test_row_slices_check_order():
    dataset = _dataset()
    slices = baselines.row_slices(dataset, baselines.train_statistics(dataset))
    assert slices.items.tolist() == [row[1] for row in TEST]
    assert slices.history_lengths.tolist() == [2, 2, 3, 2, 1, 1, 0, 0, 2, 1]
    slices.check(np.array([r[2] for r in TEST]), np.array([r[1] for r in TEST], dtype=object))
    with pytest.raises(ValueError, match="not the test split's rows"):
        slices.check(np.array([r[2] for r in TEST])[::-1])


def _write_split(folder, rows, files: int) -> None:
    import tensorflow as tf

    os.makedirs(folder)
    chunks = np.array_split(np.arange(len(rows)), files)
    for k, chunk in enumerate(chunks):
        path = os.path.join(folder, f"part-{k:05d}-of-{files:05d}.tfrecord.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for index in chunk:
                user, item, label, target, source = rows[index]

                def strings(values):
                    return tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[v.encode() for v in values])
                    )

                example = tf.train.Example(
                    features=tf.train.Features(
                        feature={
                            "user_id": strings([user]),
                            "item_id": strings([item]),
                            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                            "target_item_ids": strings(target),
                            "source_item_ids": strings(source),
                        }
                    )
                )
                writer.write(example.SerializeToString())


def test_read_dataset_and_command_end_to_end(tmp_path, capsys):
    for split, rows, files in (("train", TRAIN, 2), ("eval", EVAL, 1), ("test", TEST, 3)):
        _write_split(str(tmp_path / split), rows, files)
    dataset = baselines.read_dataset(str(tmp_path), batch_size=4)
    assert [len(dataset.train), len(dataset.eval), len(dataset.test)] == [7, 6, 10]
    stats = baselines.train_statistics(dataset)
    assert set(dataset.target_items.names()[stats.target_clickers > 0]) == {b"A", b"B", b"C"}
    x = baselines.features(dataset.test, stats)
    np.testing.assert_allclose(x, EXPECTED, rtol=1e-12, atol=0)
    assert baselines.main(["--data", str(tmp_path), "--output", str(tmp_path / "b.json")]) == 0
    written = json.loads((tmp_path / "b.json").read_text())
    assert written["rows"] == {"train": 7, "eval": 6, "test": 10}
    assert written["baselines"] == json.loads(json.dumps(baselines.evaluate(_dataset())))
    out = capsys.readouterr().out
    assert "| novelty: candidate never clicked in train |" in out


def _with_statistics(rows, statistics):
    return [(*row, clicks, age) for row, (clicks, age) in zip(rows, statistics, strict=True)]


def test_statistics_columns_by_hand():
    # (candidate_prior_clicks, candidate_age): seen twice 10 s after its first
    # click; unseen (age 0); seen once with an unknown age (per_user data).
    rows = _with_statistics(TEST[:3], [(2, 10), (0, 0), (1, -1)])
    dataset = baselines.dataset_from_rows(TRAIN, EVAL, rows)
    got = baselines.statistics_features(dataset.test)
    expected = [
        [math.log1p(2), 0, math.log1p(10), 0],
        [0, 1, 0, 0],
        [math.log1p(1), 0, 0, 1],
    ]
    np.testing.assert_allclose(got, expected)
    assert baselines.dataset_from_rows(TRAIN, EVAL, TEST).test.statistics is None


def test_statistics_baselines_only_with_statistics():
    plain = baselines.evaluate(_dataset())
    assert "statistics" not in plain and "blend_all" not in plain
    # Statistics that separate the eval classes: clicked candidates are new.
    eval_rows = _with_statistics(EVAL, [(0, 0) if r[2] else (5, 100) for r in EVAL])
    test_rows = _with_statistics(TEST, [(0, 0) if r[2] else (5, 100) for r in TEST])
    result = baselines.evaluate(baselines.dataset_from_rows(TRAIN, eval_rows, test_rows))
    assert result["statistics"]["metrics"]["auc"] == 1.0
    assert result["statistics"]["fit"]["features"] == list(baselines.STATISTICS_FEATURES)
    assert len(result["blend_all"]["fit"]["coefficients"]) == 8
    assert result["blend_all"]["probability"] and result["blend_all"]["metrics"]["logloss"] > 0
