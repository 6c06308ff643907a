"""`sitn-tf experiment --config FILE`: the paper's comparison, all variants x seeds.

Registered in `sitn_tools.cli.COMMAND_GROUPS`; TensorFlow and TFX load only when
the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from err


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def register(groups: Any) -> None:
    parser = groups.add_parser(
        "experiment",
        help="Run the paper's comparison (Tables 2-4, Figure 3) over several seeds.",
        description="Train every variant of an experiment config over its seeds on one "
        "converted and transformed dataset, score each on the test split once, and write "
        "results.json, results.md, auc.png, clusters_tsne.png and clusters.json. "
        "Finished runs are reused, so an interrupted experiment resumes.",
        allow_abbrev=False,
    )
    parser.add_argument("--config", required=True, help="Experiment YAML/JSON file.")
    parser.add_argument(
        "--output", help="Output folder (default: runs/experiments/<name> in the repository)."
    )
    parser.add_argument("--seeds", type=_ints, help="Override the seeds, e.g. 1,2,3.")
    parser.add_argument("--variants", type=_names, help="Override the variants, e.g. din,sitn.")
    parser.add_argument(
        "--report-dir", help="Also copy the report files here (overrides `report_dir`)."
    )
    parser.set_defaults(run=_run, user_errors=(FileNotFoundError, ValueError))


def _run(args: argparse.Namespace) -> int:
    from sitn_tools.experiment import runner

    runner.run(
        args.config,
        output=args.output,
        seeds=args.seeds,
        variants=args.variants,
        report_dir=args.report_dir,
    )
    return 0
