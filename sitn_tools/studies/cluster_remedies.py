"""Stage-1 study: which remedy keeps SITN's interest clusters alive (Eqs. 5-7).

    python -m sitn_tools.studies.cluster_remedies \
        --config experiments/amazon_toys_games.yaml \
        --report-dir docs/results/amazon_toys_games/studies/cluster_remedies

For each remedy in `REMEDIES` (each a set of `SITNConfig` overrides, the
first being the paper), stage 1 of the experiment's `sitn` variant is
trained with the experiment's own data, Transform, step budget and seed
(evaluated every quarter of it, `STUDY_EPOCHS`), and the
eval split's cluster health of the last epoch is recorded
(`SITNPretrainer.cluster_health`, `sitn_tf.cluster_health`): dead and
effective clusters per domain, the nearest cross-domain cosine above its
random level, Eq. 7's logit gap, and the eval losses. Only eval-split
numbers are read; stage 2 and the test split are not touched here.

Each remedy's record is written to `<report-dir>/runs/<remedy>-seed-<s>.json`
as soon as it is done, and a later call reuses records made with the same
Trainer config and data, so the study resumes from a fresh checkout. The
table goes to `<report-dir>/results.md`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sitn_tf.files import read_json, write_json
from sitn_tools.studies import write_results

# Name -> SITNConfig overrides; the paper first. Assignment temperature 0.1
# puts cosine scores (in [-1, 1]) on SwAV's scale (epsilon 0.05).
REMEDIES: dict[str, dict[str, Any]] = {
    "paper": {},
    "sharp": {"assignment_temperature": 0.1},
    "sinkhorn": {"cluster_assignment": "sinkhorn", "assignment_temperature": 0.1},
    "usage_entropy": {"assignment_temperature": 0.1, "usage_entropy_weight": 1.0},
    "unit_u": {"normalize_new_clusters": True},
    "stopgrad_q": {"stop_gradient_views": True},
    "sinkhorn_unit_u": {
        "cluster_assignment": "sinkhorn",
        "assignment_temperature": 0.1,
        "normalize_new_clusters": True,
    },
    "view_negatives": {"i2c_view_negatives": True},
    "view_negatives_sinkhorn": {
        "i2c_view_negatives": True,
        "cluster_assignment": "sinkhorn",
        "assignment_temperature": 0.1,
    },
    "view_negatives_usage": {
        "i2c_view_negatives": True,
        "assignment_temperature": 0.1,
        "usage_entropy_weight": 1.0,
    },
    # Diagnostic, not a remedy: L_i2i alone (no clusters), to see what L_i2c
    # does to the instance-to-instance term.
    "i2i_only": {"use_i2c": False},
}

# Stage 1 evaluates after every epoch; the experiments' 40 epochs (for stage
# 2's early stopping) would spend most of stage 1's time evaluating, and only
# the last epoch is read here.
STUDY_EPOCHS = 4

# Granularities shown in the table (the acceptance bound is on K <= 64).
TABLE_KS = ("32", "64", "256")


def _record_path(report_dir: str, remedy: str, seed: int) -> str:
    return os.path.join(report_dir, "runs", f"{remedy}-seed-{seed}.json")


def _final(history: Mapping[str, Sequence[float]], name: str) -> float | None:
    values = history.get(name) or []
    return float(values[-1]) if values else None


def study_config(experiment: dict[str, Any], remedy: str, seed: int):
    """The `sitn` variant's run config with `REMEDIES[remedy]` and `STUDY_EPOCHS` epochs.

    Every remedy starts from the paper's Eqs. 5-7 (`runner.MODEL_FIELDS_ADDED`),
    whatever the experiment's own model section sets, so "paper" is the
    paper and each row differs from it by its overrides only.
    """
    from sitn_tools.experiment import config as config_lib
    from sitn_tools.experiment.runner import MODEL_FIELDS_ADDED

    base = config_lib.run_config(experiment, config_lib.VARIANTS_BY_NAME["sitn"], seed)
    return dataclasses.replace(
        base,
        model=base.model.replace(**{**MODEL_FIELDS_ADDED, **REMEDIES[remedy]}),
        # Stage 2's epoch selection plays no part in stage 1.
        training=dataclasses.replace(base.training, num_epochs=STUDY_EPOCHS, max_logloss_rise=None),
    )


def _comparable(config: Any) -> Any:
    """A record's config as it bears on stage 1.

    A record made before a switch existed was made with its paper value
    (`runner.MODEL_FIELDS_ADDED`), and stage 2's epoch selection
    (`max_logloss_rise`) does not touch stage 1.
    """
    from sitn_tools.experiment import runner

    config = runner.with_new_model_defaults(config)
    if isinstance(config, dict) and isinstance(config.get("training"), dict):
        config = {**config, "training": dict(config["training"])}
        config["training"].pop("max_logloss_rise", None)
    return config


def run_remedy(experiment: dict[str, Any], remedy: str, seed: int, transform) -> dict[str, Any]:
    """Stage 1 of the `sitn` variant with `REMEDIES[remedy]`; the record (JSON-safe)."""
    from sitn_tools.experiment import runner

    run = study_config(experiment, remedy, seed)
    result = runner.fit_stage1(run, transform, verbose=2)
    return {
        "remedy": remedy,
        "overrides": REMEDIES[remedy],
        "seed": seed,
        "config": run.custom_config(),
        "data_config": experiment["data"],
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "cluster_health": result.cluster_health,
        "eval_losses": {
            name[len("val_") :]: _final(result.history, name)
            for name in result.history
            if name.startswith("val_loss")
        },
        "history": result.history,
    }


def table(records: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: one row per remedy, the eval split's health at `TABLE_KS`."""
    header = ["remedy", "eval L_i2i", "eval L_i2c", "instance cos s/t"]
    for k in TABLE_KS:
        header += [
            f"K={k} dead s/t",
            f"K={k} effective s/t",
            f"K={k} cos - random",
            f"K={k} Eq. 7 gap",
        ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for record in records:
        losses = record["eval_losses"]
        instances = record["cluster_health"]["instance_cosine"]
        cells = [
            record["remedy"],
            _fmt(losses.get("loss_i2i")),
            _fmt(losses.get("loss_i2c")),
            f"{_fmt(instances.get('source'))} / {_fmt(instances.get('target'))}",
        ]
        for k in TABLE_KS:
            h = record["cluster_health"]["granularities"].get(k, {})
            cells += [
                f"{_int(h.get('source_dead_clusters'))} / {_int(h.get('target_dead_clusters'))}",
                f"{_fmt(h.get('source_effective_clusters'), 1)} / "
                f"{_fmt(h.get('target_effective_clusters'), 1)}",
                _fmt(h.get("cross_cosine_margin"), 3, signed=True),
                _fmt(h.get("logit_gap"), 2, signed=True),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value, digits: int = 3, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _int(value) -> str:
    return "-" if value is None else str(int(round(value)))


def main(argv: Sequence[str] | None = None) -> int:
    from sitn_tools.experiment import config as config_lib
    from sitn_tools.experiment import runner

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="experiment YAML (data, model, budget)")
    parser.add_argument("--report-dir", required=True, help="where records and results.md go")
    parser.add_argument("--remedies", default=",".join(REMEDIES))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    remedies = [r for r in args.remedies.split(",") if r]
    unknown = sorted(set(remedies) - set(REMEDIES))
    if unknown:
        parser.error(f"unknown remedies {unknown}; known: {sorted(REMEDIES)}")

    experiment = config_lib.validate(config_lib.load(args.config), source=args.config)
    output = os.path.join(runner.defaults.REPO_ROOT, "runs", "experiments", experiment["name"])
    os.makedirs(output, exist_ok=True)
    data = runner.prepare_data(experiment, output)
    transform = runner.run_transform(experiment, data, experiment["share_transform_with"] or output)

    def kept(remedy: str) -> dict[str, Any] | None:
        path = _record_path(args.report_dir, remedy, args.seed)
        if not os.path.exists(path):
            return None
        record = read_json(path)
        wanted = runner.portable(study_config(experiment, remedy, args.seed).custom_config())
        same = _comparable(record.get("config")) == _comparable(wanted)
        return (
            record
            if same and record.get("data_config") == runner.portable(experiment["data"])
            else None
        )

    for remedy in remedies:
        if kept(remedy) is not None:
            print(f"{remedy}: done before", flush=True)
            continue
        start = time.monotonic()
        record = runner.portable(run_remedy(experiment, remedy, args.seed, transform))
        write_json(_record_path(args.report_dir, remedy, args.seed), record)
        print(f"{remedy}: done in {time.monotonic() - start:.0f} s", flush=True)
    # The table shows every remedy measured so far, in `REMEDIES` order.
    records = [r for r in map(kept, REMEDIES) if r is not None]
    text = (
        f"# Cluster remedies, stage 1 only ({experiment['name']}, seed {args.seed})\n\n"
        f"`python -m sitn_tools.studies.cluster_remedies --config {args.config} "
        f"--report-dir {args.report_dir}`\n\n"
        "Eval split, last epoch of stage 1. `dead`: clusters that no eval "
        "instance has as its nearest; `effective`: exp(usage entropy); "
        "`instance cos`: mean cosine between two users' instances (1: every "
        "user encoded alike); `cos - random`: mean nearest cross-domain cluster cosine minus its "
        "level for random clusters of the same shape; `Eq. 7 gap`: the "
        "positive's logit minus the largest cluster negative's (both "
        "directions averaged).\n\n" + table(records) + "\n"
    )
    write_results(args.report_dir, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
