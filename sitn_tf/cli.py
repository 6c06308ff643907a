"""Command-line machinery, and `python -m sitn_tf` (the library's own commands).

The library's only command group is `data` (the converter). The full
`sitn-tf` command, which adds the TFX pipeline, the experiments and the
benchmarks, is `sitn_tools.cli`: it passes all groups to `main` here, so the
library never imports the layers above it.

Each command group (`sitn-tf data ...`, ...) lives in its own module exposing
`register(groups)`, which adds one sub-parser to `groups` and sets defaults:

  * `run` (required): `run(args) -> int | None`, the command.
  * `pass_through` (optional): when true, options this CLI does not know are
    collected in `args.extra_args` (e.g. Beam pipeline options) instead of
    being an error.
  * `user_errors` (optional): exception types that mean bad input or flags;
    they print as one-line errors (exit status 1) instead of tracebacks.

To add a group, add its module to the `groups` given to `main`. Group modules should
import heavy libraries inside `run`, so that `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

import sitn_tf

LIBRARY_GROUPS: tuple[str, ...] = ("sitn_tf.data.cli",)


def build_parser(groups_modules: Sequence[str] = LIBRARY_GROUPS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sitn-tf",
        description=(
            "SITN (Self-Supervised Interest Transfer Network) for cross-domain CTR prediction."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"sitn-tf {sitn_tf.__version__}")
    parser.add_argument(
        "--log_level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="Log level of sitn_tf messages (other libraries log warnings).",
    )
    groups = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    for module in groups_modules:
        importlib.import_module(module).register(groups)
    return parser


def main(argv: Sequence[str] | None = None, groups: Sequence[str] = LIBRARY_GROUPS) -> int:
    parser = build_parser(groups)
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "pass_through", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra_args = list(extra)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("sitn_tf").setLevel(args.log_level)
    user_errors = tuple(getattr(args, "user_errors", ()))
    try:
        status = args.run(args)
    except user_errors as err:  # type: ignore[misc]
        print(f"sitn-tf {args.group}: error: {err}", file=sys.stderr)
        return 1
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
