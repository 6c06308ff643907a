"""Multi-seed results of an experiment: summaries, paired tests, a table and a chart.

A run record is one trained variant on one seed::

    {"variant": "sitn", "seed": 3,
     "metrics": {"auc": 0.7525, "logloss": 0.5012, "gauc": 0.7011},
     "train_seconds": 812.4, ...}

`known_auc` and `known_gauc` (AUC and GAUC on the test rows whose candidate is
in the train vocabulary) and `train_seconds` are optional; each is read from
the record or from its `metrics`, and None counts as absent. Other keys are
ignored here. Every variant is described by a `VariantSpec`;
their order is the row order of the table and the bar order of the chart.
Summaries and tests are plain JSON-ready dicts (typed as `TypedDict`s), so
they go into `results.json` as they are.

Rows are grouped like the SITN paper (Sun et al., AAAI 2023): the main
comparison (Table 2) holds the baselines and the full model, and each ablation
group ("Table 3", "Table 4", ...) becomes its own table with the full model
repeated as its reference row.

Only numpy, scipy and matplotlib are used, so reports can be built and tested
without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict

import numpy as np
from scipy import stats

BASELINE = "Baseline"
OURS = "Ours"
MAIN_TABLE = "Table 2"

REQUIRED_METRICS = ("auc", "logloss", "gauc")
# Optional: records written before the known-candidate metrics existed lack them.
OPTIONAL_METRICS = ("known_auc", "known_gauc", "train_seconds")
# The metric columns of the tables, for every row (runs and simple baselines).
TABLE_METRICS = ("auc", "logloss", "gauc", "known_auc", "known_gauc")
# +1: higher is better, -1: lower is better.
METRIC_DIRECTION = {
    "auc": 1,
    "gauc": 1,
    "logloss": -1,
    "known_auc": 1,
    "known_gauc": 1,
    "train_seconds": -1,
}
METRIC_LABEL = {
    "auc": "AUC",
    "logloss": "Logloss",
    "gauc": "GAUC",
    "known_auc": "Known AUC",
    "known_gauc": "Known GAUC",
    "train_seconds": "Train s",
}
SIMPLE_BASELINE_PREFIX = "Simple baseline: "


@dataclasses.dataclass(frozen=True)
class VariantSpec:
    """One model variant of the experiment.

    Attributes:
      name: key used in run records (`record["variant"]`).
      label: name printed in the table and on the chart.
      group: `"Baseline"` and `"Ours"` rows form the main comparison (Table 2);
        any other group (e.g. `"Table 3"`, `"Table 4"`) is an ablation table.
    """

    name: str
    label: str
    group: str

    def __post_init__(self) -> None:
        for field in ("name", "label", "group"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value:
                raise ValueError(f"`{field}` must be a non-empty string, got {value!r}")

    @property
    def is_baseline(self) -> bool:
        return self.group == BASELINE

    @property
    def table(self) -> str:
        """The table this variant's row belongs to."""
        return MAIN_TABLE if self.group in (BASELINE, OURS) else self.group


class Stat(TypedDict):
    """Mean and sample standard deviation (ddof=1) of one metric over seeds.

    `std` is None when `n == 1`: one seed says nothing about spread.
    """

    n: int
    mean: float
    std: float | None


class VariantSummary(TypedDict):
    """One variant's runs: `n` seeds (0 when it has no runs), `metrics` by name."""

    n: int
    seeds: list[int]
    metrics: dict[str, Stat]


class PairedTest(TypedDict):
    """Paired comparison of variant `a` against variant `b` over shared seeds.

    `mean_diff` and `std_diff` are of `a - b` per seed (std with ddof=1).
    `t`/`p_t` come from the paired t-test (two-sided), `p_wilcoxon` from the
    exact Wilcoxon signed-rank test (two-sided; zero differences dropped as in
    Wilcoxon's original method; `wilcoxon_ties` says whether |a - b| had ties,
    in which case scipy's exact null, derived for untied ranks, is approximate).
    With 5 seeds the smallest possible Wilcoxon p is 0.0625, so it can confirm
    the direction but never reach 0.05 on its own.

    `defined` is False, with `reason`, when a statistic cannot be computed
    (fewer than 2 seeds, or all differences equal); the statistics are then None.
    `better` is the name of the better variant by mean under the metric's
    direction, or "tie".
    """

    a: str
    b: str
    metric: str
    n: int
    seeds: list[int]
    mean_diff: float
    std_diff: float | None
    t: float | None
    p_t: float | None
    p_wilcoxon: float | None
    wilcoxon_ties: bool
    better: str
    defined: bool
    reason: str | None


