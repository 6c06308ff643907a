from __future__ import annotations

import json

import pytest

from sitn_tools.retrieval import ssl_study

TINY = dict(
    synthetic_users=40,
    synthetic_clusters=4,
    synthetic_items_per_cluster=10,
    synthetic_min_length=5,
    synthetic_max_length=8,
    embedding_dim=4,
    feature_dim=2,
    hidden_units=(4,),
    batch_size=64,
    max_epochs=1,
    ssl_batch_size=8,
    learning_rates=(0.01,),
    temperatures=(0.1,),
    ssl_weights=(0.1, 0.5),
)


def test_study_selects_on_eval_and_reports_head_and_tail(tmp_path):
    settings = ssl_study.SslSettings(**TINY)
    results = ssl_study.run(
        settings, seeds=[0, 1], variants=["baseline", "ssl_cfm"], output=tmp_path
    )
    # Selection: 1 baseline run, then 2 alphas for ssl_cfm on seed 0; seed 1: the chosen two.
    assert [(r["variant"], r["seed"]) for r in results["runs"]] == [
        ("baseline", 0),
        ("ssl_cfm", 0),
        ("ssl_cfm", 0),
        ("baseline", 1),
        ("ssl_cfm", 1),
    ]
    chosen = results["selection"]["ssl_cfm"]
    best = max(chosen["sweep"], key=lambda row: row["eval_recall@50"])
    assert chosen["params"] == best["params"] and chosen["params"]["learning_rate"] == 0.01
    for run in results["runs"]:
        assert set(ssl_study.METRICS) <= set(run["metrics"]) and run["best_epoch"] == 1
    assert results["summary"]["ssl_cfm"]["n"] == 2
    assert {t["metric"] for t in results["tests"]} == set(ssl_study.TESTED)
    assert set(results["baselines"]["popularity"]["test"]) >= set(ssl_study.METRICS)
    assert results["features"]["cfm_groups"]["category"][0] == "category"
    text = (tmp_path / "results.md").read_text()
    assert "RECALL@50_TAIL" in text and "ssl_cfm vs baseline" in text
    assert "| popularity | – |" in text
    # A rerun reuses every finished run.
    again = ssl_study.run(settings, seeds=[0, 1], variants=["baseline", "ssl_cfm"], output=tmp_path)
    assert len(again["runs"]) == 5
    assert json.loads((tmp_path / "results.json").read_text())["config"] == settings.record()


def test_bad_variants_and_id_only_sets(tmp_path):
    settings = ssl_study.SslSettings(**TINY)
    with pytest.raises(ValueError, match="unknown variants"):
        ssl_study.run(settings, [0], ["ssl_magic"], output=tmp_path / "a")
    with pytest.raises(ValueError, match="'baseline'"):
        ssl_study.run(settings, [0], ["ssl_rfm"], output=tmp_path / "b")
    folder = tmp_path / "data" / "amazon_toys_games"
    folder.mkdir(parents=True)
    rows = [f"u{u}\tg{(u + i) % 7}\tgames\t{i}" for u in range(6) for i in range(4)]
    (folder / "interactions.tsv").write_text(
        "\n".join(["user_id\titem_id\tdomain\ttimestamp", *rows]) + "\n"
    )
    real = ssl_study.SslSettings(dataset="amazon_toys_games", data_dir=str(tmp_path / "data"))
    with pytest.raises(ValueError, match="only ids"):
        ssl_study.run(real, [0], ["baseline", "ssl_rfm"], output=tmp_path / "c")
