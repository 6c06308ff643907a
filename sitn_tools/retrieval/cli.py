"""`sitn-tf retrieval timirec|ssl ...`: the retrieval studies over seeds.

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


def _common_arguments(parser: argparse.ArgumentParser, defaults: Any, variants) -> None:
    """The data, seed and training arguments every retrieval study takes."""
    from sitn_tools.retrieval.runner import DATASETS

    parser.add_argument("--dataset", default="synthetic", choices=("synthetic", *sorted(DATASETS)))
    parser.add_argument(
        "--cross-domain",
        action="store_true",
        help="Keep the source domain's clicks in the histories (real sets only).",
    )
    parser.add_argument(
        "--data-dir",
        default=defaults.data_dir,
        help="Folder of the real sets (relative: from the repository root).",
    )
    parser.add_argument("--seeds", type=_ints, default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", type=_names, default=list(variants))
    for field in (
        "max_len",
        "embedding_dim",
        "batch_size",
        "max_epochs",
        "patience",
        "synthetic_users",
        "synthetic_clusters",
        "synthetic_items_per_cluster",
        "synthetic_data_seed",
    ):
        parser.add_argument(
            f"--{field.replace('_', '-')}", type=int, default=getattr(defaults, field)
        )
    parser.add_argument("--output", help="Results folder (default: runs/retrieval/<name>).")


def register(groups: Any) -> None:
    from sitn_tools.retrieval import ssl_study
    from sitn_tools.retrieval.runner import VARIANTS, Settings

    parser = groups.add_parser(
        "retrieval",
        help="Candidate retrieval studies (TiMiRec, self-supervised two towers, baselines).",
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
    _common_arguments(timirec, defaults, VARIANTS)
    timirec.add_argument(
        "--temperatures",
        type=_floats,
        default=defaults.temperatures,
        help="T values tried on the eval split of the first seed (one value: fixed).",
    )
    timirec.add_argument("--num-interests", type=int, default=defaults.num_interests)
    timirec.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    timirec.add_argument(
        "--work-dir", help="Weights folder (default: inside the results folder of runs/)."
    )
    timirec.set_defaults(run=_run, user_errors=(FileNotFoundError, ValueError))

    ssl = studies.add_parser(
        "ssl",
        help="Two towers with self-supervised item towers (RFM, CFM) vs baseline, FD, SO.",
        description="Choose each variant's hyper-parameters on the eval split of the first "
        "seed, train every variant over the seeds with early stopping on eval Recall@50, "
        "score Recall@10/50 on the head and tail of the corpus on test, and write "
        "results.json and results.md. Finished runs are reused.",
        allow_abbrev=False,
    )
    ssl_defaults = ssl_study.SslSettings()
    _common_arguments(ssl, ssl_defaults, ssl_study.VARIANTS)
    for field in (
        "learning_rates",
        "temperatures",
        "ssl_weights",
        "spread_out_weights",
        "feature_dropouts",
    ):
        ssl.add_argument(
            f"--{field.replace('_', '-')}",
            type=_floats,
            default=getattr(ssl_defaults, field),
            help="Values tried on the eval split of the first seed.",
        )
    ssl.add_argument("--head-share", type=float, default=ssl_defaults.head_share)
    ssl.set_defaults(run=_run_ssl, user_errors=(FileNotFoundError, ValueError))


def _settings(cls, args: argparse.Namespace):
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in fields and v is not None})


def _run(args: argparse.Namespace) -> int:
    from sitn_tools.retrieval import runner

    settings = _settings(runner.Settings, args)
    runner.run(settings, args.seeds, args.variants, output=args.output, work_dir=args.work_dir)
    return 0


def _run_ssl(args: argparse.Namespace) -> int:
    from sitn_tools.retrieval import ssl_study

    ssl_study.run(_settings(ssl_study.SslSettings, args), args.seeds, args.variants, args.output)
    return 0
