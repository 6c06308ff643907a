"""Experiment configuration and the paper's variants (Tables 2-4).

An experiment file (YAML or JSON) has these keys; only `data` is required:

    name: amazon_books_movies          # names the output folder
    data:                              # where the converted data comes from, one of
      dir: path/to/converted           #   data already written by `sitn-tf data ...`
      command: interactions            #   or a `sitn-tf data COMMAND` run with
      args: {interactions: ..., source: books, target: movies}   # these flags
    seeds: [1, 2, 3, 4, 5]
    variants: [din, no_pretrain, ...]  # default: all of VARIANTS, in that order
    single_granularity: 64             # K of the "w/o MG" variants
    transform: {...}                   # the sections of `sitn_tf.config.Config`,
    model: {...}                       #   as in a pipeline config
    training: {...}
    run: {pretrain_steps: 600, train_steps: 2000, eval_steps: 100, beam_args: [...]}
    variant_training:                  # optional: `training` overrides per variant,
      din: {learning_rate: 0.001}      #   e.g. a learning rate per model family
    cluster_figure_variant: sitn       # whose stage-1 clusters Figure 3 shows (none
                                       # when that variant is not run)
    report_dir: docs/results/...       # optional: copy the report files here
    share_transform_with: runs/experiments/amazon_books_movies
                                       # optional: reuse another experiment's
                                       # Transform (same data and `transform`)

Relative paths in `data` and `report_dir` are relative to the repository root,
so a config runs the same from any working directory.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any

from pipelines import defaults
from sitn_tf.config import Config
from sitn_tf.files import read_mapping


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of the paper's tables: what changes against the full SITN.

    Attributes:
      name: identifier used in folders, `results.json` and `--variants`.
      label: the row label, as in the paper.
      group: the table the row belongs to.
      baseline: a competitor (the paired test compares SITN with the best of these).
      model: `SITNConfig` overrides; `single_granularity` is filled in later.
      training: training overrides (`model: din` selects the DIN ranker).
      run: run overrides (`pretrain: false` skips stage 1).
    """

    name: str
    label: str
    group: str
    baseline: bool = False
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    training: dict[str, Any] = dataclasses.field(default_factory=dict)
    run: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def pretrains(self) -> bool:
        return bool(self.run.get("pretrain", True)) and self.training.get("model") != "din"


_SINGLE = "single_granularity"  # placeholder for the configured single K

VARIANTS: tuple[Variant, ...] = (
    Variant(
        "din",
        "DIN (target domain only)",
        "Table 2",
        baseline=True,
        training={"model": "din"},
        run={"pretrain": False},
    ),
    Variant(
        "i2i_only",
        "w/o L_i2c (I2I-only pretraining, SEMI-like)",
        "Table 3",
        baseline=True,
        model={"use_i2c": False},
    ),
    Variant(
        "no_pretrain", "w/o L_i2c & L_i2i (no pretraining)", "Table 3", run={"pretrain": False}
    ),
    Variant("no_i2i", "w/o L_i2i", "Table 3", model={"use_i2i": False}),
    Variant("no_mg_mv", "w/o MG & MV", "Table 4", model={"granularities": _SINGLE, "top_k": 1}),
    Variant("no_mg", "w/o MG (one granularity)", "Table 4", model={"granularities": _SINGLE}),
    Variant("no_mv", "w/o MV (top_k = 1)", "Table 4", model={"top_k": 1}),
    Variant("sitn", "SITN (full)", "Table 2"),
)
VARIANTS_BY_NAME = {v.name: v for v in VARIANTS}

DEFAULTS: dict[str, Any] = {
    "name": None,
    "data": None,
    "seeds": [1, 2, 3, 4, 5],
    "variants": [v.name for v in VARIANTS],
    "single_granularity": None,
    "transform": {},
    "model": {},
    "training": {},
    "run": {},
    "variant_training": {},
    "cluster_figure_variant": "sitn",
    "report_dir": None,
    "share_transform_with": None,
}


def _resolve(path: str) -> str:
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(defaults.REPO_ROOT, path))


