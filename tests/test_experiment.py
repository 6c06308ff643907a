"""`sitn-tf experiment` end to end on the synthetic config, as CI runs it.

The synthetic data plants interests shared by both domains, so the full SITN
must beat the target-only DIN there; the files the real-data experiment
commits are all produced and checked for structure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines import defaults
from sitn_tools.experiment import config as config_lib

REPO = Path(defaults.REPO_ROOT)
CONFIG = REPO / "experiments" / "synthetic.yaml"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.slow


def _experiment(output: Path, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sitn_tools", "experiment", "--config", str(CONFIG)]
        + ["--output", str(output), *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done, time.monotonic() - start


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    output = tmp_path_factory.mktemp("experiment")
    done, seconds = _experiment(output)
    results = json.loads((output / "results.json").read_text())
    return output, results, done.stdout, seconds


def test_every_variant_and_seed_ran_once_with_test_metrics(experiment):
    _, results, _, _ = experiment
    config = config_lib.load(str(CONFIG))
    pairs = sorted((r["variant"], r["seed"]) for r in results["runs"])
    assert pairs == sorted((v, s) for v in config["variants"] for s in config["seeds"])
    for run in results["runs"]:
        m = run["metrics"]
        assert 0.0 < m["auc"] < 1.0 and 0.0 < m["gauc"] < 1.0 and m["logloss"] > 0.0
        assert m["examples"] > 0 and 0.0 < m["mean_label"] < 1.0
        assert 0.0 < m["known_auc"] < 1.0 and 0.0 < m["known_gauc"] < 1.0
        # Early stopping on the eval split: the chosen epoch is recorded.
        assert 1 <= run["best_epoch"] <= run["epochs_run"] <= config["training"]["num_epochs"]
        assert run["eval_auc"] == pytest.approx(
            run["finetune_history"]["val_auc"][run["best_epoch"] - 1]
        )
        assert run["train_seconds"] > 0 and run["train_steps"] > 0
        assert run["config"]["training"]["seed"] == run["seed"]
        variant = config_lib.VARIANTS_BY_NAME[run["variant"]]
        assert ("pretrain_seconds" in run) == variant.pretrains
        assert (run["restored_variables"] > 0) == variant.pretrains


def test_sitn_beats_din_where_the_signal_is_planted(experiment):
    _, results, _, _ = experiment
    summary = results["summary"]
    sitn, din = summary["sitn"]["metrics"]["auc"]["mean"], summary["din"]["metrics"]["auc"]["mean"]
    assert sitn > din + 0.02, (sitn, din)
    per_seed = {(r["variant"], r["seed"]): r["metrics"]["auc"] for r in results["runs"]}
    assert all(per_seed[("sitn", s)] > per_seed[("din", s)] for s in results["config"]["seeds"])


def test_simple_baselines_on_the_same_test_rows(experiment):
    _, results, _, _ = experiment
    baselines = results["baselines"]
    # The synthetic generator writes the candidate statistics: all seven rows.
    assert sorted(baselines) == sorted(
        ["novelty", "popularity", "cocl_target", "cocl_source", "blend", "statistics", "blend_all"]
    )
    examples = {r["metrics"]["examples"] for r in results["runs"]}
    for name, entry in baselines.items():
        assert examples == {entry["metrics"]["examples"]}
        probability = name in ("blend", "statistics", "blend_all")
        assert (entry["metrics"]["logloss"] is not None) == probability


def test_summary_and_paired_test(experiment):
    _, results, _, _ = experiment
    runs = results["runs"]
    for name, entry in results["summary"].items():
        aucs = [r["metrics"]["auc"] for r in runs if r["variant"] == name]
        assert entry["metrics"]["auc"]["mean"] == pytest.approx(np.mean(aucs))
        assert entry["metrics"]["auc"]["std"] == pytest.approx(np.std(aucs, ddof=1))
    best = results["best_baseline"]
    assert best in ("din", "i2i_only")
    test = results["paired_tests"]["sitn"]
    assert test["b"] == best and test["n"] == len(results["config"]["seeds"])
    diffs = [
        next(r for r in runs if r["variant"] == "sitn" and r["seed"] == s)["metrics"]["auc"]
        - next(r for r in runs if r["variant"] == best and r["seed"] == s)["metrics"]["auc"]
        for s in results["config"]["seeds"]
    ]
    assert test["mean_diff"] == pytest.approx(np.mean(diffs))


def test_report_files(experiment):
    output, results, stdout, _ = experiment
    for name in ("auc.png", "clusters_tsne.png"):
        data = (output / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000, name
    table = (output / "results.md").read_text()
    for variant in results["config"]["variants"]:
        assert config_lib.VARIANTS_BY_NAME[variant].label in table
    sitn_auc = results["summary"]["sitn"]["metrics"]["auc"]["mean"]
    assert f"{sitn_auc:.4f}" in table
    assert "Simple baseline: " in table and "Known AUC" in table
    assert table.strip() in stdout
    # Committed reports carry no absolute paths of the machine that made them.
    text = (output / "results.json").read_text() + (output / "clusters.json").read_text()
    assert os.path.dirname(str(REPO)) not in text


def test_cluster_analysis_per_granularity(experiment):
    output, results, _, _ = experiment
    clusters = json.loads((output / "clusters.json").read_text())["granularities"]
    assert sorted(map(int, clusters)) == [8, 16, 32]
    for k, entry in clusters.items():
        for key in ("nearest_cross_domain_cosine", "random_clusters_cosine_mean"):
            assert -1.0 <= entry[key] <= 1.0
        # The same cosine in the health numbers and in Figure 3's titles.
        assert entry["cross_cosine"] == pytest.approx(entry["nearest_cross_domain_cosine"])
        for domain in ("source", "target"):
            assert 0.0 <= entry[f"{domain}_usage_entropy"] <= 1.0
            assert 1.0 <= entry[f"{domain}_effective_clusters"] <= int(k)
        # The same eval pairs' cross-domain alignment, each beside its reference level.
        for value, level in (
            ("centroid_cross_cosine", "random_centroid_cross_cosine"),
            ("target_agreement", "target_agreement_chance"),
            ("source_agreement", "source_agreement_chance"),
        ):
            assert -1.0 <= entry[value] <= 1.0 and -1.0 <= entry[level] <= 1.0
    assert results["clusters"] == clusters
    # Every run that pretrained keeps its eval-split cluster health.
    for run in results["runs"]:
        if run.get("pretrain_steps") and run["config"]["model"]["use_i2c"]:
            health = run["pretrain_cluster_health"]["granularities"]
            assert sorted(map(int, health)) == [8, 16, 32]


def test_rerun_reuses_everything(experiment):
    output, results, _, first_seconds = experiment
    done, seconds = _experiment(output)
    runs = len(results["runs"])
    assert done.stdout.count("done before, reused") == runs
    assert "'Transform': 'CACHED'" in done.stdout
    again = json.loads((output / "results.json").read_text())
    assert again["summary"] == results["summary"]
    assert seconds < first_seconds


def test_fresh_output_resumes_from_committed_records(experiment, tmp_path):
    """A checkout without `runs/` trains nothing that has a committed record."""
    output, results, _, _ = experiment
    report = tmp_path / "report"
    _experiment(output, "--report-dir", str(report))  # writes the records beside the report
    records = sorted(p.name for p in (report / "runs").iterdir())
    assert records == sorted(f"{r['variant']}-seed-{r['seed']}.json" for r in results["runs"])
    (report / "analysis.md").write_text("### What the tables say\n\nA hand-written note.\n")
    done, _ = _experiment(tmp_path / "fresh", "--report-dir", str(report))
    assert (report / "results.md").read_text().endswith("A hand-written note.\n")
    assert done.stdout.count("reused from the committed record") == len(results["runs"])
    assert ": training\n" not in done.stdout
    again = json.loads((report / "results.json").read_text())
    assert again["summary"] == results["summary"]
    assert again["clusters"] == results["clusters"]  # Figure 3 kept, its model is not here
