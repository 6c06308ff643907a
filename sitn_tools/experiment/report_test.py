import json
import math
import re

import matplotlib.image
import numpy as np
import pytest

from sitn_tools.experiment import report
from sitn_tools.experiment.report import VariantSpec

VARIANTS = [
    VariantSpec("din", "DIN", "Baseline"),
    VariantSpec("i2i_only", "SEMI-like (I2I only)", "Baseline"),
    VariantSpec("sitn", "SITN", "Ours"),
    VariantSpec("no_i2c", "w/o I2C", "Table 3"),
    VariantSpec("single_view", "single view", "Table 4"),
]

# Per-seed test AUC for seeds 0..4.
AUC = {
    "din": [0.7401, 0.7412, 0.7395, 0.7420, 0.7408],
    "i2i_only": [0.7450, 0.7462, 0.7443, 0.7452, 0.7449],
    "sitn": [0.7520, 0.7531, 0.7509, 0.7538, 0.7522],
    "no_i2c": [0.7480, 0.7475, 0.7490, 0.7471, 0.7483],
    "single_view": [0.7500, 0.7497, 0.7511, 0.7493, 0.7505],
}


def _records(auc=AUC, seeds=range(5)):
    records = []
    for name, values in auc.items():
        for seed, value in zip(seeds, values, strict=False):
            records.append(
                {
                    "variant": name,
                    "seed": seed,
                    "metrics": {
                        "auc": value,
                        "logloss": 1.2 - value,
                        "gauc": value - 0.05,
                    },
                    "train_seconds": 100.0 + seed,
                    "run_dir": f"runs/{name}/{seed}",
                }
            )
    return records


def test_summarize_matches_hand_values():
    summary = report.summarize(_records(), VARIANTS)
    assert list(summary) == [v.name for v in VARIANTS]
    din = summary["din"]
    assert din["seeds"] == [0, 1, 2, 3, 4] and din["n"] == 5
    # By hand: mean = 3.7036 / 5 = 0.74072; deviations -0.00062, 0.00048, -0.00122,
    # 0.00128, 0.00008; squares sum to 3.748e-6; sample variance 3.748e-6 / 4 = 9.37e-7.
    std = math.sqrt(9.37e-7)
    assert din["metrics"]["auc"]["mean"] == pytest.approx(0.74072, abs=1e-12)
    assert din["metrics"]["auc"]["std"] == pytest.approx(std, rel=1e-9)
    assert din["metrics"]["logloss"]["mean"] == pytest.approx(1.2 - 0.74072)
    assert din["metrics"]["logloss"]["std"] == pytest.approx(std)
    assert din["metrics"]["gauc"]["mean"] == pytest.approx(0.74072 - 0.05)
    # train_seconds 100..104: mean 102, sample std sqrt(10 / 4).
    assert din["metrics"]["train_seconds"]["mean"] == pytest.approx(102.0)
    assert din["metrics"]["train_seconds"]["std"] == pytest.approx(math.sqrt(2.5))
    assert din["metrics"]["train_seconds"]["n"] == 5


def test_summarize_single_seed_has_no_std():
    summary = report.summarize(_records(seeds=[7]), VARIANTS)
    stat = summary["sitn"]["metrics"]["auc"]
    assert stat == {"n": 1, "mean": pytest.approx(0.7520), "std": None}


def test_summarize_train_seconds_optional():
    records = _records()
    for r in records:
        del r["train_seconds"]
    summary = report.summarize(records, VARIANTS)
    assert "train_seconds" not in summary["din"]["metrics"]
    # JSON-ready as returned.
    assert json.loads(json.dumps(summary)) == summary


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda rs: rs.append(dict(rs[0])), "duplicate run for variant 'din', seed 0"),
        (lambda rs: rs[3]["metrics"].pop("gauc"), "variant 'din', seed 3: metrics lack `gauc`"),
        (lambda rs: rs[1]["metrics"].update(auc=float("nan")), "`auc` is not finite"),
        (lambda rs: rs.append({**rs[0], "variant": "dien"}), "variant 'dien' is not among"),
        (lambda rs: rs[2].pop("seed"), "run record 2: missing key `seed`"),
    ],
)
def test_summarize_rejects_bad_records(mutate, message):
    records = _records()
    mutate(records)
    with pytest.raises(ValueError, match=re.escape(message)):
        report.summarize(records, VARIANTS)


