"""`sitn-tf serve`: TF Serving's REST API for the pushed model (see `pipelines.server`).

Registered in `sitn_tools.cli.COMMAND_GROUPS`; TensorFlow and KServe are
imported only when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(groups: Any) -> None:
    serve = groups.add_parser(
        "serve",
        help="Serve pushed SavedModels over TF Serving's REST API (KServe ModelServer).",
        description="Serve the highest version under --model_base_path over TF Serving's "
        "REST API (GET /v1/models/<name>[/metadata], POST /v1/models/<name>[/versions/<v>]"
        ":predict), picking up versions pushed later. SIGTERM drains requests in flight.",
        allow_abbrev=False,
    )
    # The flags are defined beside the server; importing it here would load
    # TensorFlow for every `sitn-tf --help`.
    _add_arguments(serve)
    serve.set_defaults(run=_run, user_errors=(FileNotFoundError, ValueError))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model_base_path",
        required=True,
        help="Folder of numbered SavedModel versions, as the Pusher writes it "
        "(e.g. runs/serving_model/sitn).",
    )
    parser.add_argument("--model_name", default="sitn", help="Name in the URL (default: sitn).")
    parser.add_argument("--port", type=int, default=8501, help="REST port (default: 8501).")
    parser.add_argument(
        "--host", default="0.0.0.0", help="Address to listen on (default: all, as TF Serving)."
    )
    parser.add_argument(
        "--max_batch_size",
        type=int,
        default=1024,
        help="Largest batch a request may carry; larger ones get HTTP 400 (default: %(default)s).",
    )
    parser.add_argument(
        "--file_system_poll_wait_seconds",
        type=float,
        default=1.0,
        help="How often to look for a newly pushed version; 0: never (default: 1).",
    )
    parser.add_argument(
        "--grace_seconds",
        type=int,
        default=30,
        help="On SIGTERM, how long requests in flight may take to finish (default: 30).",
    )
    parser.add_argument(
        "--access_log", action="store_true", help="Log a line per request (off by default)."
    )


def _run(args: argparse.Namespace) -> int:
    from pipelines import server

    return server.run(args)
