"""Where a Trainer keeps the backup that lets its re-run continue a killed training.

A pipeline killed during a Trainer and run again re-executes that Trainer
(the components before it come from the cache), but TFX gives the new
execution new output URIs: `{pipeline_root}/{node_id}/{output}/{execution_id}`
with the local and Beam orchestrators. A backup inside the Model or
ModelRun artifact would be invisible to the re-run, and FnArgs offers no
folder that outlives an execution (the executor's temporary folder and the
orchestrator's `stateful_working_dir` are per execution too). So the backup
goes beside the outputs, in the node's own folder:

    {pipeline_root}/{node_id}/resume_backup/{key}/

`key` hashes everything that decides the training: the `custom_config`
(the whole `Config`), the step budgets, the input artifacts' URIs
(transformed examples, Transform graph, base model). A cached Transform
keeps its artifacts, so the re-run of a killed Trainer finds the same key;
changed data or config give another key and start from scratch. The library
checks the same again (`sitn_tf.training.resume`: a backup of another
training is refused). `sitn_tf.training` deletes the folder when training
ends; the folder of a killed run whose config then changed stays until
the pipeline root is cleaned.

With another layout (Kubeflow V2 / Vertex AI, whose URIs hold the job's
id, so nothing outlives a job), `backup_dir` returns None and the Trainer
trains from step 0 as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import posixpath
from typing import Any

from tfx import v1 as tfx

from sitn_tf import files

logger = logging.getLogger(__name__)

BACKUP_FOLDER = "resume_backup"
MODEL_RUN_OUTPUT = "model_run"


@dataclasses.dataclass(frozen=True)
class TrainerBackup:
    """A Trainer's `backup_dir` (None: no resume) and the `backup_inputs` it is keyed by."""

    backup_dir: str | None
    backup_inputs: dict[str, Any]


def backup_inputs(fn_args: tfx.components.FnArgs, stage: str) -> dict[str, Any]:
    """What decides a Trainer's training, as JSON-safe values."""
    return {
        "stage": stage,
        "custom_config": fn_args.custom_config or {},
        "train_files": list(fn_args.train_files or []),
        "eval_files": list(fn_args.eval_files or []),
        "transform_output": fn_args.transform_output,
        "train_steps": fn_args.train_steps,
        "eval_steps": fn_args.eval_steps,
        "base_model": fn_args.base_model,
    }


def node_dir(model_run_dir: str) -> str | None:
    """`{pipeline_root}/{node_id}` from `.../{node_id}/model_run/{execution_id}`, else None."""
    run_dir = model_run_dir.rstrip("/")
    execution_id = posixpath.basename(run_dir)
    output_dir = posixpath.dirname(run_dir)
    if not execution_id.isdigit() or posixpath.basename(output_dir) != MODEL_RUN_OUTPUT:
        return None
    return posixpath.dirname(output_dir)


def trainer_backup(fn_args: tfx.components.FnArgs, stage: str) -> TrainerBackup:
    """The backup folder of this Trainer and these inputs (see the module docstring)."""
    inputs = backup_inputs(fn_args, stage)
    node = node_dir(fn_args.model_run_dir or "")
    if node is None:
        logger.info(
            "model_run_dir %s is not {node}/model_run/{execution id}: no resume backup",
            fn_args.model_run_dir,
        )
        return TrainerBackup(None, inputs)
    key = hashlib.sha256(files.dumps_json(inputs).encode()).hexdigest()[:16]
    return TrainerBackup(posixpath.join(node, BACKUP_FOLDER, key), inputs)
