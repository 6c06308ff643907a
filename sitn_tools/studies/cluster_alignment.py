"""Do the two domains' interest clusters match? Every seed's stage-1 model, eval split.

    python -m sitn_tools.studies.cluster_alignment \
        --config experiments/amazon_toys_games.yaml \
        --report-dir docs/results/amazon_toys_games/studies/cluster_alignment

The paper's Figure 3 argues that SITN's source and target interest clusters
lie close together. Stage 1 logs the nearest cross-domain cosine of the
trainable clusters `C^s`, `C^t` against random clusters; this study adds,
from the eval split's paired instances of every seed
(`SITNPretrainer.cluster_alignment`):

* the same cosine for the interests the clusters stand for (each cluster's
  mean instance), against random vectors of the same shapes;
* how often a user's source instance falls on the same cluster as the
  user's target instance, against chance;
* how close an instance lies to its nearest `c_k` (why `C` alone can look
  unaligned: the clusters steer Eq. 5's assignment without sitting on the
  instances).

It reads the stage-1 models that `sitn-tf experiment` left in its output
folder (`runs/<variant>/seed-<s>/pretrain/`), so run the experiment first.
Each run's numbers go to `<report-dir>/runs/<variant>-seed-<s>.json` with the
Trainer config; a later call reuses a record whose config matches the
experiment's, so the table can be rebuilt from a fresh checkout. No
training and no test split.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from sitn_tf.files import read_json, write_json
from sitn_tools.studies import write_results

# (column, numerator key, reference key): each cell is "value vs reference".
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("C cosine vs random", "cross_cosine", "random_cross_cosine"),
    ("interest cosine vs random", "centroid_cross_cosine", "random_centroid_cross_cosine"),
    ("target agreement vs chance", "target_agreement", "target_agreement_chance"),
    ("source agreement vs chance", "source_agreement", "source_agreement_chance"),
)


def _record_path(report_dir: str, variant: str, seed: int) -> str:
    return os.path.join(report_dir, "runs", f"{variant}-seed-{seed}.json")


def measure(experiment: dict[str, Any], variant: str, seed: int, transform, output: str):
    """The alignment and eval cluster health of one run's stage-1 model (JSON-safe)."""
    import keras

    from sitn_tools.experiment import config as config_lib
    from sitn_tools.experiment import runner

    path = os.path.join(runner.run_folder(output, variant, seed), "pretrain", "pretrainer.keras")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path}: no stage-1 model of {variant} seed {seed}; run "
            "`sitn-tf experiment` with this config first"
        )
    eval_steps = config_lib.run_config(
        experiment, config_lib.VARIANTS_BY_NAME[variant], seed
    ).run.eval_steps
    keras.backend.clear_session()
    model = keras.saving.load_model(path)
    dataset = runner.eval_pairs(transform, seed, eval_steps)

    def numbers(model) -> dict[str, Any]:
        return runner.eval_cluster_numbers(model, dataset, seed)["granularities"]

    trained = numbers(model)
    # The same architecture before any step (the seed's initialisation
    # draw): what the numbers are without training, instance geometry and
    # all, a stricter reference than random vectors.
    keras.utils.set_random_seed(seed)
    at_init = type(model)(model.config)
    at_init(next(iter(dataset)))
    return {
        "variant": variant,
        "seed": seed,
        "config": runner.portable(
            config_lib.trainer_config(experiment, config_lib.VARIANTS_BY_NAME[variant], seed)
        ),
        "data_config": runner.portable(experiment["data"]),
        "granularities": trained,
        "at_init": numbers(at_init),
    }


def _mean_sd(values: Sequence[float]) -> str:
    if len(values) > 1:
        return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"
    return f"{values[0]:.3f}"


