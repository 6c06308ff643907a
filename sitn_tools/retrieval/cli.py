"""`sitn-tf retrieval timirec ...`: TiMiRec's comparison over seeds.

Registered in `sitn_tools.cli.COMMAND_GROUPS`; TensorFlow loads only when the
command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from err


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from err


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def register(groups: Any) -> None:
    from sitn_tools.retrieval.runner import DATASETS, VARIANTS, Settings

    parser = groups.add_parser(
        "retrieval",
        help="Candidate retrieval studies (TiMiRec and its baselines).",
        description="Candidate retrieval studies over the full target-domain corpus.",
        allow_abbrev=False,
    )
    studies = parser.add_subparsers(dest="study", metavar="STUDY", required=True)
    timirec = studies.add_parser(
        "timirec",
        help="gru4rec, comirec, timirec, joint_train and no_stopgrad over seeds.",
        description="Train every variant over the seeds with early stopping on the eval split, "
        "score each once on the test split, and write results.json and results.md. "
        "Finished runs are reused, so an interrupted grid resumes.",
        allow_abbrev=False,
    )
    defaults = Settings()
    timirec.add_argument("--dataset", default="synthetic", choices=("synthetic", *sorted(DATASETS)))
    timirec.add_argument(
        "--cross-domain",
        action="store_true",
        help="Keep the source domain's clicks in the histories (real sets only).",
    )
    timirec.add_argument(
        "--data-dir",
        default=defaults.data_dir,
        help="Folder of the real sets (relative: from the repository root).",
    )
    timirec.add_argument("--seeds", type=_ints, default=[0, 1, 2, 3, 4])
    timirec.add_argument("--variants", type=_names, default=list(VARIANTS))
    timirec.add_argument(
        "--temperatures",
        type=_floats,
        default=defaults.temperatures,
        help="T values tried on the eval split of the first seed (one value: fixed).",
    )
    for field in (
        "max_len",
        "embedding_dim",
        "num_interests",
        "batch_size",
        "max_epochs",
        "patience",
        "synthetic_users",
    ):
        timirec.add_argument(
            f"--{field.replace('_', '-')}", type=int, default=getattr(defaults, field)
        )
    timirec.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    timirec.add_argument("--output", help="Results folder (default: runs/retrieval/<name>).")
    timirec.add_argument(
        "--work-dir", help="Weights folder (default: inside the results folder of runs/)."
    )
    timirec.set_defaults(run=_run, user_errors=(FileNotFoundError, ValueError))


def _run(args: argparse.Namespace) -> int:
    from sitn_tools.retrieval import runner

    fields = {f.name for f in dataclasses.fields(runner.Settings)}
    settings = runner.Settings(
        **{k: v for k, v in vars(args).items() if k in fields and v is not None}
    )
    runner.run(settings, args.seeds, args.variants, output=args.output, work_dir=args.work_dir)
    return 0
