"""`sitn-tf bench pipeline`: wall time per TFX component.

Sources of figures:

* `--summary LABEL=PATH`: a `run_summary.json` that `sitn-tf pipeline run`
  writes next to the pipeline's artifacts (per-component times read from ML
  Metadata by `pipelines.run_summary`), e.g. of the Amazon Books -> Movies
  run `sitn-tf pipeline run --data DIR --config
  pipelines/configs/amazon_books_movies.yaml`;
* `--run_default`: runs the pipeline now (`pipelines.runner.run`, local
  runner, cache off) on the embedded synthetic dataset in the work folder,
  and reports that run.

A component's time is its execution's span in ML Metadata (creation to last
update): launcher overhead included, waiting for upstream components not.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from sitn_tools.bench import common


def _parse_summary_arg(value: str) -> tuple[str, str]:
    label, sep, path = value.partition("=")
    if not sep or not label.strip() or not path.strip():
        raise ValueError(f"--summary expects LABEL=PATH, got {value!r}")
    return label.strip(), path.strip()


def _load(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"no run summary at {path}")
    with open(path) as f:
        summary = json.load(f)
    if "components" not in summary:
        raise ValueError(f"{path} is not a pipeline run summary (no `components`)")
    return summary


def run_default(workdir: str) -> dict[str, Any]:
    """Runs the pipeline on the embedded dataset without cache; returns its summary."""
    from pipelines import runner

    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    args = parser.parse_args(
        ["--output", os.path.join(workdir, "pipeline-default"), "--default-data", "--no-cache"]
    )
    return runner.run(args)


def _ordered(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Components in execution order (`component_order`); summaries without it, by name."""
    components = summary["components"]
    order = [n for n in summary.get("component_order", ()) if n in components]
    order += sorted(n for n in components if n not in order)
    return [(name, components[name]) for name in order]


def entry(label: str, summary: dict[str, Any], source: str) -> dict[str, Any]:
    """One run's components with seconds and share of the summed component time."""
    components = summary["components"]
    total = sum(float(c["seconds"]) for c in components.values())
    overall = summary.get("test_metrics", {}).get("", {})
    return {
        "label": label,
        "source": source,
        "run_id": summary.get("run_id"),
        "wall_seconds": summary.get("wall_seconds"),
        "component_seconds_total": total,
        "components": [
            {
                "name": name,
                "state": info["state"],
                "seconds": float(info["seconds"]),
                "share": float(info["seconds"]) / total if total else 0.0,
            }
            for name, info in _ordered(summary)
        ],
        # A cached component took no time in this run: its figure is not a cost.
        "cached_components": sorted(n for n, c in components.items() if c["state"] == "CACHED"),
        "test_auc": overall.get("auc"),
        "config": summary.get("config"),
        "data": summary.get("data"),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    sources = [_parse_summary_arg(v) for v in args.summary]
    if not sources and not args.run_default:
        raise ValueError("nothing to report: give --summary LABEL=PATH and/or --run_default")
    report = common.new_report(
        "pipeline",
        {"summaries": dict(sources), "run_default": args.run_default},
        with_tensorflow=False,
    )
    for label, path in sources:
        report["results"].append(entry(label, _load(path), os.path.abspath(path)))
    if args.run_default:
        summary = run_default(os.path.abspath(args.workdir))
        report["results"].append(entry("embedded-default", summary, "run now (--run_default)"))
    common.finish_report(report, args.output)
    print(format_results(report))
    return report


def format_results(report: dict[str, Any]) -> str:
    blocks = []
    for r in report["results"]:
        rows = [[c["name"], c["state"], c["seconds"], c["share"]] for c in r["components"]]
        rows.append(["(sum of components)", "", r["component_seconds_total"], 1.0])
        head = f"{r['label']}: wall {r['wall_seconds']} s"
        if r.get("test_auc") is not None:
            head += f", test AUC {r['test_auc']:.4f}"
        if r["cached_components"]:
            head += f" (cached, not timed: {', '.join(r['cached_components'])})"
        blocks.append(
            head + "\n" + common.format_table(["component", "state", "seconds", "share"], rows)
        )
    return "\n\n".join(blocks)