def table(records: Sequence[Mapping[str, Any]]) -> str:
    """One row per (variant, K): each column's mean (± sd over seeds) against its reference."""
    header = ["variant", "K", "seeds"] + [c[0] for c in COLUMNS] + ["instance → nearest c_k"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = []
    for variant in dict.fromkeys(r["variant"] for r in records):
        mine = [r for r in records if r["variant"] == variant]
        rows.append((variant, [r["granularities"] for r in mine]))
        if all("at_init" in r for r in mine):
            rows.append((f"{variant} at initialisation", [r["at_init"] for r in mine]))
    for name, measured in rows:
        ks = sorted({int(k) for m in measured for k in m})
        for k in ks:
            entries = [m[str(k)] for m in measured if str(k) in m]
            cells = [name, str(k), str(len(entries))]
            for _, key, reference in COLUMNS:
                values = [e[key] for e in entries if key in e]
                refs = [e[reference] for e in entries if reference in e]
                cells.append(
                    f"{_mean_sd(values)} vs {statistics.mean(refs):.3f}" if values and refs else "-"
                )
            inside = [
                0.5
                * (e["source_instance_to_cluster_cosine"] + e["target_instance_to_cluster_cosine"])
                for e in entries
            ]
            cells.append(_mean_sd(inside))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from sitn_tools.experiment import config as config_lib
    from sitn_tools.experiment import runner

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="experiment YAML (data, model, seeds)")
    parser.add_argument("--report-dir", required=True, help="where records and results.md go")
    parser.add_argument(
        "--output", default=None, help="the experiment's output folder (default: its default)"
    )
    parser.add_argument(
        "--variants", default=None, help="default: the config's variants with L_i2c"
    )
    parser.add_argument("--seeds", default=None, help="default: the config's seeds")
    args = parser.parse_args(argv)

    experiment = config_lib.validate(config_lib.load(args.config), source=args.config)
    output = args.output or os.path.join(
        runner.defaults.REPO_ROOT, "runs", "experiments", experiment["name"]
    )
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else experiment["seeds"]
    variants = args.variants.split(",") if args.variants else experiment["variants"]
    unknown = sorted(set(variants) - set(config_lib.VARIANTS_BY_NAME))
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {sorted(config_lib.VARIANTS_BY_NAME)}")
    variants = [
        v
        for v in variants
        if config_lib.VARIANTS_BY_NAME[v].pretrains
        and config_lib.run_config(
            experiment, config_lib.VARIANTS_BY_NAME[v], seeds[0]
        ).model.use_i2c
    ]
    if not variants:
        parser.error("no variant trains interest clusters (stage 1 with L_i2c)")

    def kept(variant: str, seed: int) -> dict[str, Any] | None:
        path = _record_path(args.report_dir, variant, seed)
        if not os.path.exists(path):
            return None
        record = read_json(path)
        variant_spec = config_lib.VARIANTS_BY_NAME[variant]
        return record if runner.reusable(record, experiment, variant_spec, seed) else None

    transform = None
    records = []
    for variant in variants:
        for seed in seeds:
            record = kept(variant, seed)
            if record is None:
                if transform is None:
                    data = runner.prepare_data(experiment, output)
                    transform = runner.run_transform(
                        experiment, data, experiment["share_transform_with"] or output
                    )
                record = measure(experiment, variant, seed, transform, output)
                write_json(_record_path(args.report_dir, variant, seed), record)
            print(f"{variant} seed {seed}: done", flush=True)
            records.append(record)
    text = (
        f"# Cross-domain cluster alignment ({experiment['name']})\n\n"
        f"`python -m sitn_tools.studies.cluster_alignment --config {args.config} "
        f"--report-dir {args.report_dir}`\n\n"
        "Stage-1 models of the experiment, eval split (the pairs with both "
        "histories non-empty), mean ± sd over seeds; each value beside its "
        "reference level. The `at initialisation` rows measure the same "
        "architecture before any training step (each seed's initial draw).\n\n"
        "- `C cosine`: mean nearest cross-domain cosine of the trainable "
        "clusters `C^s`, `C^t` (what stage 1 logs), against random Gaussian "
        "clusters of the same shape.\n"
        "- `interest cosine`: the same for each cluster's mean instance "
        "(clusters with at least 5 eval instances), against random vectors of "
        "the same shapes.\n"
        "- `target agreement`: the share of users whose source instance has "
        "the same nearest target cluster as their target instance, against "
        "the chance level of the two usage distributions; `source agreement` "
        "the same in the source clusters.\n"
        "- `instance → nearest c_k`: mean cosine of an instance to its nearest "
        "trainable cluster (both domains averaged).\n\n" + table(records) + "\n"
    )
    write_results(args.report_dir, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