def test_variant_without_runs_is_kept_and_shown_as_not_run(tmp_path):
    records = [r for r in _records() if r["variant"] != "no_i2c"]
    summary = report.summarize(records, VARIANTS)
    assert summary["no_i2c"] == {"n": 0, "seeds": [], "metrics": {}}
    tests = report.compare_to(records, "i2i_only", VARIANTS)
    assert "no_i2c" not in tests and "sitn" in tests
    text = report.markdown_table(summary, VARIANTS, tests)
    assert "| w/o I2C | 0 | not run |  |  |  |  |  |" in text
    report.bar_chart(summary, VARIANTS, str(tmp_path / "auc.png"))
    with pytest.raises(ValueError, match="baseline 'no_i2c' has no `auc` values"):
        report.best_baseline(summary, ["no_i2c"])


def test_paired_test_matches_numpy_formula():
    result = report.paired_test(_records(), "sitn", "i2i_only")
    d = np.array(AUC["sitn"]) - np.array(AUC["i2i_only"])
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    assert result["defined"] and result["n"] == 5 and result["seeds"] == [0, 1, 2, 3, 4]
    assert result["mean_diff"] == pytest.approx(d.mean())
    assert result["std_diff"] == pytest.approx(d.std(ddof=1))
    assert result["t"] == pytest.approx(t, rel=1e-9)
    assert result["better"] == "sitn"
    assert 0.0 < result["p_t"] < 1e-3
    # All five differences are positive: the exact two-sided Wilcoxon p is 2 / 2**5.
    assert result["p_wilcoxon"] == pytest.approx(0.0625)
    assert not result["wilcoxon_ties"]


def test_paired_test_logloss_direction():
    # Lower logloss is better, so sitn (lower logloss) is better although the diff is negative.
    result = report.paired_test(_records(), "sitn", "din", metric="logloss")
    assert result["mean_diff"] < 0 and result["better"] == "sitn"


def test_paired_test_names_unmatched_seeds():
    records = [r for r in _records() if not (r["variant"] == "din" and r["seed"] == 3)]
    records.append({"variant": "din", "seed": 9, "metrics": {"auc": 0.74}})
    with pytest.raises(ValueError, match=r"only in 'sitn': \[3\], only in 'din': \[9\]"):
        report.paired_test(records, "sitn", "din")


def test_paired_test_single_seed_is_undefined():
    result = report.paired_test(_records(seeds=[4]), "sitn", "din")
    assert not result["defined"]
    assert result["t"] is None and result["p_t"] is None and result["p_wilcoxon"] is None
    assert "at least 2" in result["reason"]
    assert result["mean_diff"] == pytest.approx(0.7520 - 0.7401)


def test_paired_test_constant_difference_is_undefined():
    # Exact binary fractions, so the three differences are exactly equal.
    auc = {"sitn": [0.5, 0.75, 1.0], "din": [0.25, 0.5, 0.75]}
    result = report.paired_test(_records(auc, seeds=range(3)), "sitn", "din")
    assert not result["defined"] and result["p_t"] is None and "no variance" in result["reason"]


def test_paired_test_bad_arguments():
    with pytest.raises(ValueError, match="`metric` must be one of"):
        report.paired_test(_records(), "sitn", "din", metric="ndcg")
    with pytest.raises(ValueError, match="no run records for variant 'dien'"):
        report.paired_test(_records(), "sitn", "dien")


