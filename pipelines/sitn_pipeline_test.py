"""The pipeline graph, the Beam options and the Kubeflow V2 compile (no run)."""

from __future__ import annotations

import json

import pytest

from pipelines import eval_config, kubeflow_v2_runner, runner, sitn_pipeline
from sitn_tf.config import Config

SEVEN = Config.from_dict({"transform": {"max_seq_len": 7}})


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


def test_retrieval_flag_adds_a_trainer_on_the_same_transform(tmp_path):
    assert "retrieval" not in _ids(_pipeline(tmp_path))
    config = Config.from_dict({"retrieval": {"enabled": True, "top_k": 7}})
    by_id = {c.id: c for c in _pipeline(tmp_path, config=config).components}
    retrieval = by_id["retrieval"]
    assert retrieval.inputs["examples"].producer_component_id == "Transform"
    custom = json.loads(retrieval.exec_properties["custom_config"])
    assert custom["retrieval"]["top_k"] == 7
    # The rankers' settings, hence their cache, do not see the retrieval section.
    assert "retrieval" not in json.loads(by_id["finetune"].exec_properties["custom_config"])


def test_transform_only_stops_at_the_transform_with_the_same_settings(tmp_path):
    full = {c.id: c for c in _pipeline(tmp_path, config=SEVEN).components}
    pipeline = _pipeline(tmp_path, config=SEVEN, transform_only=True)
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
    config = Config.from_dict({"run": {"pretrain": False}})
    pipeline = _pipeline(tmp_path, config=config)
    assert "pretrain" not in _ids(pipeline)
    by_id = {c.id: c for c in pipeline.components}
    assert "base_model" not in by_id["finetune"].inputs
    custom = json.loads(by_id["finetune"].exec_properties["custom_config"])
    assert custom["run"]["pretrain"] is False
    # What the Trainer receives reads back into the same typed config.
    assert Config.from_custom_config(custom) == config


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
    assert not auc.HasField("threshold")  # a plain threshold would apply to every slice
    (overall,) = auc.per_slice_thresholds
    assert [list(s.feature_keys) for s in overall.slicing_specs] == [[]]
    assert overall.threshold.value_threshold.lower_bound.value == pytest.approx(0.6)
    assert overall.threshold.change_threshold.absolute.value == pytest.approx(-0.02)
    assert [list(s.feature_keys) for s in config.slicing_specs] == [
        [],
        ["target_history_bucket"],
        ["candidate_known"],
    ]
    with pytest.raises(ValueError, match="`min_auc`"):
        eval_config.eval_config(min_auc=1.5)


def test_run_config_from_file_then_flags(tmp_path):
    import argparse

    path = tmp_path / "c.json"
    path.write_text(json.dumps({"training": {"batch_size": 8}, "run": {"train_steps": 7}}))
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    args = parser.parse_args(["--config", str(path), "--eval-steps", "3", "--no-pretrain"])
    config = runner.run_config(args, default_data=False)
    assert config.training.batch_size == 8
    assert config.training.num_epochs == Config().training.num_epochs
    assert (config.run.train_steps, config.run.eval_steps, config.run.pretrain) == (7, 3, False)
    assert not config.retrieval.enabled
    args = parser.parse_args(["--config", str(path), "--retrieval"])
    assert runner.run_config(args, default_data=False).retrieval.enabled
    # No --config: converted data gets the defaults, the embedded dataset its preset.
    bare = parser.parse_args([])
    assert runner.run_config(bare, default_data=False) == Config()
    preset = runner.run_config(bare, default_data=True)
    assert (preset.model.embedding_dim, preset.run.train_steps) == (32, 600)
    path.write_text(json.dumps({"run": {"train_step": 5}}))
    with pytest.raises(ValueError, match=r"c.json: unknown field run.train_step"):
        runner.run_config(parser.parse_args(["--config", str(path)]), default_data=False)


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