def _metric_value(record: Mapping[str, Any], metric: str, where: str) -> float | None:
    metrics = record.get("metrics")
    if metric in record:
        value = record[metric]
    elif isinstance(metrics, Mapping) and metric in metrics:
        value = metrics[metric]
    else:
        return None
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: `{metric}` must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: `{metric}` is not finite ({value})")
    return value


def _index_records(
    records: Iterable[Mapping[str, Any]], known: Iterable[str] | None = None
) -> dict[str, dict[int, Mapping[str, Any]]]:
    """`{variant: {seed: record}}`; rejects malformed, duplicate and unknown records."""
    known_set = set(known) if known is not None else None
    by_variant: dict[str, dict[int, Mapping[str, Any]]] = {}
    for i, record in enumerate(records):
        where = f"run record {i}"
        if not isinstance(record, Mapping):
            raise ValueError(f"{where}: expected a dict, got {type(record).__name__}")
        for key in ("variant", "seed", "metrics"):
            if key not in record:
                raise ValueError(f"{where}: missing key `{key}`")
        variant, seed = record["variant"], record["seed"]
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise ValueError(f"{where}: `seed` must be an int, got {seed!r}")
        seed = int(seed)
        if known_set is not None and variant not in known_set:
            raise ValueError(
                f"{where}: variant {variant!r} is not among the variants {sorted(known_set)}"
            )
        if not isinstance(record["metrics"], Mapping):
            raise ValueError(f"{where} ({variant}, seed {seed}): `metrics` must be a dict")
        seeds = by_variant.setdefault(variant, {})
        if seed in seeds:
            raise ValueError(f"{where}: duplicate run for variant {variant!r}, seed {seed}")
        seeds[seed] = record
    return by_variant


def _stat(values: Sequence[float]) -> Stat:
    arr = np.asarray(values, dtype=np.float64)
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else None
    return {"n": int(arr.size), "mean": float(np.mean(arr)), "std": std}


def summarize(
    records: Iterable[Mapping[str, Any]], variants: Sequence[VariantSpec]
) -> dict[str, VariantSummary]:
    """Mean and sample std (ddof=1) per variant of auc, logloss, gauc (and the optional ones).

    Returns `{variant name: VariantSummary}` in the order of `variants`. A
    variant without runs is kept with `n == 0` and empty `metrics` (the table
    shows it as not run, the chart leaves it out). The optional metrics
    (`known_auc`, `known_gauc`, `train_seconds`) are summarised over the runs
    that report them (each with its own `n`).

    Raises:
      ValueError: a record is malformed, duplicated (same variant and seed),
        names an unknown variant, lacks a required metric or has a non-finite
        one (a NaN AUC from a single-class test split, for instance).
    """
    _check_variants(variants)
    by_variant = _index_records(records, known=[v.name for v in variants])
    summary: dict[str, VariantSummary] = {}
    for spec in variants:
        runs = by_variant.get(spec.name, {})
        seeds = sorted(runs)
        metrics: dict[str, Stat] = {}
        for metric in REQUIRED_METRICS + OPTIONAL_METRICS:
            values = []
            for seed in seeds:
                where = f"variant {spec.name!r}, seed {seed}"
                value = _metric_value(runs[seed], metric, where)
                if value is None and metric in REQUIRED_METRICS:
                    raise ValueError(f"{where}: metrics lack `{metric}`")
                if value is not None:
                    values.append(value)
            if values:
                metrics[metric] = _stat(values)
        summary[spec.name] = {"n": len(seeds), "seeds": seeds, "metrics": metrics}
    return summary


def _check_variants(variants: Sequence[VariantSpec]) -> None:
    names = [v.name for v in variants]
    if not names:
        raise ValueError("`variants` is empty")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate variant names {duplicates}")