def test_best_baseline_by_parameterised_metric():
    summary = report.summarize(_records(), VARIANTS)
    baselines = [v for v in VARIANTS if v.is_baseline]
    assert report.best_baseline(summary, baselines) == "i2i_only"
    assert report.best_baseline(summary, ["din", "i2i_only"], metric="logloss") == "i2i_only"
    # train_seconds is equal for both: the tie goes to the first baseline.
    assert report.best_baseline(summary, ["din", "i2i_only"], metric="train_seconds") == "din"
    with pytest.raises(ValueError, match="baseline 'dien' is not in the summary"):
        report.best_baseline(summary, ["dien"])


def _table():
    records = _records()
    summary = report.summarize(records, VARIANTS)
    best = report.best_baseline(summary, [v for v in VARIANTS if v.is_baseline])
    tests = report.compare_to(records, best, VARIANTS)
    return summary, tests, report.markdown_table(summary, VARIANTS, tests)


def test_markdown_table_layout_and_numbers():
    summary, tests, text = _table()
    lines = text.splitlines()
    titles = [line for line in lines if line.startswith("### ")]
    assert titles == ["### Table 2: main comparison", "### Table 3", "### Table 4"]
    rows = [line.split(" | ")[0].lstrip("| ") for line in lines if line.startswith("| ")]
    assert rows == [
        "Model",
        "DIN",
        "SEMI-like (I2I only)",
        "SITN",
        "Model",
        "w/o I2C",
        "SITN",
        "Model",
        "single view",
        "SITN",
    ]
    sitn_row = next(line for line in lines if line.startswith("| SITN |"))
    auc = summary["sitn"]["metrics"]["auc"]
    assert f"**{auc['mean']:.4f} ± {auc['std']:.4f}**" in sitn_row
    assert "**0.7524 ± 0.0011**" in sitn_row
    t = tests["sitn"]
    assert f"| {t['mean_diff']:+.4f} | {t['p_t']:.1e} | 0.062 |" in sitn_row
    assert "Δ AUC vs SEMI-like (I2I only)" in lines[2]
    ref_row = next(line for line in lines if line.startswith("| SEMI-like"))
    assert "reference" in ref_row and "**" not in ref_row
    din_row = next(line for line in lines if line.startswith("| DIN |"))
    assert "0.7407 ± 0.0010" in din_row and "**" not in din_row
    # Deterministic.
    assert _table()[2] == text


def test_markdown_table_without_tests_and_single_seed():
    records = _records(seeds=[1])
    summary = report.summarize(records, VARIANTS)
    text = report.markdown_table(summary, VARIANTS)
    assert "Δ" not in text
    assert "**0.7520 (n=1)**" in text
    tests = report.compare_to(records, "din", VARIANTS)
    text = report.markdown_table(summary, VARIANTS, tests, best_baseline="din")
    assert "| +0.0119 | n/a | n/a |" in text
    assert "Δ AUC vs DIN" in text
    with pytest.raises(ValueError, match="tests compare against 'din', not 'i2i_only'"):
        report.markdown_table(summary, VARIANTS, tests, best_baseline="i2i_only")


def test_variant_spec_rejects_empty_fields():
    with pytest.raises(ValueError, match="`label` must be a non-empty string"):
        VariantSpec("din", "", "Baseline")


def test_bar_chart_writes_deterministic_png(tmp_path):
    summary = report.summarize(_records(), VARIANTS)
    path = tmp_path / "auc.png"
    report.bar_chart(summary, VARIANTS, str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    image = matplotlib.image.imread(str(path))
    assert image.ndim == 3 and image.shape[0] == 450 and image.shape[1] >= 600
    # The image is not blank: bars of several colours are drawn.
    assert len(np.unique(image.reshape(-1, image.shape[2]), axis=0)) > 10
    again = tmp_path / "again.png"
    report.bar_chart(summary, VARIANTS, str(again))
    assert again.read_bytes() == data
    with pytest.raises(ValueError, match="`metric` must be one of"):
        report.bar_chart(summary, VARIANTS, str(path), metric="ndcg")
