"""Self-supervised item towers (Yao et al. CIKM 2021) against their baselines, over seeds.

Rows: `baseline` (two towers, logQ in-batch softmax, alpha = 0),
`feature_dropout` (the paper's FD: features dropped in the main task),
`spread_out` (SO, the global orthogonal regulariser), `ssl_rfm` and
`ssl_cfm` (alpha > 0, random or correlated feature masking), plus the
training-click popularity ranking. Next-click retrieval in the target
domain, leave-last-out per user, against the full corpus with the history
masked (`sitn_tf.retrieval.metrics`), Recall@10/50 overall and on the
head / tail of the corpus (head = the top `head_share` of candidates by
training clicks, `metrics.head_items`).

Hyper-parameters are chosen on the eval split of the first seed, never on
test (`select`): first the main task's learning rate and temperature on
`baseline`, then, with those fixed, each variant's own knob (alpha for the
SSL rows, the SO weight, the FD rate). Every run early-stops on eval
Recall@50 and keeps its best epoch. The first seed's selection runs *are*
its final runs (their test metrics are recorded, and looked at only in the
report).

The item features are those of `sitn_tf.retrieval.item_features`: on the
synthetic set, correlated attributes (category = planted cluster); on the
real sets only the id (no metadata), where the SSL rows cannot run.

Results are written after every run (`results.json`, `results.md`), and a
rerun with the same settings skips the runs already done.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitn_tools.retrieval import report  # numpy and scipy only
from sitn_tools.retrieval.runner import (
    REPO,
    DataSettings,
    data_line,
    split_data,
)

logger = logging.getLogger("sitn_tf.retrieval")

VARIANTS = ("baseline", "feature_dropout", "spread_out", "ssl_rfm", "ssl_cfm")
# The knob each variant adds to the baseline, searched on eval.
KNOBS = {
    "feature_dropout": "feature_dropout",
    "spread_out": "spread_out_weight",
    "ssl_rfm": "ssl_weight",
    "ssl_cfm": "ssl_weight",
}
CUTOFFS = (10, 50)
METRICS = (
    "recall@10_head",
    "recall@10_tail",
    "recall@50_head",
    "recall@50_tail",
    "recall@10",
    "recall@50",
)
TESTED = ("recall@50_tail", "recall@10_tail", "recall@50_head", "recall@50")


@dataclasses.dataclass
class SslSettings(DataSettings):
    """Every knob of one study; written into `results.json`."""

    embedding_dim: int = 32
    feature_dim: int = 16
    hidden_units: tuple[int, ...] = (64,)
    batch_size: int = 256
    max_epochs: int = 12
    patience: int = 2
    head_share: float = 0.2
    # Grids searched on eval (first seed).
    learning_rates: tuple[float, ...] = (1e-3, 3e-3)
    temperatures: tuple[float, ...] = (0.05, 0.1, 0.2)
    ssl_weights: tuple[float, ...] = (0.1, 0.3, 1.0)
    spread_out_weights: tuple[float, ...] = (0.1, 0.3, 1.0)
    feature_dropouts: tuple[float, ...] = (0.1, 0.3, 0.5)
    # Fixed (paper's values or defaults).
    ssl_temperature: float = 0.1
    ssl_batch_size: int = 256
    view_dropout: float = 0.2

    def record(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


class SslStudy:
    def __init__(self, settings: SslSettings, output: Path):
        from sitn_tf.retrieval import item_features, metrics, mutual_information
        from sitn_tf.retrieval import two_tower_losses as tl

        self.settings = settings
        self.output = Path(output)
        self.output.mkdir(parents=True, exist_ok=True)
        self.results_path = self.output / "results.json"
        self.results: dict[str, Any] = {}
        if self.results_path.exists():
            self.results = json.loads(self.results_path.read_text())
            if self.results.get("config") != settings.record():
                raise ValueError(
                    f"{self.results_path} was written with other settings; "
                    "use another --output or remove it."
                )
        self.results["config"] = settings.record()
        self.results.setdefault("runs", [])
        self.results.setdefault("selection", {})
        self.data, self.train, self.eval, self.test, self.results["data"] = split_data(settings)
        c = self.data.num_candidates
        if self.data.item_cluster is not None:
            self.features = item_features.synthetic_item_features(
                self.data.item_cluster, seed=settings.synthetic_data_seed
            )
        else:
            self.features = item_features.id_only_features(c)
        self.log_q = tl.item_log_probabilities(self.train.targets, c)
        self.head = metrics.head_items(self.train.targets, c, settings.head_share)
        names, matrix = mutual_information.mutual_information(
            self.features.table(), normalized=True
        )
        groups = mutual_information.correlated_groups(matrix)
        self.groups = groups
        self.mutual_information = matrix
        self.results["features"] = {
            "names": names,
            "vocab": self.features.vocab,
            "normalized_mutual_information": np.round(matrix, 4).tolist(),
            "cfm_groups": {
                names[f]: [names[j] for j in np.flatnonzero(groups[f])] for f in range(len(names))
            },
            "head_items": int(self.head.sum()),
            "head_share_of_train_clicks": float(
                self.head[self.train.targets].mean() if len(self.train) else 0.0
            ),
        }

    # -- runs ----------------------------------------------------------------
    def _model(self, variant: str, params: dict[str, float], seed: int):
        import keras

        from sitn_tf.retrieval import TwoTowerRetriever

        s = self.settings
        keras.utils.set_random_seed(seed)
        knob = KNOBS.get(variant)
        extra = {knob: params[knob]} if knob else {}
        if variant.startswith("ssl_"):
            extra["masking"] = variant.removeprefix("ssl_")
            extra["view_dropout"] = s.view_dropout
        if variant == "ssl_cfm":
            # Kept in the model's config: a reloaded model masks the same groups.
            extra["feature_groups"] = self.groups
            extra["mutual_information"] = self.mutual_information
        return TwoTowerRetriever(
            self.data.num_items,
            num_candidates=self.data.num_candidates,
            embedding_dim=s.embedding_dim,
            feature_dim=s.feature_dim,
            hidden_units=s.hidden_units,
            feature_vocab=self.features.vocab,
            max_tags=self.features.tags.shape[1],
            temperature=params["temperature"],
            ssl_temperature=s.ssl_temperature,
            ssl_batch_size=s.ssl_batch_size,
            seed=seed,
            item_features=self.features,
            item_log_q=self.log_q,
            **extra,
        )

    def _scores(self, model, split, score) -> dict[str, float]:
        from sitn_tf.retrieval import metrics, training

        ranks = training.target_ranks(model, split, score=score)
        return metrics.sliced_recall(ranks, split.targets, self.head, CUTOFFS)

    def fit_variant(self, variant: str, params: dict[str, float], seed: int) -> dict[str, Any]:
        """One run (reused when already in `results.json`): fit, then score eval and test."""
        for record in self.results["runs"]:
            if (
                record["variant"] == variant
                and record["seed"] == seed
                and record["params"] == params
            ):
                return record
        import tensorflow as tf

        from sitn_tf.retrieval import training

        s = self.settings
        started = time.perf_counter()
        model = self._model(variant, params, seed)
        summary = training.fit(
            model,
            self.train,
            self.eval,
            learning_rate=params["learning_rate"],
            batch_size=s.batch_size,
            max_epochs=s.max_epochs,
            patience=s.patience,
            seed=seed,
            monitor="hr@50",  # = Recall@50 with one target
            cutoffs=CUTOFFS,
        )
        # One compiled scorer for both splits (a fresh one would trace again).
        score = tf.function(model.query_scores, reduce_retracing=True)
        record = {
            "variant": variant,
            "seed": seed,
            "params": params,
            "metrics": self._scores(model, self.test, score),
            "eval_metrics": self._scores(model, self.eval, score),
            "best_epoch": summary["best_epoch"],
            "epochs_run": summary["epochs_run"],
            "stopped_early": summary["stopped_early"],
            "losses": {
                k: v
                for k, v in summary["best_eval"].items()
                if k == "loss" or k.startswith("loss_")
            },
            "seconds": round(time.perf_counter() - started, 1),
        }
        logger.info(
            "%s seed %d %s eval r@50 %.4f test %s (%.0fs, best epoch %d)",
            variant,
            seed,
            params,
            record["eval_metrics"]["recall@50"],
            {k: round(record["metrics"][k], 4) for k in METRICS},
            record["seconds"],
            record["best_epoch"],
        )
        self.results["runs"].append(record)
        self._write()
        return record

    def _pick(self, variant: str, candidates: list[dict[str, float]], seed: int) -> dict:
        sweep = [self.fit_variant(variant, params, seed) for params in candidates]
        best = max(sweep, key=lambda r: r["eval_metrics"]["recall@50"])
        self.results["selection"][variant] = {
            "params": best["params"],
            "monitor": "eval recall@50",
            "seed": seed,
            "sweep": [
                {
                    "params": r["params"],
                    "eval_recall@50": r["eval_metrics"]["recall@50"],
                    "eval_recall@50_tail": r["eval_metrics"]["recall@50_tail"],
                    "best_epoch": r["best_epoch"],
                }
                for r in sweep
            ],
        }
        self._write()
        return best["params"]

    def select(self, variants: Sequence[str], seed: int) -> dict[str, dict[str, float]]:
        """Each variant's hyper-parameters, chosen on eval Recall@50 of `seed`."""
        s = self.settings
        main = self._pick(
            "baseline",
            [
                {"learning_rate": float(lr), "temperature": float(t)}
                for lr in s.learning_rates
                for t in s.temperatures
            ],
            seed,
        )
        grids = {
            "feature_dropout": s.feature_dropouts,
            "spread_out": s.spread_out_weights,
            "ssl_rfm": s.ssl_weights,
            "ssl_cfm": s.ssl_weights,
        }
        chosen = {"baseline": main}
        for variant in variants:
            if variant == "baseline":
                continue
            values = grids[variant]
            chosen[variant] = self._pick(
                variant, [main | {KNOBS[variant]: float(v)} for v in values], seed
            )
        return chosen

    def baselines(self) -> None:
        from sitn_tf.retrieval import metrics

        c = self.data.num_candidates
        self.results["baselines"] = {
            "popularity": {
                part: metrics.sliced_recall(
                    metrics.popularity_ranks(self.train.targets, split.histories, split.targets, c),
                    split.targets,
                    self.head,
                    CUTOFFS,
                )
                for part, split in (("eval", self.eval), ("test", self.test))
            }
        }

    def run(self, seeds: Sequence[int], variants: Sequence[str]) -> None:
        unknown = sorted(set(variants) - set(VARIANTS))
        if unknown:
            raise ValueError(f"unknown variants {unknown}; known: {list(VARIANTS)}.")
        if "baseline" not in variants:
            raise ValueError("`variants` must include 'baseline' (the others are tuned on top).")
        if all(size == 1 for size in self.features.vocab.values()):
            ssl = [v for v in variants if v.startswith("ssl_") or v == "feature_dropout"]
            if ssl:
                raise ValueError(
                    f"{ssl} need item features; {self.results['data']['name']} has only ids."
                )
        self.baselines()
        self._write()
        chosen = self.select(variants, seeds[0])
        for seed in seeds:
            for variant in VARIANTS:
                if variant in variants:
                    self.fit_variant(variant, chosen[variant], seed)
        # Summed over the recorded runs, so that a rerun reusing them reports the same.
        self.results["final"] = {
            "params": chosen,
            "runs": len(self.results["runs"]),
            "run_seconds_total": round(sum(r["seconds"] for r in self.results["runs"]), 1),
        }
        self._write()

    # -- report ----------------------------------------------------------------
    def final_runs(self) -> list[dict[str, Any]]:
        chosen = {v: sel["params"] for v, sel in self.results["selection"].items()}
        return [r for r in self.results["runs"] if chosen.get(r["variant"]) == r["params"]]

    def _write(self) -> None:
        runs = self.final_runs()
        present = [v for v in VARIANTS if any(r["variant"] == v for r in runs)]
        self.results["summary"] = report.summarize(runs, present, METRICS)
        tests = [
            report.paired_test(runs, variant, "baseline", metric)
            for variant in present
            if variant != "baseline"
            for metric in TESTED
        ]
        self.results["tests"] = tests
        self.results_path.write_text(json.dumps(self.results, indent=2) + "\n")
        (self.output / "results.md").write_text(self.markdown(tests))

    def markdown(self, tests) -> str:
        r = self.results
        d = r["data"]
        lines = [
            f"# Self-supervised item towers on `{d['name']}`",
            "",
            "Next-click retrieval in the target domain, leave-last-out per user (last click = "
            "test, second-to-last = eval, earlier = train), ranked against the full corpus of "
            f"{d['num_candidates']} items with the history masked (target kept). Head = the "
            f"{r['features']['head_items']} items (top {self.settings.head_share:.0%}) with the "
            "most training clicks "
            f"({r['features']['head_share_of_train_clicks']:.0%} of them); tail = the rest. "
            "Test Recall@K, mean ± std over seeds; `popularity` ranks by training clicks "
            "(deterministic, no training, same masking).",
            "",
        ]
        table = dict(r["summary"])
        pop = r.get("baselines", {}).get("popularity")
        if pop:
            table["popularity"] = {
                "n": "–",
                "metrics": {m: {"mean": pop["test"][m], "std": None} for m in METRICS},
            }
        lines.append(report.markdown(table, tests, metrics=METRICS))
        lines.append("Chosen on the eval split (Recall@50) of the first seed:")
        for variant, sel in r["selection"].items():
            sweep = "; ".join(
                f"{row['params']} → {row['eval_recall@50']:.4f} (epoch {row['best_epoch']})"
                for row in sel["sweep"]
            )
            lines.append(f"- {variant}: {sel['params']}. Tried: {sweep}.")
        runs = self.final_runs()
        if runs:
            seconds = [x["seconds"] for x in runs]
            lines += [
                "",
                "Best epochs: "
                + ", ".join(f"{x['variant']}/{x['seed']} {x['best_epoch']}" for x in runs)
                + f". Per run {np.mean(seconds):.0f} s on average.",
            ]
            last = [f"{x['variant']}/{x['seed']}" for x in runs if not x["stopped_early"]]
            lines.append(
                f"Runs whose best eval epoch was the last allowed (max_epochs="
                f"{self.settings.max_epochs}): {', '.join(last) if last else 'none'}."
            )
        groups = r["features"]["cfm_groups"]
        if any(size > 1 for size in r["features"]["vocab"].values()):
            features = (
                "CFM groups (normalised mutual information over the item table): "
                + "; ".join(f"{k} → {', '.join(v)}" for k, v in groups.items())
                + "."
            )
        else:
            features = "Item features: the id only (the set has no item metadata)."
        lines += ["", features, "", data_line(d)]
        return "\n".join(lines) + "\n"


def run(
    settings: SslSettings,
    seeds: Sequence[int],
    variants: Sequence[str] = VARIANTS,
    output: str | Path | None = None,
) -> dict[str, Any]:
    name = f"ssl_{settings.dataset}" + ("_cross" if settings.cross_domain else "")
    output = Path(output) if output else REPO / "runs" / "retrieval" / name
    warnings.filterwarnings("ignore", message="Gradients do not exist")
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    study = SslStudy(settings, output)
    study.run(list(seeds), list(variants))
    return study.results
