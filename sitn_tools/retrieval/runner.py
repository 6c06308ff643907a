"""TiMiRec's comparison (its Tables 2 and 4) over seeds, on synthetic or real sequences.

Rows: `gru4rec`, `comirec` (Algorithm 1's phase 1 alone), `timirec` (phase 1
then phase 2), `joint_train` (phase 2 from scratch, no pretraining) and
`no_stopgrad` (phases 1-2 without `sg[p]` in Eq. 9), `no_distill` (phases
1-2 with the distillation term dropped, not in the paper: the predictor then
learns only through the mixing of Eq. 4 in `L_rec`), plus the popularity
ranking as a simple baseline. Every model is trained with early stopping on
the eval split (second-to-last click) and scored once on the test split
(last click), against the full corpus with the history masked
(`sitn_tf.retrieval.metrics`).

Phase 1 of `timirec`, `no_stopgrad` and `no_distill` *is* the `comirec` run of the same
seed: its weights are saved once and both continue from them, as Algorithm 1
does. The temperature `T` is chosen on the eval split of the first seed
(TiMiRec from that seed's ComiRec), then fixed for every seed and for the two
ablations.

Results are written after every run (`results.json`, `results.md`), and runs
already in `results.json` are skipped, so an interrupted grid resumes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitn_tools.retrieval import report  # numpy and scipy only

logger = logging.getLogger("sitn_tf.retrieval")

VARIANTS = ("gru4rec", "comirec", "timirec", "joint_train", "no_stopgrad", "no_distill")
DATASETS = {
    # name: (folder under the data dir, target domain, source domain)
    "amazon_toys_games": ("amazon_toys_games", "games", "toys"),
    "amazon_books_movies": ("amazon_books_movies", "movies", "books"),
}
REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class DataSettings:
    """Which sequences a retrieval study reads (shared by every study of this package)."""

    dataset: str = "synthetic"
    cross_domain: bool = False
    # Relative paths are taken from the repository root (recorded as given).
    data_dir: str = "../shared/data"
    max_len: int = 20
    # The synthetic generator (fixed data, seed-independent; model seeds vary).
    synthetic_users: int = 2000
    synthetic_clusters: int = 20
    synthetic_items_per_cluster: int = 50
    synthetic_interests_per_user: int = 3
    synthetic_min_length: int = 20
    synthetic_max_length: int = 40
    synthetic_mean_run: float = 4.0
    synthetic_data_seed: int = 0


@dataclasses.dataclass
class Settings(DataSettings):
    """Every knob of one TiMiRec study; written into `results.json`."""

    embedding_dim: int = 32
    num_interests: int = 4
    attention_units: int = 32
    predictor_dim: int = 32
    predictor_units: int = 32
    batch_size: int = 256
    learning_rate: float = 1e-3
    max_epochs: int = 40
    patience: int = 3
    monitor: str = "ndcg@10"
    temperatures: tuple[float, ...] = (0.1, 0.3, 1.0)


def load_data(settings: DataSettings):
    from sitn_tf.retrieval import data

    if settings.dataset == "synthetic":
        if settings.cross_domain:
            raise ValueError("`--cross-domain` applies to the real sets only.")
        return data.synthetic(
            num_users=settings.synthetic_users,
            num_clusters=settings.synthetic_clusters,
            items_per_cluster=settings.synthetic_items_per_cluster,
            interests_per_user=settings.synthetic_interests_per_user,
            min_length=settings.synthetic_min_length,
            max_length=settings.synthetic_max_length,
            mean_run=settings.synthetic_mean_run,
            seed=settings.synthetic_data_seed,
        )
    if settings.dataset not in DATASETS:
        raise ValueError(
            f"`dataset` must be 'synthetic' or one of {sorted(DATASETS)}, got {settings.dataset!r}."
        )
    folder, target, source = DATASETS[settings.dataset]
    path = REPO / settings.data_dir / folder / "interactions.tsv"  # absolute stays absolute
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (set --data-dir).")
    return data.load_interactions(
        path, target_domain=target, source_domain=source if settings.cross_domain else None
    )


def split_data(settings: DataSettings) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """`(sequences, train, eval, test, summary)`: the leave-last-out split and its counts."""
    from sitn_tf.retrieval import data as data_lib

    started = time.perf_counter()
    sequences = load_data(settings)
    train, eval_split, test, counts = data_lib.leave_last_out(sequences, settings.max_len)
    summary = {
        "name": sequences.name,
        "num_candidates": sequences.num_candidates - 1,
        "num_history_items": sequences.num_items - 1,
        "skipped_rows": sequences.skipped,
        **counts,
        "load_seconds": round(time.perf_counter() - started, 1),
    }
    logger.info("data %s", summary)
    return sequences, train, eval_split, test, summary


def co_click_ranks(train, split, num_items: int, num_candidates: int) -> np.ndarray:
    """Ranks under a sequential co-click score, history masked, ties against the target.

    `C[h, j]` counts the train instances whose history holds `h` and whose
    target is `j` (item `h` came before a click on `j`, within `max_len`
    clicks). A query scores candidate `j` by `sum_h C[h, j]` over its
    distinct history items, plus `1e-6 x` the train popularity of `j` to
    order the items no history item points to.
    """
    from scipy import sparse

    from sitn_tf.retrieval import metrics

    rows = np.repeat(np.arange(len(train)), train.histories.shape[1])
    items = train.histories.reshape(-1)
    keep = items > 0
    # (instance, history item) once each, then history item -> target counts.
    history = sparse.csr_matrix(
        (np.ones(keep.sum()), (rows[keep], items[keep])), shape=(len(train), num_items)
    )
    history.data[:] = 1.0
    target = sparse.csr_matrix(
        (np.ones(len(train)), (np.arange(len(train)), train.targets)),
        shape=(len(train), num_candidates),
    )
    co_click = (history.T @ target).tocsr()  # (num_items, num_candidates)
    popularity = np.bincount(train.targets, minlength=num_candidates).astype(np.float64)
    ranks = []
    for start in range(0, len(split), 1024):
        h = split.histories[start : start + 1024]
        t = split.targets[start : start + 1024]
        r = np.repeat(np.arange(len(h)), h.shape[1])
        k = h.reshape(-1) > 0
        query = sparse.csr_matrix(
            (np.ones(k.sum()), (r[k], h.reshape(-1)[k])), shape=(len(h), num_items)
        )
        query.data[:] = 1.0
        scores = (query @ co_click).toarray() + 1e-6 * popularity
        ranks.append(metrics.target_ranks(metrics.mask_history(scores, h, t), t))
    return np.concatenate(ranks)


def data_line(summary: dict[str, Any]) -> str:
    """The data sentence of a results.md, from `split_data`'s summary."""
    return (
        f"Data: {summary['users']} users ({summary['users_too_short']} with fewer than 3 target "
        f"clicks left out), {summary['train_instances']} train instances, skipped rows "
        f"{summary['skipped_rows'] or 'none'}."
    )


