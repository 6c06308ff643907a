"""`sitn-tf bench`: the harness's arithmetic, and smoke runs of the quick modes.

Benchmarks measure rather than assert speed, so the smoke runs check only
that every figure is positive and finite and that the JSON reports are
well-formed. The pure parts (percentiles, FLOP model, ratios, linearity,
table) are checked against hand-computed values.
"""

from __future__ import annotations

import glob
import json
import math
import os

import numpy as np
import pytest

from sitn_tf.models import SITNConfig
from sitn_tools import cli
from sitn_tools.bench import common, data, pipeline, profile, train
from sitn_tools.bench import flops as flops_lib

# ---------------------------------------------------------------- arithmetic


@pytest.mark.parametrize("q", [0, 25, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy(q):
    values = [5.0, 1.0, 9.0, 2.5, 7.0, 3.0, 8.5]
    assert common.percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_percentile_and_median_reject_bad_input():
    with pytest.raises(ValueError, match="no values"):
        common.percentile([], 50)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        common.percentile([1.0], 101)
    with pytest.raises(ValueError, match="no values"):
        common.median([])
    assert common.median([3.0, 1.0, 2.0, 10.0]) == 2.5


def test_timed_windows_counts_units_per_second():
    calls = []

    def step():
        calls.append(1)
        return len(calls)

    timing = common.timed_windows(step, 10.0, windows=5, window_seconds=0.001, warmup_steps=2)
    assert len(timing["rates"]) == 5
    assert timing["steps_per_window"] >= 1
    # warm-up (2) + sizing step (1) + windows
    assert len(calls) == 3 + 5 * timing["steps_per_window"]
    for rate, seconds in zip(timing["rates"], timing["window_seconds"], strict=True):
        assert rate == pytest.approx(10.0 * timing["steps_per_window"] / seconds, rel=1e-3)
    with pytest.raises(ValueError, match="windows"):
        common.timed_windows(step, 1.0, windows=0, window_seconds=0.1)


def test_format_table_aligns_numbers_and_words():
    table = common.format_table(["name", "value"], [["a", 1234.5], ["bb", 0.5]])
    lines = table.splitlines()
    assert lines[0] == "| name | value |"
    assert lines[2] == "| a    | 1,234 |"  # rounded to a whole number above 100
    assert lines[3] == "| bb   |   0.5 |"


def test_rss_sampler_sees_an_allocation():
    with common.RssSampler(interval=0.001) as rss:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        block.sum()
    assert rss.peak_bytes - rss.start_bytes >= 32 * 2**20
    del block


TINY = SITNConfig(
    num_source_items=10,
    num_target_items=10,
    embedding_dim=4,
    num_heads=2,
    num_layers=1,
    max_seq_len=3,
    granularities=(2, 5),
    top_k=2,
    multi_view_units=(6,),
    attention_units=(8, 2),
    mlp_units=(5,),
    item_statistics=False,  # the paper's head; the statistics are checked below
)


def test_flops_by_hand():
    # D=4, L=3, FFN=8. Encoder block: QKV+out 4*(2*3*4*4)=384; scores and
    # values 2*(2*3*3*4)=144; FFN 2*(2*3*4*8)=384 -> 912.
    assert flops_lib.encoder_flops(TINY, 3) == 912
    # Activation unit per position: key term 2*4*8 = 64, k*v term 64, then
    # 2*(8*2 + 2*1) = 36 -> 164, times 3 = 492; candidate term 2*4*8 = 64;
    # weighted sum 2*3*4 = 24 -> 580.
    assert flops_lib.target_attention_flops(TINY, 3) == 580
    # Head on 3D=12 features: 2*(12*5 + 5*1) = 130.
    assert flops_lib.head_flops(TINY, 12) == 130
    assert flops_lib.forward_flops("stage2", TINY) == 2 * 912 + 2 * 580 + 130
    # DIN: one activation unit + head on 2D=8 features: 2*(8*5+5) = 90.
    assert flops_lib.forward_flops("din", TINY) == 580 + 90
    # Without XLA the models read only the batch's real length, here target 2
    # and source 1. Attention: 2*164 + 64 + 2*2*4 = 408 and 164 + 64 + 8 = 236;
    # encoders (stage 2): 8*2*16 + 4*4*4 + 4*2*4*8 = 576 and 128 + 16 + 128 = 272.
    lengths = {"source": 1, "target": 2}
    assert flops_lib.encoder_flops(TINY, 2) == 576 and flops_lib.encoder_flops(TINY, 1) == 272
    assert flops_lib.forward_flops("din", TINY, attended_lengths=lengths) == 408 + 90
    assert flops_lib.forward_flops("stage2", TINY, attended_lengths=lengths) == (
        272 + 576 + 236 + 408 + 130
    )
    # The candidate statistics widen the head by two embeddings of 8:
    # 2*((12 + 16)*5 + 5*1) = 290.
    assert flops_lib.head_flops(TINY.replace(item_statistics=True, statistics_dim=8), 12) == 290
    # 4 candidates per history: encoders and the key term once per 4.
    # Target attention 3*(64/4 + 64 + 36) + 64 + 24 = 436.
    grouped = flops_lib.forward_flops("stage2", TINY, candidates_per_history=4)
    assert grouped == pytest.approx(2 * 912 / 4 + 2 * 436 + 130)
    # Stage 1 at batch 6: InfoNCE 4*6*4 = 96; per K and domain 8*K*4 + 2*4 +
    # multi-view 2*(8*6 + 6*4) = 144 -> K=2: 64+8+144=216, K=5: 160+8+144=312,
    # both domains: 2*(216+312) = 1056.
    assert flops_lib.forward_flops("stage1", TINY, batch_size=6) == 2 * 912 + 96 + 1056
    assert flops_lib.train_flops("din", TINY) == 3 * 670
    with pytest.raises(ValueError, match="must be one of"):
        flops_lib.forward_flops("bert", TINY)


def test_flops_switches_follow_the_config():
    no_i2c = TINY.replace(use_i2c=False)
    assert flops_lib.forward_flops("stage1", no_i2c, batch_size=6) == 2 * 912 + 96
    two_layers = TINY.replace(num_layers=2)
    assert flops_lib.encoder_flops(two_layers, 3) == 2 * 912


def test_ratios_pair_matching_points():
    def point(model, batch, seq, jit, median):
        return {
            "model": model,
            "batch_size": batch,
            "max_seq_len": seq,
            "jit_compile": jit,
            "median": median,
        }

    results = [
        point("stage2", 256, 50, False, 100.0),
        point("din", 256, 50, False, 400.0),
        point("stage2", 256, 50, True, 150.0),
        point("stage1", 256, 50, True, 90.0),  # no XLA-off partner: no ratio
        point("input", 256, 50, None, 1e5),
    ]
    r = train.ratios(results)
    assert r["sitn_over_din"] == [
        {"batch_size": 256, "max_seq_len": 50, "jit_compile": False, "ratio": 0.25}
    ]
    assert r["xla_on_over_off"] == [
        {"model": "stage2", "batch_size": 256, "max_seq_len": 50, "ratio": 1.5}
    ]


def test_summary_grids_lay_out_medians_and_ratios():
    def point(model, batch, seq, jit, median, **extra):
        return {"model": model, "batch_size": batch, "max_seq_len": seq,
                "jit_compile": jit, "median": median, **extra}  # fmt: skip

    results = [
        point("stage2", 256, 50, False, 100.0, fraction_of_peak=0.2, peak_rss_bytes=2**30),
        point("stage2", 256, 100, False, 40.0, fraction_of_peak=0.1, peak_rss_bytes=2**31),
        point("stage2", 256, 50, True, 150.0),
        point("din", 256, 50, False, 400.0),
        point("din", 256, 100, False, 200.0),
        point("input", 256, 50, None, 1e5),
    ]
    headers, rows = train.grid(results, train._median(False))
    assert headers == ["model", "batch", "seq 50", "seq 100"]
    assert rows == [["stage2", 256, 100.0, 40.0], ["din", 256, 400.0, 200.0]]
    xla = train._ratio(lambda m, b, s: (m, b, s, True), lambda m, b, s: (m, b, s, False))
    assert train.grid(results, xla)[1] == [["stage2", 256, 1.5, "-"]]
    text = train.summary_tables({"results": results})
    # SITN/DIN: 100/400 and 40/200; RSS in MiB; input rows of their own.
    assert "| stage2 |   256 |   0.25 |     0.2 |" in text
    assert "| stage2 |   256 |  1,024 |   2,048 |" in text
    assert "| input |   256 | 100,000 | -       |" in text
    assert "XLA on / off" in text and "SITN stage 2 / DIN, XLA on:" not in text


def test_skip_prediction_extrapolates_from_the_largest_smaller_batch():
    measured = [
        {"model": "stage2", "batch_size": 256, "max_seq_len": 200, "jit_compile": False,
         "median": 100.0},
        {"model": "stage2", "batch_size": 1024, "max_seq_len": 200, "jit_compile": False,
         "median": 80.0},
        {"model": "stage2", "batch_size": 1024, "max_seq_len": 50, "jit_compile": False,
         "median": 1e6},
    ]  # fmt: skip
    # 4096 examples at 80 examples/s = 51.2 s a step; 2 warm-up steps + 3 windows.
    predicted = train._predicted_point_seconds(measured, "stage2", 4096, 200, False)
    assert predicted == pytest.approx(51.2 * 5)
    assert train._predicted_point_seconds(measured, "stage2", 256, 200, False) is None
    assert train._predicted_point_seconds(measured, "stage2", 4096, 200, True) is None
    assert train._predicted_point_seconds(measured, "din", 4096, 200, False) is None


def _scaled(label, rows, seconds, peak):
    return {"input": label, "rows": rows, "seconds": seconds, "peak_rss_bytes": peak}


def test_linearity_flags_superlinear_time():
    linear = data.linearity(
        [_scaled("x1", 1000, 11.0, 100), _scaled("x4", 4000, 14.0, 400),
         _scaled("x16", 16000, 26.0, 1600)]
    )  # fmt: skip
    assert [s["seconds_per_million_rows"] for s in linear["steps"]] == pytest.approx([1000, 1000])
    assert [s["bytes_per_row"] for s in linear["steps"]] == pytest.approx([0.1, 0.1])
    assert linear["time_linear"] is True
    assert linear["memory_at_most_linear"] is True
    quadratic = data.linearity(
        [_scaled("x1", 1000, 1.0, 100), _scaled("x4", 4000, 16.0, 100),
         _scaled("x16", 16000, 256.0, 100)]
    )  # fmt: skip
    assert quadratic["time_linear"] is False
    assert quadratic["memory_at_most_linear"] is True  # flat memory is fine
    assert data.linearity([_scaled("x1", 1000, 1.0, 1)])["time_linear"] is None


def test_pipeline_entry_orders_components_and_flags_cache():
    summary = {
        "run_id": "r1",
        "wall_seconds": 12.0,
        "components": {
            "Trainer-x": {"state": "COMPLETE", "seconds": 1.0},
            "Transform": {"state": "COMPLETE", "seconds": 6.0},
            "ImportExampleGen": {"state": "CACHED", "seconds": 0.0},
            "pretrain": {"state": "COMPLETE", "seconds": 3.0},
        },
        # Execution order, as run_summary records it; the JSON dict is sorted by name.
        "component_order": ["ImportExampleGen", "Transform", "pretrain"],
        "test_metrics": {"": {"auc": 0.7}},
    }
    e = pipeline.entry("run", summary, "x.json")
    # Listed components in execution order; unlisted ones follow by name.
    assert [c["name"] for c in e["components"]] == [
        "ImportExampleGen",
        "Transform",
        "pretrain",
        "Trainer-x",
    ]
    assert e["component_seconds_total"] == 10.0
    assert e["components"][1]["share"] == pytest.approx(0.6)
    assert e["cached_components"] == ["ImportExampleGen"]
    assert e["test_auc"] == 0.7


# ------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "train", "--batch_sizes", "0,256"],
        ["bench", "train", "--models", "stage2,bert"],
        ["bench", "train", "--xla", "maybe"],
        ["bench", "serve", "--window_seconds", "-1"],
    ],
)
def test_bad_flags_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_pipeline_without_a_source_is_an_error(tmp_path, capsys):
    status = cli.main(["bench", "pipeline", "--workdir", str(tmp_path)])
    assert status == 1
    assert "nothing to report" in capsys.readouterr().err


