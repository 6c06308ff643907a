"""`sitn-tf bench data`: converter throughput and memory, and how they scale.

Times `sitn_tf.data.convert_interactions` (what `sitn-tf data interactions`
runs, with its default Beam runner) on

* a real interactions table (default: the Amazon Books -> Movies TSV at
  `../shared/data/amazon_books_movies/interactions.tsv` when present), and
* the seeded synthetic generator at scales x1, x4, x16 (users multiplied,
  items fixed, so each user's group has the same size at every scale).

Each conversion runs in a fresh Python process, so that its peak RSS is its
own: the child reports the conversion's wall time (imports excluded), its
resident memory after imports and its peak. Figures: input rows/s (median of
the repeats), peak RSS, and, across scales, the marginal time and memory per
row between consecutive scales: constant marginal costs mean linear growth.
With the in-memory DirectRunner, the per-user grouping holds every row in
memory, so memory is expected to grow linearly with rows, and no faster.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from typing import Any

from pipelines import defaults
from sitn_tools.bench import common

FULL = {"scales": (1, 4, 16), "base_users": 1000, "repeats": 3, "items_per_domain": 1000}
QUICK = {"scales": (1, 2), "base_users": 100, "repeats": 1, "items_per_domain": 200}
# Marginal cost per row may drift this much between scale steps and still count as linear.
LINEAR_TOLERANCE = 1.35
_RESULT_MARK = "BENCH_DATA_RESULT "


def _count_rows(path: str) -> int:
    with open(path, "rb") as f:
        return max(sum(1 for _ in f) - 1, 0)


def child_main(spec_json: str) -> None:
    """Runs one conversion (in a child process) and prints its figures."""
    spec = json.loads(spec_json)
    import apache_beam  # noqa: F401  (imported before the baseline is taken)

    from sitn_tf.data.config import ConversionConfig
    from sitn_tf.data.convert import convert_interactions

    baseline = common.rss_bytes()
    start = time.perf_counter()
    stats = convert_interactions(
        spec["interactions"],
        spec["output_dir"],
        ConversionConfig(**spec["config"]),
        items=spec.get("items"),
        beam_args=spec["beam_args"],
        overwrite=True,
    )
    seconds = time.perf_counter() - start
    result = {
        "seconds": seconds,
        "rss_after_imports_bytes": baseline,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "children_peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "instances": sum(split.get("instances", 0) for split in stats.get("splits", {}).values()),
        "status": stats.get("status"),
    }
    print(_RESULT_MARK + json.dumps(result), flush=True)


def _convert(spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (defaults.REPO_ROOT, env.get("PYTHONPATH", "")) if p
    )
    code = "import sys; from sitn_tools.bench.data import child_main; child_main(sys.argv[1])"
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(_RESULT_MARK):
            return json.loads(line[len(_RESULT_MARK) :])
    raise RuntimeError(
        f"conversion of {spec['interactions']} failed (exit {proc.returncode}):\n"
        + proc.stderr[-4000:]
    )


def _synthetic_raw(workdir: str, users: int, items_per_domain: int) -> tuple[str, str]:
    from sitn_tf.data.synthetic import (
        INTERACTIONS_FILE,
        ITEMS_FILE,
        SyntheticConfig,
        generate_synthetic,
        write_synthetic_raw,
    )

    folder = os.path.join(workdir, "data-bench", f"raw-u{users}-i{items_per_domain}")
    done = os.path.join(folder, "DONE")
    if not os.path.exists(done):
        config = SyntheticConfig(num_users=users, items_per_domain=items_per_domain)
        write_synthetic_raw(generate_synthetic(config), folder)
        open(done, "w").close()
    return os.path.join(folder, INTERACTIONS_FILE), os.path.join(folder, ITEMS_FILE)


def _measure(
    label: str, interactions: str, items: str | None, source: str, target: str, repeats: int,
    workdir: str,
) -> dict[str, Any]:  # fmt: skip
    rows = _count_rows(interactions)
    output_dir = os.path.join(workdir, "data-bench", "out", label)
    runs = []
    for _ in range(repeats):
        runs.append(
            _convert(
                {
                    "interactions": interactions,
                    "items": items,
                    "output_dir": output_dir,
                    "config": {"source": source, "target": target},
                    "beam_args": ["--runner=DirectRunner"],
                }
            )
        )
    shutil.rmtree(output_dir, ignore_errors=True)
    seconds = common.median([r["seconds"] for r in runs])
    peak = common.median([r["peak_rss_bytes"] for r in runs])
    base = common.median([r["rss_after_imports_bytes"] for r in runs])
    result = {
        "input": label,
        "interactions": interactions,
        "rows": rows,
        "input_bytes": os.path.getsize(interactions),
        "item_rows": _count_rows(items) if items else 0,
        "instances": runs[0]["instances"],
        "repeats": runs,
        "seconds": seconds,
        "rows_per_second": rows / seconds,
        "peak_rss_bytes": peak,
        "rss_after_imports_bytes": base,
        "peak_rss_growth_bytes": peak - base,
    }
    print(
        f"[bench data] {label:<14} {rows:>9,} rows  {seconds:8.1f} s  "
        f"{result['rows_per_second']:>9,.0f} rows/s  peak RSS {common.mib(peak):,.0f} MiB",
        flush=True,
    )
    return result


def linearity(scaled: list[dict[str, Any]]) -> dict[str, Any]:
    """Marginal seconds and bytes per row between consecutive scales.

    Growth counts as linear when each step's marginal cost stays within
    `LINEAR_TOLERANCE` of the first step's (fixed start-up costs cancel out).
    """
    ordered = sorted(scaled, key=lambda r: r["rows"])
    steps = []
    for small, big in zip(ordered[:-1], ordered[1:], strict=False):
        extra_rows = big["rows"] - small["rows"]
        if extra_rows <= 0:
            continue
        steps.append(
            {
                "from": small["input"],
                "to": big["input"],
                "seconds_per_million_rows": 1e6 * (big["seconds"] - small["seconds"]) / extra_rows,
                "bytes_per_row": (big["peak_rss_bytes"] - small["peak_rss_bytes"]) / extra_rows,
            }
        )

    def linear(key: str) -> bool | None:
        if len(steps) < 2:
            return None
        first = steps[0][key]
        if first <= 0:
            return all(s[key] <= 0 for s in steps[1:])
        return all(s[key] <= first * LINEAR_TOLERANCE for s in steps[1:])

    return {
        "steps": steps,
        "time_linear": linear("seconds_per_million_rows"),
        "memory_at_most_linear": linear("bytes_per_row"),
        "tolerance": LINEAR_TOLERANCE,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sitn_tools.bench.cli import REAL_INTERACTIONS

    settings = dict(QUICK if args.quick else FULL)
    for key in ("scales", "base_users", "repeats"):
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = tuple(value) if isinstance(value, list) else value
    workdir = os.path.abspath(args.workdir)
    real = args.interactions
    if real is None and not args.quick:
        candidate = os.path.join(defaults.REPO_ROOT, REAL_INTERACTIONS)
        real = candidate if os.path.exists(candidate) else None
    if real is not None and not os.path.exists(real):
        raise FileNotFoundError(f"--interactions {real}: no such file")
    report = common.new_report(
        "data",
        {
            **{k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
            "quick": args.quick,
            "real_interactions": real,
            "runner": "DirectRunner",
        },
        with_tensorflow=False,
    )
    if real is not None:
        report["results"].append(
            _measure(
                "real", os.path.abspath(real), None, args.source, args.target,
                settings["repeats"], workdir,
            )
        )  # fmt: skip
    scaled = []
    for scale in settings["scales"]:
        users = settings["base_users"] * scale
        interactions, items = _synthetic_raw(workdir, users, settings["items_per_domain"])
        result = _measure(
            f"synthetic-x{scale}", interactions, items, "books", "movies",
            settings["repeats"], workdir,
        )  # fmt: skip
        result["scale"] = scale
        result["users"] = users
        scaled.append(result)
        report["results"].append(result)
        common.finish_report(report, args.output)
    report["linearity"] = linearity(scaled)
    common.finish_report(report, args.output)
    print(format_results(report))
    return report


def format_results(report: dict[str, Any]) -> str:
    rows = [
        [
            r["input"],
            r["rows"],
            r["instances"] or 0,
            r["seconds"],
            r["rows_per_second"],
            common.mib(r["peak_rss_bytes"]),
            common.mib(r["peak_rss_growth_bytes"]),
            len(r["repeats"]),
        ]
        for r in report["results"]
    ]
    lines = [
        common.format_table(
            ["input", "rows", "instances", "seconds", "rows/s", "peak RSS MiB",
             "growth MiB", "repeats"],
            rows,
        )
    ]  # fmt: skip
    lin = report.get("linearity", {})
    if lin.get("steps"):
        lines.append("")
        lines.append(
            common.format_table(
                ["from", "to", "s per million rows", "bytes per row"],
                [
                    [s["from"], s["to"], s["seconds_per_million_rows"], s["bytes_per_row"]]
                    for s in lin["steps"]
                ],
            )
        )
        lines.append(
            f"time linear: {lin['time_linear']}; memory at most linear: "
            f"{lin['memory_at_most_linear']} (tolerance x{lin['tolerance']})"
        )
    return "\n".join(lines)
