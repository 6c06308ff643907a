"""The `sitn-tf` command: every command group of the three layers.

`sitn_tf` (the library) has `data`; `pipelines` (the TFX application) has
`pipeline` and `serve`; `sitn_tools` (tooling) has `experiment`, `bench` and
`retrieval`. The entry
point lives here, in the top layer, because it is the one that may see all
three. Group modules import heavy libraries only when a command runs, so
`sitn-tf --help` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sitn_tf import cli as library_cli

COMMAND_GROUPS: tuple[str, ...] = (
    *library_cli.LIBRARY_GROUPS,
    "pipelines.cli",
    "pipelines.serve_cli",
    "sitn_tools.experiment.cli",
    "sitn_tools.bench.cli",
    "sitn_tools.retrieval.cli",
)


def build_parser():
    return library_cli.build_parser(COMMAND_GROUPS)


def main(argv: Sequence[str] | None = None) -> int:
    return library_cli.main(argv, COMMAND_GROUPS)


if __name__ == "__main__":
    sys.exit(main())