def test_pipeline_reports_a_summary_file(tmp_path, capsys):
    path = tmp_path / "run_summary.json"
    path.write_text(
        json.dumps(
            {
                "run_id": "r",
                "wall_seconds": 5.0,
                "components": {"Transform": {"state": "COMPLETE", "seconds": 4.0}},
            }
        )
    )
    out = tmp_path / "pipeline.json"
    assert (
        cli.main(["bench", "pipeline", "--summary", f"default={path}", "--output", str(out)]) == 0
    )
    report = json.loads(out.read_text())
    assert report["benchmark"] == "pipeline"
    assert report["results"][0]["components"][0] == {
        "name": "Transform",
        "state": "COMPLETE",
        "seconds": 4.0,
        "share": 1.0,
    }
    assert "Transform" in capsys.readouterr().out


def _train_report(date, peak, results, **extra):
    return {
        "schema_version": common.SCHEMA_VERSION,
        "benchmark": "train",
        "machine": {"cpu": "cpu-x", "usable_cpus": 2, "date_utc": date,
                    "load_average_at_start": [0.5, 0.5, 0.5], "load_average_at_end": None},
        "versions": {"tensorflow": "2.21.0"},
        "config": {"model_config": {"embedding_dim": 64}, "training": {"batch_size": 256},
                   "data": "synthetic"},
        "model_configs": {"200": {"max_seq_len": 200}},
        "matmul_peak": {"gflops": peak},
        "results": results,
        **extra,
    }  # fmt: skip


