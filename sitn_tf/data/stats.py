"""The `stats.json` document, the checks a run must pass, and the report.

Everything here works on the merged pipeline tallies (a flat
`{"group/name": count}` dict, see `pipeline.py`), on the driver.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

from apache_beam.metrics.metric import MetricsFilter

from sitn_tf.data import instances as inst
from sitn_tf.data import readers
from sitn_tf.data.config import SPLITS, ConversionConfig, DataError
from sitn_tf.data.pipeline import COUNTER_NAMESPACE


def _section(counts: dict[str, int], prefix: str) -> dict[str, int]:
    return {name[len(prefix) :]: value for name, value in counts.items() if name.startswith(prefix)}


def _rows_stats(counts: dict[str, int], group: str) -> dict[str, Any]:
    rejected = _section(counts, f"{group}/rejected/")
    out: dict[str, Any] = {
        "lines": counts.get(f"{group}/lines", 0),
        "blank_lines": counts.get(f"{group}/blank_lines", 0),
        "rejected": sum(rejected.values()),
        "rejected_by_reason": dict(sorted(rejected.items())),
    }
    return out


def assemble_stats(
    counts: dict[str, int],
    config: ConversionConfig,
    inputs: Sequence[readers.InputFile],
    input_format: str,
) -> dict[str, Any]:
    """Builds the stats.json document from the merged pipeline tallies."""
    interactions = _rows_stats(counts, "interactions")
    by_domain = _section(counts, "interactions/by_domain/")
    dropped = {
        "rejected": interactions["rejected"],
        "blank_line": interactions["blank_lines"],
        "other_domain": counts.get("interactions/dropped/other_domain", 0),
        "not_a_click": counts.get("interactions/dropped/not_a_click/source", 0)
        + counts.get("interactions/dropped/not_a_click/target", 0),
        "duplicate": counts.get("interactions/dropped/duplicate", 0),
        "user_filtered": counts.get("interactions/dropped/user_filtered", 0),
    }
    interactions.update(
        {
            "rows_by_domain": dict(sorted(by_domain.items(), key=lambda kv: (-kv[1], kv[0]))[:50]),
            "clicks": {
                "source": counts.get("interactions/clicks/source", 0),
                "target": counts.get("interactions/clicks/target", 0),
            },
            "used": counts.get("interactions/used", 0),
            "dropped": dropped,
        }
    )
    stats: dict[str, Any] = {
        "format": input_format,
        "inputs": [
            {k: v for k, v in (("path", f.path), ("kind", f.kind), ("domain", f.domain)) if v}
            for f in inputs
        ],
        "config": config.to_dict(),
        "rows": {"interactions": interactions},
    }
    if any(f.kind in readers.METADATA_KINDS for f in inputs):
        metadata = _rows_stats(counts, "metadata")
        metadata.update(
            {
                "items": counts.get("metadata/rows", 0),
                "other_domain": counts.get("metadata/other_domain", 0),
                "duplicate_items": counts.get("metadata/duplicate_items", 0),
                "conflicting_items": counts.get("metadata/conflicting_items", 0),
            }
        )
        stats["rows"]["metadata"] = metadata
    stats["users"] = {
        "seen": counts.get("users/seen", 0),
        "kept": counts.get("users/kept", 0),
        "dropped": {
            reason: counts.get(f"users/dropped/{reason}", 0) for reason in inst.DROP_REASONS
        },
    }
    stats["items"] = {
        "source": counts.get("items/source", 0),
        "target": counts.get("items/target", 0),
        "categories": counts.get("items/categories", 0),
        "source_without_metadata": counts.get("items/without_metadata/source", 0),
        "target_without_metadata": counts.get("items/without_metadata/target", 0),
        "source_without_category": counts.get("items/without_category/source", 0),
        "target_without_category": counts.get("items/without_category/target", 0),
    }
    stats["splits"] = {}
    for split in SPLITS:
        instances = counts.get(f"splits/{split}/instances", 0)
        positives = counts.get(f"splits/{split}/positives", 0)
        stats["splits"][split] = {
            "instances": instances,
            "positives": positives,
            "negatives": instances - positives,
            "users": counts.get(f"splits/{split}/users", 0),
            "items": counts.get(f"splits/{split}/items", 0),
            "positives_without_source_history": counts.get(
                f"splits/{split}/positives_without_source_history", 0
            ),
            "negatives_short": counts.get(f"splits/{split}/negatives_short", 0),
        }
    stats["negatives_short"] = counts.get("negatives/short", 0)
    return stats


def check_stats(stats: dict[str, Any], config: ConversionConfig, rejects_path: str) -> None:
    """Raises DataError when the run must not publish a dataset."""
    for group, rows in stats["rows"].items():
        considered = rows["lines"] - rows["blank_lines"]
        if considered and rows["rejected"] / considered > config.max_reject_fraction:
            reasons = ", ".join(
                f"{reason} {n:,}" for reason, n in rows["rejected_by_reason"].items()
            )
            raise DataError(
                f"rejected {rows['rejected']:,} of {considered:,} {group} lines "
                f"({rows['rejected'] / considered:.2%}), more than "
                f"--max_reject_fraction={config.max_reject_fraction}: {reasons}. "
                f"The first rejected lines, with file and line number, are in "
                f"{rejects_path}"
            )
    interactions = stats["rows"]["interactions"]
    if interactions["lines"] - interactions["blank_lines"] == 0:
        raise DataError("the interaction inputs hold no data lines")
    by_domain = interactions["rows_by_domain"]
    seen = ", ".join(f"{d!r} ({n:,} rows)" for d, n in by_domain.items()) or "none"
    for flag, domain in (("--source", config.source), ("--target", config.target)):
        if by_domain.get(domain, 0) == 0:
            raise DataError(
                f"unknown {flag} domain {domain!r}: no parsed row has it; "
                f"domains in the input: {seen}"
            )
    for role, domain in (("source", config.source), ("target", config.target)):
        if interactions["clicks"][role] == 0:
            raise DataError(
                f"no clicks in the {role} domain {domain!r}: its "
                f"{by_domain[domain]:,} rows all have a rating below "
                f"--click_min_rating={config.click_min_rating}"
            )
    users = stats["users"]
    if users["kept"] == 0:
        reasons = ", ".join(f"{r} {n:,}" for r, n in users["dropped"].items() if n)
        raise DataError(
            f"no user survived the filters (>= {config.min_source_clicks} "
            f"{config.source} clicks and >= {config.min_target_clicks} "
            f"{config.target} clicks): {users['seen']:,} users dropped: {reasons}"
        )
    for split, counts in stats["splits"].items():
        if counts["instances"] == 0:
            hint = (
                " (check --eval_start/--test_start against the data's time range)"
                if config.split == "time"
                else ""
            )
            raise DataError(f"the {split} split has no instances{hint}")


def beam_counters(result: Any) -> dict[str, int]:
    """Committed (or, where a runner has none, attempted) counter values."""
    try:
        query = result.metrics().query(MetricsFilter().with_namespace(COUNTER_NAMESPACE))
    except Exception:  # some runners cannot report metrics
        return {}
    values: dict[str, int] = collections.Counter()
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        values[counter.key.metric.name] += int(value or 0)
    return dict(sorted(values.items()))


def summary_line(stats: dict[str, Any]) -> str:
    splits = " / ".join(
        f"{split} {s['instances']:,} ({s['positives']:,} pos, {s['users']:,} users)"
        for split, s in stats["splits"].items()
    )
    rows = stats["rows"]["interactions"]
    return (
        f"{stats['status']}: {rows['lines']:,} lines, {rows['rejected']:,} rejected, "
        f"{stats['users']['kept']:,}/{stats['users']['seen']:,} users kept; {splits}; "
        f"{stats['wall_time_seconds']:.1f}s -> {stats['output_dir']}"
    )


def format_counters(counters: dict[str, int]) -> str:
    if not counters:
        return "Beam counters: none reported by this runner"
    width = max(len(name) for name in counters)
    lines = [f"Beam counters ({COUNTER_NAMESPACE}):"]
    lines += [f"  {name:<{width}}  {value:>12,}" for name, value in counters.items()]
    return "\n".join(lines)