def _direction(metric: str) -> int:
    if metric not in METRIC_DIRECTION:
        raise ValueError(f"`metric` must be one of {sorted(METRIC_DIRECTION)}, got {metric!r}")
    return METRIC_DIRECTION[metric]


def paired_test(
    records: Iterable[Mapping[str, Any]], a: str, b: str, metric: str = "auc"
) -> PairedTest:
    """Paired test of `a` against `b` on `metric`, matching runs by seed.

    Main test: paired t-test (`scipy.stats.ttest_rel`), t = mean(d) / (std(d) / sqrt(n))
    with d = a - b per seed. Robustness check: exact Wilcoxon signed-rank test
    (`scipy.stats.wilcoxon`). See `PairedTest` for the fields.

    Raises:
      ValueError: `a` or `b` has no runs, or their seeds differ (the message
        names the unmatched seeds of each).
    """
    direction = _direction(metric)
    if a == b:
        raise ValueError(f"cannot compare variant {a!r} with itself")
    by_variant = _index_records(records)
    for name in (a, b):
        if name not in by_variant:
            raise ValueError(f"no run records for variant {name!r}")
    seeds_a, seeds_b = set(by_variant[a]), set(by_variant[b])
    if seeds_a != seeds_b:
        raise ValueError(
            f"seeds of {a!r} and {b!r} do not match: only in {a!r}: {sorted(seeds_a - seeds_b)}, "
            f"only in {b!r}: {sorted(seeds_b - seeds_a)}"
        )
    seeds = sorted(seeds_a)
    xa, xb = [], []
    for seed in seeds:
        for name, out in ((a, xa), (b, xb)):
            value = _metric_value(by_variant[name][seed], metric, f"variant {name!r}, seed {seed}")
            if value is None:
                raise ValueError(f"variant {name!r}, seed {seed}: metrics lack `{metric}`")
            out.append(value)
    x, y = np.asarray(xa), np.asarray(xb)
    diffs = x - y
    n = len(seeds)
    mean_diff = float(np.mean(diffs))
    signed = direction * mean_diff
    better = a if signed > 0 else b if signed < 0 else "tie"
    result: PairedTest = {
        "a": a,
        "b": b,
        "metric": metric,
        "n": n,
        "seeds": seeds,
        "mean_diff": mean_diff,
        "std_diff": None,
        "t": None,
        "p_t": None,
        "p_wilcoxon": None,
        "wilcoxon_ties": False,
        "better": better,
        "defined": False,
        "reason": None,
    }
    if n < 2:
        result["reason"] = f"a paired test needs at least 2 shared seeds, got {n}"
        return result
    std_diff = float(np.std(diffs, ddof=1))
    result["std_diff"] = std_diff
    if std_diff == 0.0:
        # t is ±inf or 0/0: report the fact rather than a p-value scipy would give as nan.
        result["reason"] = f"all {n} per-seed differences are equal ({mean_diff:+.6g}); no variance"
        return result
    t_result = stats.ttest_rel(x, y)
    nonzero = np.abs(diffs[diffs != 0])
    w_result = stats.wilcoxon(x, y, zero_method="wilcox", method="exact")
    result.update(
        t=float(t_result.statistic),
        p_t=float(t_result.pvalue),
        p_wilcoxon=float(w_result.pvalue),
        wilcoxon_ties=bool(np.unique(nonzero).size < nonzero.size),
        defined=True,
    )
    return result


def compare_to(
    records: Iterable[Mapping[str, Any]],
    reference: str,
    variants: Sequence[VariantSpec],
    metric: str = "auc",
) -> dict[str, PairedTest]:
    """`paired_test(records, v, reference, metric)` for every other variant that has runs."""
    records = list(records)
    ran = _index_records(records)
    return {
        v.name: paired_test(records, v.name, reference, metric)
        for v in variants
        if v.name != reference and v.name in ran
    }


