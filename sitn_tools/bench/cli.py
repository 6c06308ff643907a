"""`sitn-tf bench {train,profile,serve,data,pipeline}`: measure, print a table, write JSON;
`sitn-tf bench tables`: merge `bench train` reports into one set of grids.

Registered in `sitn_tools.cli.COMMAND_GROUPS`. TensorFlow, TFX and Beam are
imported only when a command runs, so `sitn-tf --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
from typing import Any

from pipelines import defaults

DEFAULT_WORKDIR = os.path.join(defaults.REPO_ROOT, "runs", "bench")
REAL_INTERACTIONS = os.path.join("..", "shared", "data", "amazon_books_movies", "interactions.tsv")


def _ints(value: str) -> list[int]:
    try:
        values = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {value!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {value!r}")
    return values


def _names(choices: tuple[str, ...]):
    def parse(value: str) -> list[str]:
        names = [v.strip() for v in value.split(",") if v.strip()]
        unknown = sorted(set(names) - set(choices))
        if not names or unknown:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated subset of {', '.join(choices)}, got {value!r}"
            )
        return names

    return parse


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value!r}")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value!r}")
    return number


def _common(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Tiny sizes and short windows: a smoke run (CI), not a measurement.",
    )
    parser.add_argument(
        "--output",
        help=f"JSON report path (default: WORKDIR/{name}.json, or {name}-quick.json with --quick).",
    )
    parser.add_argument(
        "--workdir",
        default=DEFAULT_WORKDIR,
        help="Cache for generated data, Transform outputs and models (default: %(default)s).",
    )


def _model_inputs(parser: argparse.ArgumentParser) -> None:
    """`--config` and `--data`: which model and data `bench train` and `bench profile` run."""
    parser.add_argument(
        "--config",
        default=os.path.join(
            defaults.REPO_ROOT, "pipelines", "configs", "amazon_books_movies.yaml"
        ),
        help="Pipeline config whose `model` and `training` sections are used "
        "(default: %(default)s).",
    )
    parser.add_argument(
        "--data",
        help="Converted dataset (`sitn-tf data ...` output) instead of the synthetic one.",
    )


def register(groups: Any) -> None:
    """Adds `bench` with its commands to the `sitn-tf` parser."""
    from sitn_tools.bench.flops import MODELS as TRAINED

    bench = groups.add_parser(
        "bench",
        help="Benchmarks: training, serving, data conversion, pipeline wall times.",
        description="Measure speed and memory of each stage; every command prints a "
        "table and writes a JSON report (machine, versions, config, every window, "
        "medians). See docs/benchmarks.md.",
        allow_abbrev=False,
    )
    commands = bench.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser(
        "train",
        help="Training throughput of stage 1, stage 2 and DIN over batch size and "
        "max_seq_len, XLA on/off, achieved vs peak GFLOP/s.",
        allow_abbrev=False,
    )
    _common(train, "train")
    train.add_argument(
        "--models",
        type=_names((*TRAINED, "input", "input_stage1")),
        default=["stage1", "stage2", "din", "input", "input_stage1"],
        help="Comma-separated subset of stage1,stage2,din,input,input_stage1 (input*: "
        "the stage-2 / stage-1 tf.data pipeline alone). Default: all.",
    )
    train.add_argument("--batch_sizes", type=_ints, help="Default 256,1024,4096 (quick: 32).")
    train.add_argument("--seq_lens", type=_ints, help="max_seq_len values; default 50,100,200.")
    train.add_argument(
        "--xla",
        choices=("off", "on", "both"),
        help="jit_compile settings to measure (default: both; off with --quick).",
    )
    train.add_argument("--windows", type=_positive_int, help="Timed windows per point (5).")
    train.add_argument(
        "--window_seconds", type=_positive_float, help="Target length of a window (1.0)."
    )
    train.add_argument(
        "--max_point_seconds",
        type=_positive_float,
        help="Time budget of a point's windows; slow points get fewer windows, "
        "never fewer than 3 (default 40).",
    )
    train.add_argument(
        "--skip_seconds",
        type=_positive_float,
        help="Skip a point whose shortest measurement (2 warm-up steps + 3 windows) would "
        "take longer, extrapolated from a smaller batch (default 120).",
    )
    train.add_argument(
        "--isolate",
        action=argparse.BooleanOptionalAction,
        help="Run every point in a fresh process, so its peak RSS is its own "
        "(default: on, off with --quick).",
    )
    train.add_argument("--matmul_size", type=_positive_int, help="Peak matmul size (2048).")
    _model_inputs(train)
    train.add_argument("--num_users", type=_positive_int, help="Synthetic users (3000).")
    train.add_argument(
        "--items_per_domain", type=_positive_int, help="Synthetic items per domain (1000)."
    )
    train.set_defaults(run=_runner("train"), user_errors=(FileNotFoundError, ValueError))

    profile = commands.add_parser(
        "profile",
        help="Where a training step's time goes: N steps of stage 2 / DIN (or stage 1) "
        "under tf.profiler, top TF ops by self time and count per step.",
        allow_abbrev=False,
    )
    _common(profile, "profile")
    profile.add_argument(
        "--models",
        type=_names(TRAINED),
        default=["stage2", "din"],
        help="Comma-separated subset of stage1,stage2,din (default: stage2,din).",
    )
    profile.add_argument("--batch_size", type=_positive_int, help="Default 256 (quick: 32).")
    profile.add_argument(
        "--seq_len", type=_positive_int, help="max_seq_len; default 50 (quick: 16)."
    )
    profile.add_argument("--steps", type=_positive_int, help="Profiled steps (20; quick: 3).")
    profile.add_argument(
        "--warmup_steps", type=_positive_int, help="Untimed steps before the trace (5; quick: 2)."
    )
    profile.add_argument("--top", type=_positive_int, help="Rows per table (25; quick: 10).")
    profile.add_argument("--xla", choices=("off", "on"), default="off", help="jit_compile (off).")
    profile.add_argument(
        "--trace_dir", help="Where the traces go (default: WORKDIR/profile-traces)."
    )
    _model_inputs(profile)
    profile.set_defaults(run=_runner("profile"), user_errors=(FileNotFoundError, ValueError))

    serve = commands.add_parser(
        "serve",
        help="serving_default latency (p50/p95/p99, batch 1) and throughput (batch 64, 512) "
        "of a SavedModel.",
        allow_abbrev=False,
    )
    _common(serve, "serve")
    serve.add_argument(
        "--model",
        help="A pushed SavedModel (e.g. runs/serving_model/sitn/<version>). Default: a "
        "ranker exported the same way from a synthetic dataset.",
    )
    serve.add_argument(
        "--examples",
        help="Raw TFRecords (glob) whose item ids fill the requests; required with --model.",
    )
    serve.add_argument(
        "--max_seq_len",
        type=_positive_int,
        help="History length of the requests (default: the model's, from "
        "assets.extra/sitn_config.json; 50 for the built model).",
    )
    serve.add_argument("--batch_sizes", type=_ints, help="Throughput batch sizes (default 64,512).")
    serve.add_argument("--windows", type=_positive_int, help="Timed windows (default 5).")
    serve.add_argument("--window_seconds", type=_positive_float, help="Window length (2.0).")
    serve.add_argument(
        "--latency_calls", type=_positive_int, help="Batch-1 calls for percentiles (1000)."
    )
    serve.add_argument(
        "--candidates",
        type=_ints,
        help="Candidates per user for the 1 user x N table (default 1,10,100,500; quick: 1,10).",
    )
    serve.set_defaults(run=_runner("serve"), user_errors=(FileNotFoundError, ValueError))

    data = commands.add_parser(
        "data",
        help="Converter throughput (rows/s) and peak memory on real and synthetic data at "
        "several scales; linearity check.",
        allow_abbrev=False,
    )
    _common(data, "data")
    data.add_argument(
        "--interactions",
        help=f"Real interactions table to convert (default: {REAL_INTERACTIONS} relative to "
        "the repository root, when present; not used with --quick unless given).",
    )
    data.add_argument("--source", default="books", help="Source domain of --interactions.")
    data.add_argument("--target", default="movies", help="Target domain of --interactions.")
    data.add_argument("--scales", type=_ints, help="Synthetic scales (default 1,4,16).")
    data.add_argument("--base_users", type=_positive_int, help="Synthetic users at scale 1 (1000).")
    data.add_argument("--repeats", type=_positive_int, help="Conversions per input (3).")
    data.set_defaults(run=_runner("data"), user_errors=(FileNotFoundError, ValueError))

    pipeline = commands.add_parser(
        "pipeline",
        help="Wall time per TFX component, from run summaries or a fresh run on the "
        "embedded default dataset.",
        allow_abbrev=False,
    )
    _common(pipeline, "pipeline")
    pipeline.add_argument(
        "--summary",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="A run_summary.json written by `sitn-tf pipeline run` (repeatable).",
    )
    pipeline.add_argument(
        "--run_default",
        action="store_true",
        help="Run the pipeline on the embedded synthetic dataset (uncached, in WORKDIR) "
        "and report it.",
    )
    pipeline.set_defaults(run=_runner("pipeline"), user_errors=(FileNotFoundError, ValueError))

    tables = commands.add_parser(
        "tables",
        help="One set of training grids from several `bench train` reports (e.g. a sweep "
        "and a later run of the points it skipped).",
        allow_abbrev=False,
    )
    tables.add_argument(
        "reports",
        nargs="+",
        metavar="REPORT",
        help="`bench train` JSON reports, earliest first; a point measured twice keeps "
        "the later report's figures.",
    )
    tables.add_argument("--output", help="Write the merged report here as JSON.")
    tables.set_defaults(run=_tables, user_errors=(FileNotFoundError, ValueError))


def _tables(args: argparse.Namespace) -> int:
    from sitn_tools.bench import tables

    tables.run(args)
    return 0


def _output(args: argparse.Namespace, name: str) -> None:
    if not args.output:
        args.output = os.path.join(
            args.workdir, f"{name}-quick.json" if args.quick else f"{name}.json"
        )


def _runner(name: str):
    """The `run` of `sitn-tf bench NAME`: imports `sitn_tools.bench.NAME` only when it runs."""

    def run(args: argparse.Namespace) -> int:
        module = importlib.import_module(f"sitn_tools.bench.{name}")
        _output(args, name)
        report = module.run(args)
        print(f"[bench {name}] report: {args.output}")
        failed = report.get("failed", []) if isinstance(report, dict) else []
        if failed:
            # The report is complete for the other points; the status tells scripts.
            print(f"[bench {name}] {len(failed)} point(s) failed; see `failed` in the report")
            return 1
        return 0

    return run
