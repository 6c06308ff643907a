"""`sitn-tf bench tables`: one set of training grids from several `bench train` reports.

A full `bench train` sweep skips points whose shortest measurement would take
longer than `--skip_seconds`; they can be measured later by a narrower run
(e.g. `--models stage1 --batch_sizes 4096 --seq_lens 200 --xla on
--skip_seconds 2000`). This command lays the reports out as one sweep:

* a point is identified by (model, batch_size, max_seq_len, jit_compile);
  where several reports measured it, the later report on the command line
  wins (and the replacement is listed);
* a skipped or failed entry is kept only while no report measured its point;
* every point keeps its own run's `fraction_of_peak` (achieved over the
  matmul peak measured in that run) and is stamped with `source`: the report
  it came from, that run's date, matmul peak and load averages.

Reports are only merged when they describe the same experiment: the same CPU
model and usable cores, the same library versions, the same model and
training settings, and the same model config for a shared `max_seq_len`.
Otherwise the error names both files and the first differing field.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from sitn_tools.bench import common, train

# Fields that must agree between reports: (where, key) in the report.
_SAME = (
    ("machine", "cpu"),
    ("machine", "usable_cpus"),
    ("versions", None),
    ("config", "model_config"),
    ("config", "training"),
    ("config", "data"),
)


# Training settings that do not shape a measurement: every point sets its own
# `jit_compile` (the sweep's XLA axis) over what the config says.
_PER_POINT_TRAINING = ("jit_compile", "pretrain_jit_compile")


def _comparable(where: str, key: str | None, report: dict[str, Any]) -> Any:
    value = report[where] if key is None else report[where].get(key)
    if (where, key) == ("config", "training") and isinstance(value, dict):
        value = {k: v for k, v in value.items() if k not in _PER_POINT_TRAINING}
    return value


def load(path: str) -> dict[str, Any]:
    """A `bench train` report; errors name the file."""
    try:
        with open(path) as f:
            report = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such report") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a JSON report ({error})") from None
    if not isinstance(report, dict) or report.get("benchmark") != "train":
        kind = report.get("benchmark") if isinstance(report, dict) else type(report).__name__
        raise ValueError(f"{path}: not a `bench train` report (benchmark: {kind!r})")
    for field in ("machine", "versions", "config", "results", "matmul_peak"):
        if field not in report:
            raise ValueError(f"{path}: `bench train` report without `{field}`")
    return report


def _check_compatible(first: tuple[str, dict], other: tuple[str, dict]) -> None:
    (path_a, a), (path_b, b) = first, other
    for where, key in _SAME:
        value_a, value_b = _comparable(where, key, a), _comparable(where, key, b)
        if value_a != value_b:
            field = where if key is None else f"{where}.{key}"
            raise ValueError(
                f"cannot merge {path_a} and {path_b}: `{field}` differs "
                f"({value_a!r} vs {value_b!r})"
            )
    configs_a, configs_b = a.get("model_configs", {}), b.get("model_configs", {})
    for seq_len in sorted(set(configs_a) & set(configs_b), key=int):
        if configs_a[seq_len] != configs_b[seq_len]:
            raise ValueError(
                f"cannot merge {path_a} and {path_b}: the model config for "
                f"max_seq_len {seq_len} differs"
            )


def merge(reports: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One report whose `results` are the union of the reports' points.

    `reports` is a list of (path, report), earliest first; later measurements
    of a point replace earlier ones. Returns a `bench train`-shaped report with
    `sources` (one entry per input report) and `replaced` (the points measured
    more than once, with the source that was kept).
    """
    if not reports:
        raise ValueError("no report to merge")
    for other in reports[1:]:
        _check_compatible(reports[0], other)
    points: dict[tuple, dict[str, Any]] = {}
    replaced = []
    sources = []
    for index, (path, report) in enumerate(reports):
        machine = report["machine"]
        source = {
            "index": index,
            "report": path,
            "date_utc": machine.get("date_utc"),
            "matmul_peak_gflops": report["matmul_peak"]["gflops"],
            "load_average_at_start": machine.get("load_average_at_start"),
            "load_average_at_end": machine.get("load_average_at_end"),
        }
        sources.append(source)
        for point in report["results"]:
            key = train.point_key(point)
            if key in points:
                replaced.append(
                    {"point": list(key), "old": points[key]["source"]["report"], "kept": path}
                )
            points[key] = {**point, "source": source}
    unmeasured = {"skipped": {}, "failed": {}}
    for _, report in reports:
        for kind, entries in unmeasured.items():
            for entry in report.get(kind, []):
                key = train.point_key(entry)
                if key not in points:
                    entries[key] = entry
    first = reports[0][1]
    merged = {
        "schema_version": common.SCHEMA_VERSION,
        "benchmark": "train",
        "merged_from": [path for path, _ in reports],
        "machine": first["machine"],
        "versions": first["versions"],
        "config": first["config"],
        "model_configs": {
            seq: config
            for _, report in reports
            for seq, config in report.get("model_configs", {}).items()
        },
        "matmul_peak": first["matmul_peak"],
        "sources": sources,
        "replaced": replaced,
        "results": sorted(points.values(), key=lambda p: _order(train.point_key(p))),
    }
    for kind, entries in unmeasured.items():
        if entries:
            merged[kind] = [entries[k] for k in sorted(entries, key=_order)]
    merged["ratios"] = train.ratios(merged["results"])
    return merged


def _order(key: tuple) -> tuple:
    model, batch, seq, jit = key
    return (train.MODELS.index(model), seq, batch, str(jit))


def format_merged(merged: dict[str, Any]) -> str:
    """The sources, the grids, and what is still unmeasured."""
    source_rows = []
    for source in merged["sources"]:
        count = sum(1 for p in merged["results"] if p["source"]["index"] == source["index"])
        load = source["load_average_at_start"]
        source_rows.append(
            [
                source["report"],
                source["date_utc"] or "-",
                source["matmul_peak_gflops"],
                "-" if not load else load[0],
                count,
            ]
        )
    lines = [
        common.format_table(
            ["report", "started (UTC)", "matmul peak GFLOP/s", "load at start", "points kept"],
            source_rows,
        ),
        "",
    ]
    for item in merged["replaced"]:
        lines.append(
            f"measured twice: {train.point_label(item['point'])}: "
            f"kept {item['kept']}, dropped {item['old']}"
        )
    lines.append(train.summary_tables(merged))
    for kind in ("skipped", "failed"):
        for entry in merged.get(kind, []):
            lines.append(f"{kind}: {train.point_label(train.point_key(entry))}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    reports = [(path, load(path)) for path in args.reports]
    merged = merge(reports)
    if args.output:
        common.write_report(merged, args.output)
    print(format_merged(merged))
    if args.output:
        print(f"[bench tables] merged report: {os.path.abspath(args.output)}")
    return merged
