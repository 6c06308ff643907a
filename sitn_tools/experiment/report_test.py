import json
import math
import re

import matplotlib.image
import numpy as np
import pytest
import scipy.stats

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
                        "known_auc": value - 0.2,
                        "known_gauc": value - 0.25,
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
    assert din["metrics"]["known_auc"]["mean"] == pytest.approx(0.74072 - 0.2)
    assert din["metrics"]["known_auc"]["std"] == pytest.approx(std)
    assert din["metrics"]["known_gauc"]["mean"] == pytest.approx(0.74072 - 0.25)
    assert din["metrics"]["known_gauc"]["n"] == 5
    # train_seconds 100..104: mean 102, sample std sqrt(10 / 4).
    assert din["metrics"]["train_seconds"]["mean"] == pytest.approx(102.0)
    assert din["metrics"]["train_seconds"]["std"] == pytest.approx(math.sqrt(2.5))
    assert din["metrics"]["train_seconds"]["n"] == 5


def test_summarize_single_seed_has_no_std():
    summary = report.summarize(_records(seeds=[7]), VARIANTS)
    stat = summary["sitn"]["metrics"]["auc"]
    assert stat == {"n": 1, "mean": pytest.approx(0.7520), "std": None}


def test_summarize_train_seconds_and_known_metrics_optional():
    records = _records()
    for r in records:
        del r["train_seconds"]
        del r["metrics"]["known_gauc"]
        if r["seed"] == 0:
            r["metrics"]["known_auc"] = None  # undefined (e.g. one class): absent
    summary = report.summarize(records, VARIANTS)
    assert "train_seconds" not in summary["din"]["metrics"]
    assert "known_gauc" not in summary["din"]["metrics"]
    assert summary["din"]["metrics"]["known_auc"]["n"] == 4
    assert summary["din"]["metrics"]["known_auc"]["mean"] == pytest.approx(
        np.mean(AUC["din"][1:]) - 0.2
    )
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
    assert "| w/o I2C | 0 | not run |  |  |  |  |  |  |  |" in text.splitlines()
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
    # Known AUC and Known GAUC beside AUC, Logloss and GAUC.
    assert "| 0.5524 ± 0.0011 | 0.5024 ± 0.0011 |" in sitn_row
    t = tests["sitn"]
    assert f"| {t['mean_diff']:+.4f} | {t['p_t']:.1e} | 0.062 |" in sitn_row
    assert lines[2].startswith(
        "| Model | Seeds | AUC | Logloss | GAUC | Known AUC | Known GAUC | Δ AUC vs SEMI-like"
    )
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


def _simple_baselines(novelty_auc=0.6250):
    def entry(label, auc, logloss=None):
        return {
            "label": label,
            "probability": logloss is not None,
            "metrics": {
                "auc": auc,
                "logloss": logloss,
                "gauc": auc - 0.01,
                "known_auc": 0.5 if label.startswith("novelty") else auc - 0.1,
                "known_gauc": None,
                "by_history_length": {
                    "0": {"auc": auc, "examples": 3, "positives": 1},
                    "1-2": {"auc": None, "examples": 2, "positives": 2},
                },
            },
        }

    return {
        "novelty": entry("novelty: new", novelty_auc),
        "blend": entry("blend: fitted on eval", 0.6400, logloss=0.4801),
    }


def test_markdown_table_with_simple_baselines():
    records = _records()
    summary = report.summarize(records, VARIANTS)
    tests = report.compare_to(records, "i2i_only", VARIANTS)
    text = report.markdown_table(
        summary, VARIANTS, tests, best_baseline="i2i_only", simple_baselines=_simple_baselines()
    )
    lines = text.splitlines()
    table2 = lines[: lines.index("### Table 3")]
    novelty = "| Simple baseline: novelty: new | — | 0.6250 | — | 0.6150 | 0.5000 | — |  |  |  |"
    blend = "| Simple baseline: blend: fitted on eval | — | 0.6400 | 0.4801 | 0.6300 | 0.5400 | — |"
    assert novelty in table2
    assert blend + "  |  |  |" in table2
    # Only Table 2 carries them; the paired columns stay with the model rows.
    assert sum(line.startswith("| Simple baseline") for line in lines) == 2
    assert "no std and no paired test" in text and "no logloss (—)" in text
    # A simple baseline with the best AUC is the bold one.
    text = report.markdown_table(
        summary, VARIANTS, simple_baselines=_simple_baselines(novelty_auc=0.8)
    )
    table2 = text[: text.index("### Table 3")]
    assert "| **0.8000** |" in table2 and table2.count("**") == 2
    # Without variants of Table 2 they still get their table.
    only = [v for v in VARIANTS if v.group == "Table 4"]
    text = report.markdown_table(
        report.summarize([], only), only, simple_baselines=_simple_baselines()
    )
    assert "### Table 2: main comparison" in text and "Simple baseline: novelty" in text
    with pytest.raises(ValueError, match="simple baseline 'x': `label` is missing"):
        report.markdown_table(summary, VARIANTS, simple_baselines={"x": {"metrics": {}}})


