"""Runs the SITN pipeline locally (LocalDagRunner) or with BeamDagRunner.

The runner owns the paths. Under `--output` (default `runs/` in the repo):

    data/synthetic-default/       the embedded dataset, written on first use
    pipelines/<name>/             artifacts (pipeline_root)
    metadata/<name>/metadata.db   ML Metadata (SQLite), which also gives caching
    serving_model/<name>/<ver>/   what the Pusher pushed
    pipelines/<name>/run_summary.json   per-component wall times and test metrics

Launched through the TFX CLI (`tfx run create`), the pipeline file gets no
arguments; the environment variables SITN_DATA, SITN_OUTPUT and SITN_CONFIG
then stand in for `--data`, `--output` and `--config`.

Re-running with unchanged inputs reuses cached component outputs; a run that
was interrupted re-runs only what had not finished.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from pipelines import defaults
from sitn_tf import files

logger = logging.getLogger("sitn_tf.pipeline")


def add_arguments(parser: argparse.ArgumentParser, default_runner: str = "local") -> None:
    parser.add_argument(
        "--data",
        default=os.environ.get("SITN_DATA"),
        help="Converted data (train/, eval/, test/ of gzip TFRecords, as written by "
        "`sitn-tf data ...`). Default: $SITN_DATA, else the embedded synthetic dataset.",
    )
    parser.add_argument(
        "--output",
        default=os.environ.get("SITN_OUTPUT") or os.path.join(defaults.REPO_ROOT, "runs"),
        help="Folder for artifacts, metadata and pushed models (default: $SITN_OUTPUT, "
        "else %(default)s).",
    )
    parser.add_argument("--pipeline-name", default=defaults.PIPELINE_NAME)
    parser.add_argument("--runner", choices=("local", "beam"), default=default_runner)
    parser.add_argument(
        "--config",
        default=os.environ.get("SITN_CONFIG"),
        help="JSON or YAML file with optional sections `transform`, `model`, `training`, "
        "`run` and `retrieval` (see sitn_tf/config.py). Default: $SITN_CONFIG; without one, converted data "
        "runs with sitn_tf.config's defaults and the embedded dataset with "
        "pipelines/configs/synthetic_default.yaml.",
    )
    parser.add_argument(
        "--no-pretrain",
        action="store_true",
        help="Skip stage 1 (ablation: stage 2 from scratch).",
    )
    parser.add_argument(
        "--retrieval",
        action="store_true",
        help="Add the two-tower 'retrieval' Trainer (config `retrieval.enabled`).",
    )
    parser.add_argument("--pretrain-steps", type=int)
    parser.add_argument("--train-steps", type=int)
    parser.add_argument("--eval-steps", type=int)
    parser.add_argument("--no-cache", action="store_true", help="Disable TFX caching.")
    parser.add_argument(
        "--default-data",
        action="store_true",
        help="Use the embedded synthetic dataset, even when $SITN_DATA is set.",
    )


# The embedded synthetic dataset's settings, used when it runs without --config.
DEFAULT_DATA_CONFIG = os.path.join(
    defaults.REPO_ROOT, "pipelines", "configs", "synthetic_default.yaml"
)


def run_config(args: argparse.Namespace, *, default_data: bool):
    """The run's typed config: `--config` (or the embedded data's preset), then flags.

    Without `--config`, converted data (`--data`) runs with the defaults of
    `sitn_tf.config.Config`, the embedded synthetic dataset with
    `pipelines/configs/synthetic_default.yaml`.
    """
    # Imported here: `sitn_tf.config` loads Keras, and `sitn-tf --help` should not.
    from sitn_tf.config import load_config

    path = args.config or (DEFAULT_DATA_CONFIG if default_data else None)
    config = load_config(path)
    overrides: dict[str, Any] = {}
    for key in ("pretrain_steps", "train_steps", "eval_steps"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    if getattr(args, "no_pretrain", False):
        overrides["pretrain"] = False
    sections: dict[str, Any] = {"run": overrides} if overrides else {}
    if getattr(args, "retrieval", False):
        sections["retrieval"] = {"enabled": True}
    return config.updated(sections, source="command line") if sections else config


def ensure_default_data(output: str) -> str:
    """Writes the embedded synthetic dataset once; returns its folder."""
    from sitn_tf.data import synthetic

    data = os.path.join(output, "data", "synthetic-default")
    stats_path = os.path.join(data, "stats.json")
    status = None
    if os.path.exists(stats_path):
        with open(stats_path) as f:
            status = json.load(f).get("status")
    if status != "ok":
        print(f"[sitn] writing the embedded synthetic dataset to {data}", flush=True)
        synthetic.write_default_synthetic(data)
    return data


# Warnings TFX 1.21 prints on every resolver query with this ML Metadata
# build (no ZetaSQL): harmless, and they bury the progress lines.
_KNOWN_NOISE = (
    "Fallback to non-ZetaSQL contexts execution query",
    "ArtifactQuery.property_predicate is not supported",
)


class _QuietAbslInfo(logging.Filter):
    """Keeps TFX's INFO chatter (pipeline protos, Beam plans) off the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "absl":
            return True
        return record.levelno >= logging.WARNING and not record.getMessage().startswith(
            _KNOWN_NOISE
        )


