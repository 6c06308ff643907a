"""`sitn-tf pipeline ...`: run the TFX pipeline or compile it for Kubeflow V2.

Registered in `sitn_tools.cli.COMMAND_GROUPS`; TFX is imported only when a
command runs, so `sitn_tf` itself never imports it.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(groups: Any) -> None:
    pipeline = groups.add_parser(
        "pipeline",
        help="Run the SITN TFX pipeline (ExampleGen ... Pusher).",
        description="Run the SITN TFX pipeline, or compile it for Kubeflow V2 / Vertex AI.",
        allow_abbrev=False,
    )
    commands = pipeline.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from pipelines import runner

    run = commands.add_parser(
        "run",
        help="Run the pipeline with LocalDagRunner (or --runner beam).",
        description="Run the pipeline on converted data (--data) or the embedded synthetic "
        "dataset. Options not listed here are passed to Beam.",
        allow_abbrev=False,
    )
    runner.add_arguments(run)
    run.set_defaults(run=_run, pass_through=True, user_errors=(FileNotFoundError, ValueError))

    compile_kfp = commands.add_parser(
        "compile-kubeflow",
        help="Write the Kubeflow Pipelines V2 / Vertex AI JSON spec (no run).",
        allow_abbrev=False,
    )
    compile_kfp.set_defaults(run=_compile, pass_through=True)


def _run(args: argparse.Namespace) -> int:
    from pipelines import runner

    runner.run(args, args.extra_args)
    return 0


def _compile(args: argparse.Namespace) -> int:
    from pipelines import kubeflow_v2_runner

    return kubeflow_v2_runner.main(args.extra_args)
