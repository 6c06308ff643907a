"""The pipeline graph, the Beam options and the Kubeflow V2 compile (no run)."""

from __future__ import annotations

import json

import pytest

from pipelines import eval_config, kubeflow_v2_runner, runner, sitn_pipeline


def _pipeline(tmp_path, **kwargs):
    return sitn_pipeline.create_pipeline(
        pipeline_name="t",
        pipeline_root=str(tmp_path / "root"),
        data_root=str(tmp_path / "data"),
        serving_model_dir=str(tmp_path / "serving"),
        **kwargs,
    )


def _ids(pipeline):
    return [c.id for c in pipeline.components]


def test_graph_has_both_trainers_and_finetune_takes_the_pretrained_model(tmp_path):
    pipeline = _pipeline(tmp_path)
    ids = _ids(pipeline)  # topologically sorted by TFX
    assert set(ids) == {
        "ImportExampleGen",
        "StatisticsGen",
        "ImportSchemaGen",
        "ExampleValidator",
        "AnomaliesGate",
        "Transform",
        "pretrain",
        "finetune",
        "latest_blessed_model_resolver",
        "Evaluator",
        "Pusher",
    }
    order = [
        "ExampleValidator",
        "AnomaliesGate",
        "Transform",
        "pretrain",
        "finetune",
        "Evaluator",
        "Pusher",
    ]
    assert sorted(order, key=ids.index) == order
    by_id = {c.id: c for c in pipeline.components}
    base = by_id["finetune"].inputs["base_model"]
    assert base.producer_component_id == "pretrain"
    assert "AnomaliesGate" in {n.id for n in by_id["Transform"].upstream_nodes}
    assert not (tmp_path / "root").exists()  # building the graph does no I/O


def test_transform_only_stops_at_the_transform_with_the_same_settings(tmp_path):
    full = {c.id: c for c in _pipeline(tmp_path, transform_config={"max_seq_len": 7}).components}
    pipeline = _pipeline(tmp_path, transform_config={"max_seq_len": 7}, transform_only=True)
    assert set(_ids(pipeline)) == {
        "ImportExampleGen",
        "StatisticsGen",
        "ImportSchemaGen",
        "ExampleValidator",
        "AnomaliesGate",
        "Transform",
    }
    assert _ids(pipeline)[-1] == "Transform"
    transform = {c.id: c for c in pipeline.components}["Transform"]
    assert transform.exec_properties == full["Transform"].exec_properties
    assert "AnomaliesGate" in {n.id for n in transform.upstream_nodes}


def test_no_pretrain_ablation_skips_the_first_trainer(tmp_path):
    pipeline = _pipeline(tmp_path, pretrain=False)
    assert "pretrain" not in _ids(pipeline)
    by_id = {c.id: c for c in pipeline.components}
    assert "base_model" not in by_id["finetune"].inputs
    config = by_id["finetune"].exec_properties["custom_config"]
    assert json.loads(config)["model"]["pretrain"] is False


def test_beam_defaults_are_overridable():
    assert sitn_pipeline.merge_beam_args() == list(sitn_pipeline.DEFAULT_BEAM_ARGS)
    merged = sitn_pipeline.merge_beam_args(
        ["--direct_running_mode=in_memory", "--runner=DataflowRunner", "--project", "p"]
    )
    assert merged == [
        "--direct_num_workers=0",
        "--direct_running_mode=in_memory",
        "--runner=DataflowRunner",
        "--project",
        "p",
    ]


def test_eval_config_metrics_slices_and_thresholds():
    config = eval_config.eval_config(min_auc=0.6, max_auc_drop=0.02)
    names = [m.class_name for m in config.metrics_specs[0].metrics]
    for name in ("AUC", "BinaryCrossEntropy", "Calibration", "ExampleCount", "MeanLabel"):
        assert name in names
    auc = next(m for m in config.metrics_specs[0].metrics if m.class_name == "AUC")
    assert auc.threshold.value_threshold.lower_bound.value == pytest.approx(0.6)
    assert auc.threshold.change_threshold.absolute.value == pytest.approx(-0.02)
    assert [list(s.feature_keys) for s in config.slicing_specs] == [[], ["target_history_bucket"]]
    with pytest.raises(ValueError, match="`min_auc`"):
        eval_config.eval_config(min_auc=1.5)


def test_run_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train_step": 5}))
    with pytest.raises(ValueError, match="train_step"):
        runner.load_config(str(path))
    path.write_text(json.dumps({"training": {"batch_size": 8}, "train_steps": 7}))
    config = runner.load_config(str(path))
    assert config["training"]["batch_size"] == 8
    assert config["training"]["num_epochs"] == runner.DEFAULT_RUN["training"]["num_epochs"]
    assert config["train_steps"] == 7


def test_kubeflow_v2_compile(tmp_path):
    out = tmp_path / "spec.json"
    kubeflow_v2_runner.main(
        [
            "--output",
            str(out),
            "--image",
            "registry.example/sitn-tf:test",
            "--pipeline-root",
            "gs://b/root",
            "--data",
            "gs://b/data",
        ]
    )
    spec = json.loads(out.read_text())["pipelineSpec"]
    tasks = set(spec["root"]["dag"]["tasks"])
    for node in ("ImportExampleGen", "Transform", "pretrain", "finetune", "Evaluator", "Pusher"):
        assert node in tasks
    images = {
        e["container"]["image"]
        for e in spec["deploymentSpec"]["executors"].values()
        if "container" in e
    }
    assert images == {"registry.example/sitn-tf:test"}


def test_quiet_absl_info_filters_only_while_active():
    import logging

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Keep()
    root = logging.getLogger()
    root.addHandler(handler)
    absl = logging.getLogger("absl")
    try:
        with runner.quiet_absl_info():
            absl.error("kept: a warning or worse")
            absl.handle(absl.makeRecord("absl", logging.INFO, "f", 1, "dropped info", (), None))
            absl.handle(
                absl.makeRecord(
                    "absl", logging.WARNING, "f", 1, f"{runner._KNOWN_NOISE[0]}: x", (), None
                )
            )
        absl.handle(absl.makeRecord("absl", logging.INFO, "f", 1, "after: kept", (), None))
    finally:
        root.removeHandler(handler)
    assert records == ["kept: a warning or worse", "after: kept"]
    assert not handler.filters