def load(path: str) -> dict[str, Any]:
    """Reads and validates an experiment file; errors name the file and key."""
    given = read_mapping(path)
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; known: {sorted(DEFAULTS)}")
    config = copy.deepcopy(DEFAULTS)
    config.update(copy.deepcopy(given))
    config["name"] = config["name"] or os.path.splitext(os.path.basename(path))[0]
    return validate(config, source=path)


def validate(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    data = config.get("data")
    if not isinstance(data, dict) or (("dir" in data) == ("command" in data)):
        raise ValueError(f"{source}: `data` must have exactly one of `dir` or `command`")
    if "dir" in data:
        data["dir"] = _resolve(str(data["dir"]))
    else:
        if data["command"] not in ("interactions", "amazon", "synthetic"):
            raise ValueError(
                f"{source}: `data.command` must be interactions|amazon|synthetic, "
                f"got {data['command']!r}"
            )
        args = dict(data.get("args") or {})
        for key in ("interactions", "items", "reviews", "metadata"):
            if key in args:
                args[key] = _resolve(str(args[key]))
        data["args"] = args
    seeds = config["seeds"]
    if isinstance(seeds, int):
        seeds = list(range(1, seeds + 1))
    if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"{source}: `seeds` must be distinct integers, got {config['seeds']}")
    config["seeds"] = list(seeds)
    unknown = [v for v in config["variants"] if v not in VARIANTS_BY_NAME]
    if unknown or not config["variants"]:
        raise ValueError(
            f"{source}: unknown variant(s) {unknown}; known: {[v.name for v in VARIANTS]}"
        )
    overrides = config.get("variant_training") or {}
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise ValueError(
            f"{source}: `variant_training` must map variant names to `training` overrides, "
            f"got {overrides!r}"
        )
    unknown = sorted(set(overrides) - set(VARIANTS_BY_NAME))
    if unknown:
        raise ValueError(
            f"{source}: `variant_training` names unknown variant(s) {unknown}; "
            f"known: {[v.name for v in VARIANTS]}"
        )
    config["variant_training"] = overrides
    base = Config.from_dict(
        {key: config[key] for key in ("transform", "model", "training", "run")}, source=source
    )
    granularities = list(base.model.granularities)
    single = config["single_granularity"]
    if single is None:
        single = granularities[len(granularities) // 2]
    if int(single) < 1:
        raise ValueError(f"{source}: `single_granularity` must be >= 1, got {single}")
    config["single_granularity"] = int(single)
    for variant in config["variants"]:
        run_config(config, VARIANTS_BY_NAME[variant], seed=0, source=source)
    # A figure variant that is not run (e.g. `--variants din`) means no
    # Figure 3 this time; an unknown name is still an error.
    if config["cluster_figure_variant"] not in VARIANTS_BY_NAME:
        raise ValueError(
            f"{source}: `cluster_figure_variant` {config['cluster_figure_variant']!r} "
            f"is not a variant; choose one of {sorted(VARIANTS_BY_NAME)}"
        )
    if not VARIANTS_BY_NAME[config["cluster_figure_variant"]].pretrains:
        raise ValueError(f"{source}: `cluster_figure_variant` must be a pretrained variant")
    if config["report_dir"]:
        config["report_dir"] = _resolve(str(config["report_dir"]))
    if config["share_transform_with"]:
        config["share_transform_with"] = _resolve(str(config["share_transform_with"]))
    return config


def run_config(
    config: dict[str, Any], variant: Variant, seed: int, source: str = "config"
) -> Config:
    """The typed config of one run: the experiment's sections, the variant applied."""
    model = dict(config["model"])
    for key, value in variant.model.items():
        model[key] = [config["single_granularity"]] if value == _SINGLE else value
    return Config.from_dict(
        {
            "transform": config["transform"],
            "model": model,
            "training": {
                **config["training"],
                **(config.get("variant_training") or {}).get(variant.name, {}),
                **variant.training,
                "seed": int(seed),
            },
            "run": {**config["run"], **variant.run},
        },
        source=f"{source} (variant {variant.name})",
    )


def trainer_config(config: dict[str, Any], variant: Variant, seed: int) -> dict[str, Any]:
    """The Trainers' `custom_config` of one run (kept in each run's record)."""
    return run_config(config, variant, seed).custom_config()
