"""The SITN TFX pipeline.

    ImportExampleGen -> StatisticsGen -> ImportSchemaGen -> ExampleValidator
      -> AnomaliesGate -> Transform -> Trainer "pretrain" (stage 1)
      -> Trainer "finetune" (stage 2, base_model = pretrain) -> Evaluator -> Pusher
      -> Trainer "retrieval" (optional, `retrieval.enabled`: two-tower candidate
         retrieval over the same Transform output; its metrics are in the run
         summary, its SavedModel serves `retrieve`)

`create_pipeline(...)` is pure: it only builds the graph. Running this file
runs it with `LocalDagRunner` (or `BeamDagRunner` with `--runner beam`) on
the embedded synthetic dataset, or on converted data with `--data DIR`; the
runner owns every path (default: `runs/` in the repository). It is also the
`--pipeline_path` of `tfx pipeline create --engine local`;
`pipelines/beam_runner.py` is the one for `--engine beam`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

if __package__ in (None, ""):  # run as a script (`python pipelines/sitn_pipeline.py`, tfx CLI)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfx import v1 as tfx

from pipelines import eval_config as eval_config_lib
from pipelines.components import AnomaliesGate
from pipelines.defaults import PIPELINE_NAME, REPO_ROOT, SCHEMA_PATH, SPLITS  # noqa: F401
from sitn_tf.config import Config

PREPROCESSING_FN = "sitn_tf.preprocessing.preprocessing_fn"
PRETRAIN_RUN_FN = "pipelines.pretrain_trainer.run_fn"
FINETUNE_RUN_FN = "pipelines.finetune_trainer.run_fn"
RETRIEVAL_RUN_FN = "pipelines.retrieval_trainer.run_fn"

# Beam defaults: all local cores in separate processes. Any option given by
# the caller overrides these (e.g. --runner=DataflowRunner --project=...).
DEFAULT_BEAM_ARGS = ("--direct_running_mode=multi_processing", "--direct_num_workers=0")


def merge_beam_args(overrides: Sequence[str] = ()) -> list[str]:
    """DEFAULT_BEAM_ARGS, then `overrides`; a later `--name=value` replaces an earlier one."""
    merged: dict[str, str] = {}
    for i, arg in enumerate([*DEFAULT_BEAM_ARGS, *overrides]):
        # "--flag value" pairs and positionals keep their place under a unique key.
        key = arg.split("=", 1)[0] if arg.startswith("--") and "=" in arg else f"#{i}"
        merged.pop(key, None)
        merged[key] = arg
    return list(merged.values())


def create_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    serving_model_dir: str,
    config: Config | None = None,
    schema_path: str = SCHEMA_PATH,
    metadata_connection_config: Any | None = None,
    beam_pipeline_args: Sequence[str] | None = None,
    enable_cache: bool = True,
    transform_only: bool = False,
) -> tfx.dsl.Pipeline:
    """Builds the SITN pipeline graph; no I/O happens here.

    Args:
        data_root: converted data with `train/`, `eval/` and `test/` folders of
            gzip TFRecords (`sitn-tf data ...` writes them).
        config: the run's `sitn_tf.config.Config` (default: `Config()`). Its
            `transform` section goes to the Transform, its `custom_config()`
            to both Trainers; `run.pretrain` False drops the "pretrain"
            Trainer (the paper's "w/o L_i2c & L_i2i"); `run` also holds the
            step budgets and the Evaluator's blessing thresholds. The
            Beam options are `beam_pipeline_args` (the runner merges
            `run.beam_args` into them).
        transform_only: stop after the Transform (ExampleGen ... Transform):
            `sitn-tf experiment` and `sitn-tf bench` share one Transform
            output among their training runs (`pipelines.transform_run`).
    """
    config = config or Config()
    run = config.run
    trainer_config = config.custom_config()

    example_gen = tfx.components.ImportExampleGen(
        input_base=data_root,
        input_config=tfx.proto.Input(
            splits=[tfx.proto.Input.Split(name=s, pattern=f"{s}/*") for s in SPLITS]
        ),
    )
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_path)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    anomalies_gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"])
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=trainer_config["transform"],
        splits_config=tfx.proto.SplitsConfig(analyze=["train"], transform=list(SPLITS)),
    )
    transform.add_upstream_node(anomalies_gate)
    components: list[Any] = [
        example_gen,
        statistics_gen,
        schema_gen,
        example_validator,
        anomalies_gate,
        transform,
    ]

    def pipeline(components: list[Any]) -> tfx.dsl.Pipeline:
        return tfx.dsl.Pipeline(
            pipeline_name=pipeline_name,
            pipeline_root=pipeline_root,
            components=components,
            metadata_connection_config=metadata_connection_config,
            beam_pipeline_args=list(beam_pipeline_args or ()),
            enable_cache=enable_cache,
        )

    if transform_only:
        return pipeline(components)

    def trainer(run_fn: str, steps: int, base_model=None) -> tfx.components.Trainer:
        return tfx.components.Trainer(
            run_fn=run_fn,
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            base_model=base_model,
            train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=steps),
            eval_args=tfx.proto.EvalArgs(splits=["eval"], num_steps=run.eval_steps),
            custom_config=trainer_config,
        )

    base_model = None
    if config.pretrains:
        pretrainer = trainer(PRETRAIN_RUN_FN, run.pretrain_steps).with_id("pretrain")
        components.append(pretrainer)
        base_model = pretrainer.outputs["model"]
    finetune = trainer(FINETUNE_RUN_FN, run.train_steps, base_model).with_id("finetune")

    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=finetune.outputs["model"],
        baseline_model=baseline.outputs["model"],
        schema=schema_gen.outputs["schema"],
        example_splits=["test"],
        eval_config=eval_config_lib.eval_config(min_auc=run.min_auc, max_auc_drop=run.max_auc_drop),
    )
    pusher = tfx.components.Pusher(
        model=finetune.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_model_dir)
        ),
    )
    components += [finetune, baseline, evaluator, pusher]
    if config.retrieval.enabled:
        # Early stopping on eval Recall@50 bounds its training, not a step budget.
        retrieval = tfx.components.Trainer(
            run_fn=RETRIEVAL_RUN_FN,
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            train_args=tfx.proto.TrainArgs(splits=["train"]),
            eval_args=tfx.proto.EvalArgs(splits=["eval"]),
            custom_config=config.retrieval_custom_config(),
        ).with_id("retrieval")
        components.append(retrieval)
    return pipeline(components)


def main(argv: Sequence[str] | None = None, default_runner: str = "local") -> int:
    """Runs the pipeline; see `pipelines/runner.py` for the options."""
    from pipelines import runner

    return runner.main(argv, default_runner=default_runner)


if __name__ == "__main__":
    sys.exit(main())