def best_baseline(
    summary: Mapping[str, VariantSummary],
    baselines: Iterable[str | VariantSpec],
    metric: str = "auc",
) -> str:
    """Name of the baseline with the best mean `metric` (highest AUC, lowest logloss, ...).

    The summary is normally of test-set metrics; the choice is made only to
    pick the reference row of the paired tests in the report, never to tune or
    select a model. Ties go to the first baseline in order.

    Raises:
      ValueError: no baselines, or a baseline missing from the summary.
    """
    direction = _direction(metric)
    names = [b.name if isinstance(b, VariantSpec) else b for b in baselines]
    if not names:
        raise ValueError("`baselines` is empty")
    best, best_value = None, -math.inf
    for name in names:
        if name not in summary:
            raise ValueError(f"baseline {name!r} is not in the summary {list(summary)}")
        if metric not in summary[name]["metrics"]:
            raise ValueError(f"baseline {name!r} has no `{metric}` values (no runs?)")
        value = direction * summary[name]["metrics"][metric]["mean"]
        if value > best_value:
            best, best_value = name, value
    assert best is not None
    return best


def _fmt_stat(stat: Stat | None, digits: int = 4) -> str:
    if stat is None:
        return "—"
    if stat["std"] is None:
        return f"{stat['mean']:.{digits}f} (n=1)"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _fmt_value(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _table_rows(variants: Sequence[VariantSpec]) -> dict[str, list[VariantSpec]]:
    """Rows per table in order of first appearance; the full model closes each ablation."""
    tables: dict[str, list[VariantSpec]] = {}
    for spec in variants:
        tables.setdefault(spec.table, []).append(spec)
    ours = [v for v in variants if v.group == OURS]
    for table, rows in tables.items():
        if table != MAIN_TABLE:
            rows.extend(v for v in ours if v not in rows)
    return tables


def _check_simple_baselines(baselines: Mapping[str, Mapping[str, Any]]) -> None:
    for name, entry in baselines.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("metrics"), Mapping):
            raise ValueError(f"simple baseline {name!r}: expected a dict with `metrics`")
        if not entry.get("label"):
            raise ValueError(f"simple baseline {name!r}: `label` is missing")