def _train_point(model, batch, seq, jit, median, fraction=None):
    point = {"model": model, "batch_size": batch, "max_seq_len": seq, "jit_compile": jit,
             "median": median}  # fmt: skip
    if fraction is not None:
        point["fraction_of_peak"] = fraction
    return point


def _write(tmp_path, name, report):
    path = tmp_path / name
    path.write_text(json.dumps(report))
    return str(path)


def test_tables_merge_a_sweep_with_the_points_it_skipped(tmp_path, capsys):
    skipped = {"model": "stage2", "batch_size": 4096, "max_seq_len": 200, "jit_compile": False,
               "predicted_seconds": 226.0, "reason": "too slow"}  # fmt: skip
    still_skipped = {**skipped, "model": "stage1", "jit_compile": True}
    sweep = _train_report(
        "2026-01-01T12:00:00Z",
        120.0,
        [
            _train_point("stage2", 1024, 200, False, 90.0, fraction=0.13),
            _train_point("din", 4096, 200, False, 1000.0, fraction=0.18),
            _train_point("din", 1024, 200, False, 950.0, fraction=0.17),
        ],
        skipped=[skipped, still_skipped],
    )
    later = _train_report(
        "2026-01-01T15:00:00Z",
        100.0,
        [
            _train_point("stage2", 4096, 200, False, 75.0, fraction=0.12),
            _train_point("din", 1024, 200, False, 900.0, fraction=0.16),
        ],
    )
    first, second = _write(tmp_path, "sweep.json", sweep), _write(tmp_path, "later.json", later)
    out = tmp_path / "merged.json"
    assert cli.main(["bench", "tables", first, second, "--output", str(out)]) == 0
    merged = json.loads(out.read_text())
    by_key = {(p["model"], p["batch_size"], p["jit_compile"]): p for p in merged["results"]}
    # The skipped point now has the later run's figures and that run's own share of peak.
    assert by_key[("stage2", 4096, False)]["median"] == 75.0
    assert by_key[("stage2", 4096, False)]["fraction_of_peak"] == 0.12
    assert by_key[("stage2", 4096, False)]["source"]["matmul_peak_gflops"] == 100.0
    # Measured twice: the later report wins, and the replacement is recorded.
    assert by_key[("din", 1024, False)]["median"] == 900.0
    assert merged["replaced"] == [
        {"point": ["din", 1024, 200, False], "old": first, "kept": second}
    ]
    assert merged["skipped"] == [still_skipped]
    # Ratios span the reports: 75 / 1000 and 90 / 900.
    sitn_din = {x["batch_size"]: x["ratio"] for x in merged["ratios"]["sitn_over_din"]}
    assert sitn_din == pytest.approx({1024: 0.1, 4096: 0.075})
    # A later run that names the per-point XLA setting in its config still merges.
    later["config"]["training"]["jit_compile"] = "auto"
    _write(tmp_path, "later.json", later)
    assert cli.main(["bench", "tables", first, second]) == 0
    text = capsys.readouterr().out
    assert "| stage2 | 4,096 |   75.00 |" in text
    assert "skipped: stage1 batch 4096 seq 200 XLA on" in text
    assert "measured twice: din batch 1024 seq 200 XLA off" in text


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda r: r["machine"].update(cpu="cpu-y"), "machine.cpu"),
        (lambda r: r["versions"].update(tensorflow="2.20.0"), "versions"),
        (lambda r: r["config"]["model_config"].update(embedding_dim=32), "config.model_config"),
        (lambda r: r["model_configs"]["200"].update(max_seq_len=100), "max_seq_len 200"),
        (lambda r: r["config"]["training"].update(batch_size=512), "config.training"),
    ],
)
def test_tables_refuse_reports_of_different_experiments(tmp_path, capsys, change, field):
    point = [_train_point("din", 256, 200, False, 1.0)]
    other = _train_report("d", 1.0, point)
    change(other)
    a = _write(tmp_path, "a.json", _train_report("d", 1.0, point))
    b = _write(tmp_path, "b.json", other)
    assert cli.main(["bench", "tables", a, b]) == 1
    err = capsys.readouterr().err
    assert f"cannot merge {a} and {b}" in err and field in err