def test_simple_baseline_table():
    text = report.simple_baseline_table(_simple_baselines())
    lines = text.splitlines()
    assert lines[0] == (
        "| Simple baseline | AUC | Logloss | GAUC | Known AUC | Known GAUC "
        "| AUC, target history 0 | AUC, target history 1-2 |"
    )
    assert lines[2] == "| novelty: new | 0.6250 | — | 0.6150 | 0.5000 | — | 0.6250 | — |"
    assert (
        lines[3] == "| blend: fitted on eval | 0.6400 | 0.4801 | 0.6300 | 0.5400 | — | 0.6400 | — |"
    )
    assert "Test rows by target-history length: 0: 3, 1-2: 2." in text


def test_convergence_table_by_hand():
    records = [
        {
            "variant": "din",
            "seed": 2,
            "best_epoch": 2,
            "epochs_run": 4,
            "finetune_history": {
                "val_auc": [0.6, 0.7, 0.69, 0.68],
                "val_logloss": [0.5, 0.45, 0.5, 0.6],
            },
        },
        {
            "variant": "din",
            "seed": 1,
            "best_epoch": 3,
            "epochs_run": 3,
            "finetune_history": {"val_auc": [0.6, 0.65, 0.66], "val_logloss": [0.5, 0.48, 0.47]},
        },
        {"variant": "sitn", "seed": 1, "metrics": {}},  # no history: skipped
    ]
    table = report.convergence_table(records)
    lines = table.splitlines()
    assert lines[2] == "| din | 1 | 3 / 3 | 0.6600 | 0.4700 | 0.5000 | yes |"
    assert lines[3] == "| din | 2 | 2 / 4 | 0.7000 | 0.4500 | 0.5000 | no |"
    assert "not the last in 1 of 2 runs" in table
    assert report.convergence_table([]) == ""


def test_gain_by_history_table_pairs_bucket_aucs_by_seed():
    def run(variant, seed, target, source=None):
        m = {
            "auc": 0.6,
            "by_history_length": {b: {"auc": a, "examples": 10} for b, a in target.items()},
        }
        if source is not None:
            m["by_source_history_length"] = {
                b: {"auc": a, "examples": 7} for b, a in source.items()
            }
        return {"variant": variant, "seed": seed, "metrics": m}

    records = [
        run("din", 1, {"0": None, "1-2": 0.50}, {"6+": 0.60}),
        run("din", 2, {"0": None, "1-2": 0.52}, {"6+": 0.61}),
        run("din", 3, {"0": None, "1-2": 0.54}, {"6+": 0.62}),
        run("sitn", 1, {"0": None, "1-2": 0.53}, {"6+": 0.60}),
        run("sitn", 2, {"0": None, "1-2": 0.54}, {"6+": 0.62}),
        run("sitn", 3, {"0": None, "1-2": 0.58}, {"6+": 0.62}),
    ]
    text = report.gain_by_history_table(records)
    lines = text.strip().splitlines()
    assert len(lines) == 4  # header, rule, target 1-2, source 6+ (bucket "0" has no AUC)
    d = np.array([0.03, 0.02, 0.04])
    t = d.mean() / (d.std(ddof=1) / np.sqrt(3))
    p = 2 * scipy.stats.t.sf(abs(t), df=2)
    assert lines[2].startswith("| sitn | target | 1-2 | 10 | +0.0300 ± 0.0100 |")
    assert lines[2].endswith(f"| {p:.3f} |")
    assert lines[3].startswith("| sitn | source | 6+ | 7 | +0.0033 ± 0.0058 |")
    assert report.gain_by_history_table(records[3:]) == ""  # no reference runs
