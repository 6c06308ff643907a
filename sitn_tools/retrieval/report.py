"""Multi-seed retrieval results: mean ± std per variant, paired t-tests, a Markdown table.

A run record is one trained variant on one seed (the metric names are the
defaults `METRICS`; `summarize` and `markdown` take others)::

    {"variant": "timirec", "seed": 3,
     "metrics": {"hr@5": ..., "hr@10": ..., "hr@20": ...,
                 "ndcg@5": ..., "ndcg@10": ..., "ndcg@20": ...}, ...}

Only numpy and scipy are used, so reports can be built and tested without
TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

METRICS = ("hr@5", "hr@10", "hr@20", "ndcg@5", "ndcg@10", "ndcg@20")
TEST_METRICS = ("hr@10", "ndcg@10")


def summarize(
    runs: Sequence[Mapping[str, Any]],
    variants: Sequence[str],
    metrics: Sequence[str] = METRICS,
) -> dict[str, Any]:
    """Per variant: `n`, `seeds` and per metric `{"mean", "std"}` (std ddof=1, None for n=1)."""
    out = {}
    for variant in variants:
        rows = sorted((r for r in runs if r["variant"] == variant), key=lambda r: r["seed"])
        if not rows:
            continue
        per_metric = {}
        for name in metrics:
            values = np.array([r["metrics"][name] for r in rows], dtype=np.float64)
            per_metric[name] = {
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else None,
            }
        out[variant] = {"n": len(rows), "seeds": [r["seed"] for r in rows], "metrics": per_metric}
    return out


def paired_test(runs: Sequence[Mapping[str, Any]], a: str, b: str, metric: str) -> dict[str, Any]:
    """Two-sided paired t-test of `a - b` on `metric` over the seeds both variants ran."""
    by_seed = {
        v: {r["seed"]: r["metrics"][metric] for r in runs if r["variant"] == v} for v in (a, b)
    }
    seeds = sorted(set(by_seed[a]) & set(by_seed[b]))
    diffs = np.array([by_seed[a][s] - by_seed[b][s] for s in seeds], dtype=np.float64)
    result: dict[str, Any] = {
        "a": a,
        "b": b,
        "metric": metric,
        "n": len(seeds),
        "seeds": seeds,
        "mean_diff": float(diffs.mean()) if len(diffs) else None,
        "t": None,
        "p": None,
    }
    if len(diffs) >= 2 and np.ptp(diffs) > 0:
        t, p = stats.ttest_rel([by_seed[a][s] for s in seeds], [by_seed[b][s] for s in seeds])
        result["t"], result["p"] = float(t), float(p)
    return result


def _cell(stat: Mapping[str, Any] | None) -> str:
    if stat is None:
        return "–"
    if stat["std"] is None:
        return f"{stat['mean']:.4f}"
    return f"{stat['mean']:.4f} ± {stat['std']:.4f}"


def _p(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def markdown(
    summary: Mapping[str, Any],
    tests: Sequence[Mapping[str, Any]],
    labels: Mapping[str, str] | None = None,
    metrics: Sequence[str] = METRICS,
) -> str:
    """The results table (mean ± std over seeds) and the paired tests, as Markdown."""
    labels = labels or {}
    header = "| variant | seeds | " + " | ".join(m.upper() for m in metrics)
    lines = [header + " |", "|---|---|" + "---|" * len(metrics)]
    for variant, row in summary.items():
        cells = " | ".join(_cell(row["metrics"].get(m)) for m in metrics)
        lines.append(f"| {labels.get(variant, variant)} | {row['n']} | {cells} |")
    if tests:
        lines += [
            "",
            "Paired t-tests over seeds (two-sided; difference = first − second):",
            "",
            "| comparison | metric | seeds | mean difference | t | p |",
            "|---|---|---|---|---|---|",
        ]
        for t in tests:
            diff = "–" if t["mean_diff"] is None else f"{t['mean_diff']:+.4f}"
            tval = "–" if t["t"] is None else f"{t['t']:.2f}"
            lines.append(
                f"| {t['a']} vs {t['b']} | {t['metric']} | {t['n']} | {diff} | {tval} | {_p(t['p'])} |"
            )
    return "\n".join(lines) + "\n"