def test_tables_name_a_report_of_another_benchmark(tmp_path, capsys):
    path = _write(tmp_path, "serve.json", {"benchmark": "serve", "results": []})
    assert cli.main(["bench", "tables", path]) == 1
    assert f"{path}: not a `bench train` report (benchmark: 'serve')" in capsys.readouterr().err


def _op_stats(rows):
    """A `framework_op_stats` output as the profiler plugin writes it: a table
    with the host's IDLE row, then the same rows without it."""
    cols = [
        {"id": name}
        for name in (
            "rank",
            "host_or_device",
            "type",
            "operation",
            "occurrences",
            "total_time",
            "total_self_time",
        )
    ]

    def table(with_idle):
        body = [("IDLE", "IDLE", 0, 900.0)] if with_idle else []
        body += rows
        return {
            "cols": cols,
            "rows": [
                {
                    "c": [
                        {"v": i + 1.0},
                        {"v": "Host"},
                        {"v": t},
                        {"v": n},
                        {"v": float(k)},
                        {"v": us},
                        {"v": us},
                    ]
                }
                for i, (t, n, k, us) in enumerate(body)
            ],
        }

    return json.dumps([table(True), table(False)]).encode()


def test_profile_tables_by_hand():
    call = "StatefulPartitionedCall/"
    rows = profile.op_rows(_op_stats([
        ("_MklEinsum", call + "gradient_tape/sitn_ranker_1/source_attention_1/einsum/Einsum_1", 4, 3000.0),
        ("Mul", call + "sitn_ranker_1/source_attention_1/mul", 4, 1000.0),
        ("Mul", call + "sitn_ranker_1/head_1/dense_0_1/mul", 2, 500.0),
        ("UnsortedSegmentSum", call + "adam/UnsortedSegmentSum", 2, 400.0),
        ("AddN", call + "AddN_7", 2, 60.0),
        ("Dataset", "Iterator::Root::Prefetch", 2, 40.0),
    ]))  # fmt: skip
    assert [r["type"] for r in rows][:2] == ["_MklEinsum", "Mul"]  # IDLE dropped
    summary = profile.summarize(rows, steps=2, model_name="sitn_ranker",
                                layer_names=["source_attention", "head"])  # fmt: skip
    total_us = 3000 + 1000 + 500 + 400 + 60 + 40
    assert summary["self_ms_per_step"] == pytest.approx(total_us / 2 / 1e3)
    assert summary["ops_per_step"] == pytest.approx((4 + 4 + 2 + 2 + 2 + 2) / 2)
    by_type = {r["key"]: r for r in summary["by_type"]}
    assert by_type["Mul"]["ms_per_step"] == pytest.approx(1.5 / 2)  # 1.5 ms over 2 steps
    assert by_type["Mul"]["count_per_step"] == pytest.approx(3.0)
    assert by_type["Mul"]["share"] == pytest.approx(1500 / total_us)
    parts = {r["key"]: r["ms_per_step"] for r in summary["by_part"]}
    assert parts == pytest.approx({
        "source_attention (backward)": 1.5, "source_attention": 0.5, "head": 0.25,
        "optimizer": 0.2, "other": 0.03, "input pipeline": 0.02,
    })  # fmt: skip
    assert [r["key"] for r in summary["by_part"]][0] == "source_attention (backward)"
    assert summary["top_ops"][0]["type"] == "_MklEinsum"
    assert summary["by_part_and_type"][1]["key"] == "source_attention: Mul"