class Study:
    def __init__(self, settings: Settings, output: Path, work_dir: Path):
        self.settings = settings
        self.output = Path(output)
        self.work_dir = Path(work_dir)
        self.output.mkdir(parents=True, exist_ok=True)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.results_path = self.output / "results.json"
        self.results: dict[str, Any] = {}
        if self.results_path.exists():
            self.results = json.loads(self.results_path.read_text())
            if self.results.get("config") != dataclasses.asdict(settings) | {
                "temperatures": list(settings.temperatures)
            }:
                raise ValueError(
                    f"{self.results_path} was written with other settings; "
                    "use another --output or remove it."
                )
        self.results.setdefault(
            "config",
            dataclasses.asdict(settings) | {"temperatures": list(settings.temperatures)},
        )
        self.results.setdefault("runs", [])
        # Phase 1 does not depend on the temperatures tried after it.
        phase1 = {k: v for k, v in self.results["config"].items() if k != "temperatures"}
        self.fingerprint = hashlib.sha256(json.dumps(phase1, sort_keys=True).encode()).hexdigest()[
            :12
        ]
        self.data, self.train, self.eval, self.test, self.results["data"] = split_data(settings)

    # -- models --------------------------------------------------------------
    def _model(self, variant: str, temperature: float, seed: int):
        import keras

        from sitn_tf.retrieval import GRU4Rec, TiMiRec

        s = self.settings
        keras.utils.set_random_seed(seed)
        if variant == "gru4rec":
            return GRU4Rec(
                self.data.num_items, s.embedding_dim, num_candidates=self.data.num_candidates
            )
        return TiMiRec(
            self.data.num_items,
            embedding_dim=s.embedding_dim,
            num_interests=s.num_interests,
            attention_units=s.attention_units,
            predictor_dim=s.predictor_dim,
            predictor_units=s.predictor_units,
            temperature=temperature,
            phase="distill" if variant == "joint_train" else "pretrain",
            stop_gradient=variant != "no_stopgrad",
            num_candidates=self.data.num_candidates,
        )

    def _fit(self, model, seed: int) -> dict:
        from sitn_tf.retrieval import training

        s = self.settings
        summary = training.fit(
            model,
            self.train,
            self.eval,
            learning_rate=s.learning_rate,
            batch_size=s.batch_size,
            max_epochs=s.max_epochs,
            patience=s.patience,
            seed=seed,
            monitor=s.monitor,
        )
        summary["phase"] = getattr(model, "phase", "next_item")
        return summary

    def _comirec(self, seed: int, temperature: float):
        """Phase 1 for `seed`, trained once and then loaded from its weights file."""
        # The settings' fingerprint in the name: weights of other settings never load.
        stem = f"comirec_{self.fingerprint}_seed{seed}"
        path = self.work_dir / f"{stem}.weights.h5"
        summary_path = self.work_dir / f"{stem}.json"
        model = self._model("comirec", temperature, seed)
        if path.exists() and summary_path.exists():
            model.load_weights(path)
            return model, json.loads(summary_path.read_text())
        summary = self._fit(model, seed)
        model.save_weights(path)
        summary_path.write_text(json.dumps(summary))
        return model, summary

    def _distill_from_comirec(self, variant: str, seed: int, temperature: float):
        model, phase1 = self._comirec(seed, temperature)
        model.temperature = float(temperature)
        model.stop_gradient = variant != "no_stopgrad"
        model.use_distillation = variant != "no_distill"
        model.set_phase("distill")
        keras_seed = seed  # the predictor was initialised under this seed in `_model`
        return model, [phase1, self._fit(model, keras_seed)]

    def train_variant(self, variant: str, seed: int, temperature: float):
        if variant == "comirec":
            model, phase1 = self._comirec(seed, temperature)
            return model, [phase1]
        if variant in ("timirec", "no_stopgrad", "no_distill"):
            return self._distill_from_comirec(variant, seed, temperature)
        model = self._model(variant, temperature, seed)
        return model, [self._fit(model, seed)]

    # -- the grid -----------------------------------------------------------
    def select_temperature(self, seed: int) -> float:
        s = self.settings
        if "selection" in self.results:
            return self.results["selection"]["temperature"]
        if len(s.temperatures) == 1:
            chosen = float(s.temperatures[0])
            self.results["selection"] = {"temperature": chosen, "sweep": [], "note": "fixed"}
            return chosen
        sweep = []
        for temperature in s.temperatures:
            _, phases = self._distill_from_comirec("timirec", seed, temperature)
            best = phases[-1]["best_eval"]
            sweep.append(
                {
                    "temperature": float(temperature),
                    "eval": {k: best[k] for k in report.METRICS},
                    "best_epoch": phases[-1]["best_epoch"],
                }
            )
            logger.info("T=%s eval %s", temperature, sweep[-1]["eval"])
        chosen = max(sweep, key=lambda r: r["eval"][s.monitor])["temperature"]
        self.results["selection"] = {
            "temperature": chosen,
            "seed": seed,
            "monitor": f"eval {s.monitor} of timirec",
            "sweep": sweep,
        }
        self._write()
        return chosen

    def baselines(self) -> None:
        from sitn_tf.retrieval import metrics

        n, c = self.data.num_items, self.data.num_candidates
        self.results["baselines"] = {
            "popularity": {
                part: metrics.summarize(
                    metrics.popularity_ranks(self.train.targets, split.histories, split.targets, c)
                )
                for part, split in (("eval", self.eval), ("test", self.test))
            },
            "co_click": {
                part: metrics.summarize(co_click_ranks(self.train, split, n, c))
                for part, split in (("eval", self.eval), ("test", self.test))
            },
        }

    def run(self, seeds: Sequence[int], variants: Sequence[str]) -> None:
        from sitn_tf.retrieval import training

        unknown = sorted(set(variants) - set(VARIANTS))
        if unknown:
            raise ValueError(f"unknown variants {unknown}; known: {list(VARIANTS)}.")
        self.baselines()
        self._write()
        temperature = self.select_temperature(seeds[0])
        done = {(r["variant"], r["seed"]) for r in self.results["runs"]}
        for seed in seeds:
            for variant in VARIANTS:
                if variant not in variants or (variant, seed) in done:
                    continue
                started = time.perf_counter()
                model, phases = self.train_variant(variant, seed, temperature)
                record = {
                    "variant": variant,
                    "seed": seed,
                    "metrics": training.evaluate(model, self.test),
                    "eval_metrics": {k: phases[-1]["best_eval"][k] for k in report.METRICS},
                    "temperature": temperature if variant not in ("gru4rec", "comirec") else None,
                    "phases": [
                        {
                            k: p[k]
                            for k in (
                                "phase",
                                "best_epoch",
                                "epochs_run",
                                "stopped_early",
                                "train_seconds",
                            )
                        }
                        for p in phases
                    ],
                    "seconds": round(time.perf_counter() - started, 1),
                }
                self.results["runs"].append(record)
                logger.info(
                    "%s seed %d test %s",
                    variant,
                    seed,
                    {k: round(v, 4) for k, v in record["metrics"].items()},
                )
                self._write()

    def _write(self) -> None:
        runs = self.results["runs"]
        present = [v for v in VARIANTS if any(r["variant"] == v for r in runs)]
        self.results["summary"] = report.summarize(runs, present)
        tests = []
        for other in ("comirec", "joint_train", "no_stopgrad", "no_distill", "gru4rec"):
            if "timirec" in present and other in present:
                for metric in report.TEST_METRICS:
                    tests.append(report.paired_test(runs, "timirec", other, metric))
        self.results["tests"] = tests
        self.results_path.write_text(json.dumps(self.results, indent=2) + "\n")
        (self.output / "results.md").write_text(self.markdown(tests))

    def markdown(self, tests) -> str:
        r = self.results
        lines = [
            f"# TiMiRec on `{r['data']['name']}`",
            "",
            "Next-item retrieval, leave-last-out per user (last target-domain click = test, "
            "second-to-last = eval, earlier = train), ranked against the full corpus of "
            f"{r['data']['num_candidates']} items with the history masked (target kept). "
            "Test metrics, mean ± std over seeds.",
            "",
            report.markdown(r["summary"], tests),
        ]
        baselines = r.get("baselines", {})
        if baselines:
            lines += [
                "Simple baselines (deterministic, no training, same masking): `popularity` ranks "
                "by training clicks; `co_click` sums, over the history's items, how often each "
                "preceded a click on the candidate in the train instances (popularity breaks ties).",
                "",
                "| baseline | " + " | ".join(report.METRICS) + " |",
                "|---|" + "---|" * len(report.METRICS),
            ]
            for name, parts in baselines.items():
                cells = " | ".join(f"{parts['test'][m]:.4f}" for m in report.METRICS)
                lines.append(f"| {name} | {cells} |")
            lines.append("")
        sel = r.get("selection")
        if sel:
            lines.append(f"Temperature T = {sel['temperature']} ({sel.get('monitor', 'fixed')}).")
            for row in sel.get("sweep", []):
                lines.append(
                    f"- T = {row['temperature']}: eval ndcg@10 {row['eval']['ndcg@10']:.4f}, "
                    f"hr@10 {row['eval']['hr@10']:.4f} (best epoch {row['best_epoch']})"
                )
            lines.append("")
        last = [
            f"{x['variant']} seed {x['seed']} ({p['phase']})"
            for x in r["runs"]
            for p in x["phases"]
            if not p["stopped_early"]
        ]
        lines.append(
            "Runs whose best eval epoch was the last one allowed "
            f"(max_epochs={self.settings.max_epochs}): "
            + (", ".join(last) if last else "none")
            + "."
        )
        lines += ["", data_line(r["data"])]
        return "\n".join(lines) + "\n"


def run(
    settings: Settings,
    seeds: Sequence[int],
    variants: Sequence[str] = VARIANTS,
    output: str | Path | None = None,
    work_dir: str | Path | None = None,
) -> dict[str, Any]:
    name = f"timirec_{settings.dataset}" + ("_cross" if settings.cross_domain else "")
    output = Path(output) if output else REPO / "runs" / "retrieval" / name
    work_dir = Path(work_dir) if work_dir else REPO / "runs" / "retrieval" / name / "weights"
    warnings.filterwarnings("ignore", message="Gradients do not exist")
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    study = Study(settings, output, work_dir)
    study.run(list(seeds), list(variants))
    return study.results