@contextlib.contextmanager
def quiet_absl_info() -> Iterator[None]:
    """`_QuietAbslInfo` on the root logger's handlers while a pipeline runs."""
    quiet = _QuietAbslInfo()
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)


def run(args: argparse.Namespace, beam_args: Sequence[str] = ()) -> dict[str, Any]:
    from tfx import v1 as tfx

    from pipelines import sitn_pipeline

    output = os.path.abspath(args.output)
    if args.runner == "beam":
        from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

        dag_runner = BeamDagRunner()
    else:
        dag_runner = tfx.orchestration.LocalDagRunner()
    # `tfx pipeline create` executes this file with `run` patched into a
    # recorder: build the graph and hand it over, without running anything.
    compile_only = hasattr(type(dag_runner).run, "__wrapped__")

    default_data = not (args.data and not args.default_data)
    config = run_config(args, default_data=default_data)
    if not default_data:
        data = os.path.abspath(args.data)
    elif compile_only:
        data = os.path.join(output, "data", "synthetic-default")
    else:
        data = ensure_default_data(output)
    for split in () if compile_only else defaults.SPLITS:
        if not os.path.isdir(os.path.join(data, split)):
            raise FileNotFoundError(
                f"{data} has no '{split}/' folder: expected the output of `sitn-tf data ...`"
            )
    name = args.pipeline_name
    pipeline_root = os.path.join(output, "pipelines", name)
    metadata_path = os.path.join(output, "metadata", name, "metadata.db")
    serving_dir = os.path.join(output, "serving_model", name)
    pipeline = sitn_pipeline.create_pipeline(
        pipeline_name=name,
        pipeline_root=pipeline_root,
        data_root=data,
        serving_model_dir=serving_dir,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata_path
        ),
        config=config,
        beam_pipeline_args=sitn_pipeline.merge_beam_args([*config.run.beam_args, *beam_args]),
        enable_cache=not args.no_cache,
    )
    if compile_only:
        dag_runner.run(pipeline)
        return {"compiled_only": True}

    from pipelines.progress import ProgressMonitor

    print(f"[sitn] pipeline '{name}' ({args.runner} runner) on {data}", flush=True)
    os.makedirs(os.path.dirname(metadata_path), exist_ok=True)
    monitor = ProgressMonitor(metadata_path, name)
    monitor.start()
    start = time.monotonic()
    try:
        with quiet_absl_info():
            dag_runner.run(pipeline)
    finally:
        monitor.stop()
    wall = time.monotonic() - start

    from pipelines import run_summary

    summary = run_summary.summarize(metadata_path, name)
    summary.update(
        {
            "wall_seconds": round(wall, 1),
            "data": data,
            "runner": args.runner,
            "config": config.to_dict(),
        }
    )
    os.makedirs(pipeline_root, exist_ok=True)
    files.write_json(os.path.join(pipeline_root, "run_summary.json"), summary)
    print(run_summary.format_summary(summary), flush=True)
    return summary


def main(argv: Sequence[str] | None = None, default_runner: str = "local") -> int:
    parser = argparse.ArgumentParser(
        description="Run the SITN TFX pipeline. Options it does not know are Beam options."
    )
    add_arguments(parser, default_runner=default_runner)
    args, beam_args = parser.parse_known_args(argv)
    try:
        run(args, beam_args)
    except (FileNotFoundError, ValueError) as err:
        print(f"sitn pipeline: error: {err}", file=sys.stderr)
        return 1
    return 0