@pytest.mark.parametrize(
    ("name", "part"),
    [
        ("StatefulPartitionedCall/din_1/target_attention_1/GatherV2", "target_attention"),
        ("StatefulPartitionedCall/gradient_tape/din_2/head_3/x", "head (backward)"),
        ("StatefulPartitionedCall/din_1/Squeeze", "model (top level)"),
        ("StatefulPartitionedCall/din_1/header_1/x", "model (top level)"),  # not `head`
        ("StatefulPartitionedCall/compile_loss/binary_crossentropy/Mean", "loss"),
        ("PartitionedCall/StatefulPartitionedCall/adam/Sqrt_5", "optimizer"),
        ("StatefulPartitionedCall/AddN_4/inputs_0", "other"),
    ],
)
def test_profile_parts_follow_the_layer_scope(name, part):
    op = {"type": "Mul", "name": name}
    assert profile.part_of(op, "din", ["target_attention", "head"]) == part


# ------------------------------------------------------------ smoke runs


def _floats(value, path="report"):
    """(path, value) of every float in a nested report."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _floats(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _floats(item, f"{path}[{i}]")
    elif isinstance(value, float):
        yield path, value


def _check_envelope(report, kind):
    assert report["schema_version"] == common.SCHEMA_VERSION
    assert report["benchmark"] == kind
    assert report["machine"]["logical_cpus"] >= 1
    assert "tensorflow" in report["versions"] or kind in ("data", "pipeline")
    assert report["results"], "no results"
    for path, number in _floats(report["results"]):
        assert math.isfinite(number), path


FIGURES = {
    "train": ("median", "achieved_gflops", "peak_rss_bytes"),
    "serve": ("examples_per_second",),
    "data": ("rows_per_second", "seconds", "peak_rss_bytes"),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("bench")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["train", "serve", "data"])
def test_quick_run_writes_positive_figures(kind, workdir):
    out = os.path.join(workdir, f"{kind}.json")
    status = cli.main(
        ["--log_level", "WARNING", "bench", kind, "--quick", "--workdir", str(workdir),
         "--output", out]
    )  # fmt: skip
    assert status == 0
    with open(out) as f:
        report = json.load(f)  # strict JSON: NaN/Infinity would fail here
    _check_envelope(report, kind)
    for result in report["results"]:
        for key in FIGURES[kind]:
            if key in result:
                assert result[key] > 0, (key, result)
    if kind == "train":
        assert report["matmul_peak"]["gflops"] > 0
        models = {r["model"] for r in report["results"]}
        assert models == {"stage1", "stage2", "din", "input", "input_stage1"}
        for r in report["results"]:
            assert len(r["examples_per_second"]) >= 3
            assert all(v > 0 for v in r["examples_per_second"])
        assert report["ratios"]["sitn_over_din"][0]["ratio"] > 0
        for r in report["results"]:
            if r["model"] in ("stage2", "din"):  # the grouped input shares histories
                assert r["candidates_per_history"] > 1
    if kind == "serve":
        latency = report["results"][0]
        assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]
        assert [r["batch_size"] for r in report["results"][1:]] == [64, 512]
        assert [r["candidates"] for r in report["candidates"]] == [1, 10]
        for r in report["candidates"]:
            assert 0 < r["p50_ms"] <= r["p99_ms"]
            assert r["candidates_per_second"] > 0 and r["single_calls_candidates_per_second"] > 0
    if kind == "data":
        assert [r["input"] for r in report["results"]] == ["synthetic-x1", "synthetic-x2"]
        assert report["results"][1]["rows"] > report["results"][0]["rows"]
        assert all(r["instances"] > 0 for r in report["results"])


@pytest.mark.slow
def test_isolated_points_run_in_their_own_processes(workdir):
    out = os.path.join(workdir, "train-isolated.json")
    status = cli.main(
        ["--log_level", "WARNING", "bench", "train", "--quick", "--isolate", "--models",
         "din,input", "--workdir", str(workdir), "--output", out]
    )  # fmt: skip
    assert status == 0
    with open(out) as f:
        report = json.load(f)
    _check_envelope(report, "train")
    assert report["config"]["isolate"] is True
    assert [r["model"] for r in report["results"]] == ["din", "input"]
    for r in report["results"]:
        assert r["median"] > 0 and r["peak_rss_bytes"] >= r["rss_at_start_bytes"] > 0
    # A fresh process starts without this one's memory: TensorFlow and the
    # harness alone, well below what this process holds after its points.
    assert report["results"][0]["rss_at_start_bytes"] < common.rss_bytes()


@pytest.mark.slow
def test_quick_profile_writes_op_tables(workdir):
    out = os.path.join(workdir, "profile.json")
    status = cli.main(
        ["--log_level", "WARNING", "bench", "profile", "--quick", "--models", "stage2,din",
         "--workdir", str(workdir), "--output", out]
    )  # fmt: skip
    assert status == 0
    with open(out) as f:
        report = json.load(f)
    _check_envelope(report, "profile")
    assert [r["model"] for r in report["results"]] == ["stage2", "din"]
    for r in report["results"]:
        assert r["wall_ms_per_step"] > 0 and r["self_ms_per_step"] > 0
        assert r["retraces_in_window"] == 0 and r["traces"] >= 1
        assert r["top_ops"] and r["by_type"] and r["by_part"]
        # The model's own layers are found in the trace, forward and backward.
        parts = {p["key"] for p in r["by_part"]}
        assert {"target_attention", "target_attention (backward)"} <= parts
        assert sum(p["share"] for p in r["by_part"]) == pytest.approx(1.0)
        assert glob.glob(os.path.join(r["trace_dir"], "plugins", "profile", "*", "*.xplane.pb"))
    with open(out[: -len(".json")] + ".md") as f:
        markdown = f.read()
    assert "## stage2, batch 32 x seq 16" in markdown and "Top ops by self time" in markdown


def test_a_failing_point_reports_its_exit_status_and_output(tmp_path):
    from pipelines.transform_run import TransformOutputs
    from sitn_tf.config import TrainingConfig

    missing = str(tmp_path / "no-transform-here")
    transform = TransformOutputs(transform_graph=missing, examples=missing, states={})
    with pytest.raises(train.PointFailed) as caught:
        train.measure_point_in_subprocess(
            "din", TINY, transform, 8, False, TrainingConfig(), dict(train.QUICK),
        )  # fmt: skip
    assert caught.value.returncode != 0
    assert "no-transform-here" in caught.value.output_tail