def markdown_table(
    summary: Mapping[str, VariantSummary],
    variants: Sequence[VariantSpec],
    tests: Mapping[str, PairedTest] | None = None,
    best_baseline: str | None = None,
    simple_baselines: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """Markdown tables in the paper's layout: mean ± sample std over seeds.

    One table per `VariantSpec.table`: "Table 2" (baselines and the full
    model), then each ablation group with the full model ("Ours") repeated as
    its last row. Columns: seeds, AUC, Logloss, GAUC, Known AUC, Known GAUC
    (AUC and GAUC on the test rows whose candidate is in the train vocabulary;
    "—" for runs that lack them), and, when `tests` is given (e.g. from
    `compare_to(records, best_baseline(...), variants)`), the paired
    difference against the tests' common reference `best_baseline` (taken
    from the tests when not given) with the t-test and Wilcoxon p-values.
    Variants without runs show "not run".

    `simple_baselines` (`{name: {"label", "metrics", ...}}`, as
    `sitn_tools.experiment.baselines.evaluate` returns) adds one row each to
    Table 2, marked "Simple baseline": one deterministic value per metric, no
    seeds and no std, "—" where a metric is undefined (a logloss of a score
    that is not a probability), and no paired test. The best AUC of each table
    (mean for runs) is bold, all tied rows, simple baselines included.

    Raises:
      ValueError: a variant is missing from the summary, the tests do not
        share one reference variant, or it is not `best_baseline`; a simple
        baseline lacks `label` or `metrics`.
    """
    _check_variants(variants)
    missing = [v.name for v in variants if v.name not in summary]
    if missing:
        raise ValueError(f"variants {missing} are not in the summary")
    simple = dict(simple_baselines or {})
    _check_simple_baselines(simple)
    tests = dict(tests or {})
    references = sorted({t["b"] for t in tests.values()})
    if len(references) > 1:
        raise ValueError(f"tests must share one reference variant, got {references}")
    if best_baseline is not None and references and references != [best_baseline]:
        raise ValueError(f"tests compare against {references[0]!r}, not {best_baseline!r}")
    reference = best_baseline if best_baseline is not None else (references or [None])[0]
    test_metrics = sorted({t["metric"] for t in tests.values()}) or ["auc"]
    labels = {v.name: v.label for v in variants}
    ref_label = labels.get(reference, reference) if reference else None
    paired = ["", "", ""] if reference is not None else []

    tables = _table_rows(variants)
    if simple and MAIN_TABLE not in tables:
        tables = {MAIN_TABLE: [], **tables}  # the simple baselines' rows need a table
    lines: list[str] = []
    for table, rows in tables.items():
        title = f"{table}: main comparison" if table == MAIN_TABLE else table
        table_simple = simple if table == MAIN_TABLE else {}
        lines.append(f"### {title}")
        lines.append("")
        header = ["Model", "Seeds"] + [METRIC_LABEL[m] for m in TABLE_METRICS]
        if reference is not None:
            metric = METRIC_LABEL[test_metrics[0]]
            header += [f"Δ {metric} vs {ref_label}", "p (t-test)", "p (Wilcoxon)"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        aucs = [summary[v.name]["metrics"]["auc"]["mean"] for v in rows if summary[v.name]["n"]]
        aucs += [e["metrics"]["auc"] for e in table_simple.values()]
        aucs = [a for a in aucs if a is not None]
        best_auc = max(aucs) if aucs else None
        for spec in rows:
            s = summary[spec.name]
            cells = [spec.label, str(s["n"])]
            if not s["n"]:
                cells += ["not run"] + [""] * (len(TABLE_METRICS) - 1) + paired
                lines.append("| " + " | ".join(cells) + " |")
                continue
            for metric in TABLE_METRICS:
                text = _fmt_stat(s["metrics"].get(metric))
                if metric == "auc" and s["metrics"]["auc"]["mean"] == best_auc:
                    text = f"**{text}**"
                cells.append(text)
            if reference is not None:
                if spec.name == reference:
                    cells += ["reference", "", ""]
                elif spec.name in tests:
                    t = tests[spec.name]
                    cells += [f"{t['mean_diff']:+.4f}", _fmt_p(t["p_t"]), _fmt_p(t["p_wilcoxon"])]
                else:
                    cells += ["not tested", "", ""]
            lines.append("| " + " | ".join(cells) + " |")
        for entry in table_simple.values():
            cells = [SIMPLE_BASELINE_PREFIX + entry["label"], "—"]
            for metric in TABLE_METRICS:
                value = entry["metrics"].get(metric)
                text = _fmt_value(value)
                if metric == "auc" and value is not None and value == best_auc:
                    text = f"**{text}**"
                cells.append(text)
            lines.append("| " + " | ".join(cells + paired) + " |")
        lines.append("")
    notes = [
        "Mean ± sample standard deviation (ddof=1) over seeds; (n=1) marks a single seed. "
        "Known AUC and Known GAUC: only the test rows whose candidate item is in the train "
        "split's target vocabulary (clicked in train, as a candidate or in a target history)."
    ]
    if simple:
        notes.append(
            "Simple baselines: deterministic scores of the same test rows computed from the "
            "train split and, for the candidate statistics, the converter's counts of earlier "
            "clicks (the logistic regressions are fitted on the eval split), one value each: "
            "no training seeds, so no std and no paired test. Only the logistic regressions "
            "output probabilities; the other simple baselines are scores, with AUC and GAUC "
            "but no logloss (—)."
        )
    if reference is not None:
        notes.append(
            f"Δ and p: paired over seeds against {ref_label}, the baseline with the best mean test "
            f"{METRIC_LABEL[test_metrics[0]]} (chosen for reporting only); two-sided paired t-test "
            "and exact Wilcoxon signed-rank test; n/a where undefined (fewer than 2 seeds or "
            "identical differences)."
        )
    lines.extend(notes)
    return "\n".join(lines) + "\n"


def simple_baseline_table(baselines: Mapping[str, Mapping[str, Any]]) -> str:
    """One markdown table of the simple baselines, with AUC by target-history length.

    Columns: the `TABLE_METRICS`, then the AUC of each bucket of
    `metrics["by_history_length"]` (its examples in the header's order), "—"
    where undefined.

    Raises:
      ValueError: a baseline lacks `label` or `metrics`.
    """
    _check_simple_baselines(baselines)
    buckets: list[str] = []
    for entry in baselines.values():
        for name in entry["metrics"].get("by_history_length", {}):
            if name not in buckets:
                buckets.append(name)
    header = ["Simple baseline"] + [METRIC_LABEL[m] for m in TABLE_METRICS]
    header += [f"AUC, target history {b}" for b in buckets]
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for entry in baselines.values():
        m = entry["metrics"]
        cells = [entry["label"]] + [_fmt_value(m.get(metric)) for metric in TABLE_METRICS]
        by_length = m.get("by_history_length", {})
        cells += [_fmt_value(by_length.get(b, {}).get("auc")) for b in buckets]
        lines.append("| " + " | ".join(cells) + " |")
    first = next(iter(baselines.values()), None)
    if first is not None and first["metrics"].get("by_history_length"):
        counts = ", ".join(
            f"{b}: {v['examples']:,}" for b, v in first["metrics"]["by_history_length"].items()
        )
        lines += ["", f"Test rows by target-history length: {counts}."]
    lines += [
        "",
        "Scores of the test rows from the train split (the blends and the statistics: logistic "
        "regressions fitted on the eval split); logloss only for those, the probabilities "
        "(— elsewhere).",
    ]
    return "\n".join(lines) + "\n"


HISTORY_SLICES = (("by_history_length", "target"), ("by_source_history_length", "source"))


def gain_by_history_table(records: Iterable[Mapping[str, Any]], reference: str = "din") -> str:
    """Where a model helps: its test AUC minus `reference`'s per history-length bucket.

    One row per (variant other than `reference`, domain, bucket): the
    bucket's test rows, the mean ± std over seeds of the per-seed AUC
    difference and the two-sided paired t-test's p (`paired_test` on the
    bucket's AUC). Reads `metrics["by_history_length"]` (target) and
    `metrics["by_source_history_length"]` (source) where every run of both
    variants has them; buckets without an AUC in some run are left out.
    Empty when `reference` has no runs.
    """
    records = list(records)
    by_variant = _index_records(records)
    if reference not in by_variant:
        return ""
    lines = [
        f"| variant | history | length | test rows | AUC − {reference} (mean ± std) | p (paired t) |",
        "|---|---|---|---:|---:|---:|",
    ]
    rows = 0
    for variant in sorted(set(by_variant) - {reference}):
        seeds = sorted(set(by_variant[variant]) & set(by_variant[reference]))
        if len(seeds) < 2:
            continue
        for key, domain in HISTORY_SLICES:
            runs = [by_variant[name][seed] for name in (variant, reference) for seed in seeds]
            slices = [r["metrics"].get(key) for r in runs]
            if any(not s for s in slices):
                continue
            for bucket in slices[0]:
                if any(s.get(bucket, {}).get("auc") is None for s in slices):
                    continue
                derived = [
                    {"variant": name, "seed": seed, "metrics": {"auc": s[bucket]["auc"]}}
                    for (name, seed), s in zip(
                        [(n, sd) for n in (variant, reference) for sd in seeds], slices, strict=True
                    )
                ]
                test = paired_test(derived, variant, reference)
                std = test["std_diff"]
                lines.append(
                    f"| {variant} | {domain} | {bucket} | {slices[0][bucket]['examples']:,} | "
                    f"{test['mean_diff']:+.4f}"
                    + (f" ± {std:.4f}" if std is not None else "")
                    + f" | {_fmt_p(test['p_t'])} |"
                )
                rows += 1
    return "\n".join(lines) + "\n" if rows else ""


def convergence_table(records: Iterable[Mapping[str, Any]]) -> str:
    """One markdown row per run: where early stopping ended and what it selected.

    Columns: variant, seed, best epoch / epochs run, the best epoch's eval AUC
    and eval logloss, the first epoch's eval logloss, and whether the best
    epoch is the last one run (then the budget, not early stopping, ended the
    run and more epochs might have helped). Then the share of runs whose best
    epoch is not the last. Reads `best_epoch` (1-based), `epochs_run` and
    `finetune_history` (`val_auc`, `val_logloss` per epoch) of each record;
    runs without a history are skipped.
    """
    rows, not_last, counted = [], 0, 0
    for record in sorted(records, key=lambda r: (str(r["variant"]), int(r["seed"]))):
        history = record.get("finetune_history") or {}
        auc, logloss = history.get("val_auc"), history.get("val_logloss")
        best, run = record.get("best_epoch"), record.get("epochs_run")
        if not auc or not logloss or not best or not run:
            continue
        counted += 1
        last = best == run
        not_last += not last
        rows.append(
            f"| {record['variant']} | {record['seed']} | {best} / {run} | "
            f"{auc[best - 1]:.4f} | {logloss[best - 1]:.4f} | {logloss[0]:.4f} | "
            f"{'yes' if last else 'no'} |"
        )
    if not rows:
        return ""
    lines = [
        "| Variant | Seed | Best epoch / run | Eval AUC | Eval logloss | "
        "Eval logloss, epoch 1 | Best is last |",
        "|---|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        f"Best epoch not the last in {not_last} of {counted} runs (early stopping on eval AUC; "
        "the selected epoch's weights are the ones tested).",
    ]
    return "\n".join(lines) + "\n"


_COLORS = {BASELINE: "#9e9e9e", OURS: "#1f77b4"}
_ABLATION_COLORS = ["#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]


def bar_chart(
    summary: Mapping[str, VariantSummary],
    variants: Sequence[VariantSpec],
    path: str,
    metric: str = "auc",
) -> None:
    """One PNG bar chart of mean `metric` per variant with ±1 sample-std error bars.

    Baselines are grey and hatched, the full model blue, each ablation group
    its own colour; every bar carries its mean. The y-axis is zoomed to the
    data (a bar chart from 0 would hide differences in the third decimal) and
    the axis label states where it starts. Single-seed variants get no error
    bar; variants without runs are left out and named under the axis. Output
    bytes are deterministic for the same inputs and matplotlib.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    _direction(metric)
    _check_variants(variants)
    missing = [v.name for v in variants if v.name not in summary]
    if missing:
        raise ValueError(f"variants {missing} are not in the summary")
    not_run = [v for v in variants if not summary[v.name]["n"]]
    variants = [v for v in variants if summary[v.name]["n"]]
    if not variants:
        raise ValueError("no variant has runs; nothing to plot")
    absent = [v.name for v in variants if metric not in summary[v.name]["metrics"]]
    if absent:
        raise ValueError(f"variants {absent} have no `{metric}` values")

    stats_ = [summary[v.name]["metrics"][metric] for v in variants]
    means = np.array([s["mean"] for s in stats_])
    errs = np.array([s["std"] if s["std"] is not None else 0.0 for s in stats_])
    lo, hi = float(np.min(means - errs)), float(np.max(means + errs))
    span = max(hi - lo, 1e-3 * max(abs(hi), 1.0))
    bottom, top = lo - 0.35 * span, hi + 0.25 * span

    groups = list(dict.fromkeys(v.group for v in variants))
    colors, ablation = {}, 0
    for group in groups:
        if group in _COLORS:
            colors[group] = _COLORS[group]
        else:
            colors[group] = _ABLATION_COLORS[ablation % len(_ABLATION_COLORS)]
            ablation += 1

    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(variants) + 2.0), 4.5), dpi=100)
    x = np.arange(len(variants))
    for i, spec in enumerate(variants):
        ax.bar(
            x[i],
            means[i] - bottom,
            bottom=bottom,
            yerr=errs[i] if stats_[i]["std"] is not None else None,
            capsize=4,
            color=colors[spec.group],
            hatch="//" if spec.is_baseline else None,
            edgecolor="black",
            linewidth=0.6,
        )
        ax.text(
            x[i],
            means[i] + errs[i] + 0.03 * span,
            f"{means[i]:.4f}",
            ha="center",
            va="bottom",
            fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0},
        )
    ax.set_xticks(x)
    ax.set_xticklabels([v.label for v in variants], rotation=30, ha="right")
    ax.set_ylim(bottom, top)
    label = METRIC_LABEL[metric]
    ax.set_ylabel(f"{label}, mean ± std")
    if not_run:
        ax.set_xlabel("not run: " + ", ".join(v.label for v in not_run))
    seeds = sorted({summary[v.name]["n"] for v in variants})
    ax.set_title(
        f"Test {label} over {'/'.join(map(str, seeds))} seeds\n"
        f"(the y axis starts at {bottom:.4f}, not at 0)",
        fontsize=10,
    )
    ax.legend(
        handles=[
            Patch(
                facecolor=colors[g],
                edgecolor="black",
                hatch="//" if g == BASELINE else None,
                label=g,
            )
            for g in groups
        ],
        # Outside the axes: inside, it hides bars' value labels.
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
    )
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
