from __future__ import annotations

import math

import numpy as np
import pytest

from sitn_tools.retrieval import report


def _runs():
    runs = []
    values = {"timirec": [0.30, 0.32, 0.31], "comirec": [0.20, 0.23, 0.21]}
    for variant, hr in values.items():
        for seed, value in enumerate(hr):
            metrics = {m: value for m in report.METRICS}
            runs.append({"variant": variant, "seed": seed, "metrics": metrics})
    return runs


def test_summary_mean_and_sample_std():
    summary = report.summarize(_runs(), ["timirec", "comirec", "gru4rec"])
    assert set(summary) == {"timirec", "comirec"}
    stat = summary["comirec"]["metrics"]["hr@10"]
    assert stat["mean"] == pytest.approx(0.64 / 3)
    assert stat["std"] == pytest.approx(np.std([0.20, 0.23, 0.21], ddof=1))


def test_paired_t_against_the_formula():
    test = report.paired_test(_runs(), "timirec", "comirec", "hr@10")
    d = np.array([0.10, 0.09, 0.10])
    t = d.mean() / (d.std(ddof=1) / math.sqrt(3))
    assert test["n"] == 3 and test["mean_diff"] == pytest.approx(d.mean())
    assert test["t"] == pytest.approx(t)
    # Student's t with 2 degrees of freedom has the closed-form two-sided p = 1 - t / sqrt(t^2 + 2).
    assert test["p"] == pytest.approx(1 - t / math.sqrt(t * t + 2))


def test_constant_differences_have_no_t():
    runs = [
        {"variant": v, "seed": s, "metrics": {"hr@10": x + s}}
        for v, x in (("a", 1.0), ("b", 0.5))
        for s in range(3)
    ]
    test = report.paired_test(runs, "a", "b", "hr@10")
    assert test["mean_diff"] == pytest.approx(0.5) and test["t"] is None and test["p"] is None


def test_markdown_has_every_row_and_the_tests():
    runs = _runs()
    text = report.markdown(
        report.summarize(runs, ["timirec", "comirec"]),
        [report.paired_test(runs, "timirec", "comirec", "hr@10")],
    )
    assert "| timirec | 3 | 0.3100 ± 0.0100 |" in text
    assert "| timirec vs comirec | hr@10 | 3 | +0.0967 | 29.00 |" in text


def test_co_click_baseline_by_hand():
    from sitn_tf.retrieval.data import Split
    from sitn_tools.retrieval.runner import co_click_ranks

    # Train: 1 -> 2 twice, 1 -> 3 once, 4 -> 3 once; candidates 1..4.
    train = Split(
        histories=np.array([[1, 0], [1, 0], [1, 0], [4, 0]]), targets=np.array([2, 2, 3, 3])
    )
    # Query [1]: scores 2 -> 2, 3 -> 1, 4 -> 0 (+ popularity tie-break), 1 masked.
    test = Split(histories=np.array([[1, 0], [1, 4], [1, 0]]), targets=np.array([3, 3, 4]))
    ranks = co_click_ranks(train, test, num_items=5, num_candidates=5)
    # [1, 4] gives 3 a score of 2, tied with 2: ties count against the target.
    np.testing.assert_array_equal(ranks, [1, 1, 2])
