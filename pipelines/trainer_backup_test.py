"""Where a Trainer's resume backup goes: stable across executions, keyed by what it trains."""

from __future__ import annotations

from tfx import v1 as tfx

from pipelines import trainer_backup


def _fn_args(
    execution_id: int, root: str = "/runs/pipelines/sitn", **changes
) -> tfx.components.FnArgs:
    values = dict(
        train_files=[f"{root}/Transform/transformed_examples/7/Split-train/*"],
        eval_files=[f"{root}/Transform/transformed_examples/7/Split-eval/*"],
        transform_output=f"{root}/Transform/transform_graph/7",
        train_steps=100,
        eval_steps=4,
        base_model=None,
        custom_config={"training": {"seed": 1}},
        model_run_dir=f"{root}/pretrain/model_run/{execution_id}",
        serving_model_dir=f"{root}/pretrain/model/{execution_id}/Format-Serving",
    )
    values.update(changes)
    return tfx.components.FnArgs(**values)


def test_a_rerun_of_the_same_trainer_finds_the_same_folder():
    first = trainer_backup.trainer_backup(_fn_args(12), "pretrain")
    rerun = trainer_backup.trainer_backup(_fn_args(31), "pretrain")
    assert first.backup_dir == rerun.backup_dir
    assert first.backup_dir.startswith("/runs/pipelines/sitn/pretrain/resume_backup/")
    assert first.backup_inputs["train_steps"] == 100
    on_gcs = trainer_backup.trainer_backup(_fn_args(12, root="gs://b/p"), "pretrain")
    assert on_gcs.backup_dir.startswith("gs://b/p/pretrain/resume_backup/")


def test_other_inputs_or_config_get_another_folder():
    base = trainer_backup.trainer_backup(_fn_args(12), "pretrain").backup_dir
    others = [
        trainer_backup.trainer_backup(_fn_args(12, train_steps=200), "pretrain"),
        trainer_backup.trainer_backup(
            _fn_args(12, custom_config={"training": {"seed": 2}}), "pretrain"
        ),
        trainer_backup.trainer_backup(
            _fn_args(12, transform_output="/x/Transform/transform_graph/9"), "pretrain"
        ),
        trainer_backup.trainer_backup(_fn_args(12), "finetune"),
    ]
    folders = {base, *(other.backup_dir for other in others)}
    assert len(folders) == 1 + len(others)


def test_a_layout_without_a_stable_node_folder_has_no_backup():
    # Vertex AI: {root}/{project}/{job}/{task}_{id}/model_run (the job id changes on re-run).
    vertex = "gs://b/root/123/sitn-20240101/finetune_456/model_run"
    assert (
        trainer_backup.trainer_backup(_fn_args(1, model_run_dir=vertex), "finetune").backup_dir
        is None
    )
    assert trainer_backup.node_dir("/a/finetune/model_run/5/") == "/a/finetune"
    assert trainer_backup.node_dir("/a/finetune/model/5") is None
