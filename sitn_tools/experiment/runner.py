"""`sitn-tf experiment`: every variant x seed on one converted and transformed dataset.

Steps (each reused when already done, so an interrupted experiment resumes):

1. Convert the data once (`sitn-tf data ...`, flags from the config), or take
   converted data as given.
2. Run the pipeline up to the Transform once (`create_pipeline(...,
   transform_only=True)` with the same components, schema and
   `preprocessing_fn` as the full pipeline).
3. For each variant and seed: the training API the Trainers' `run_fn`s
   adapt (`sitn_tf.training`): stage 1 when the variant pretrains, then
   stage 2 (early stopping on the eval split, best epoch recorded) from the
   pretrained model.
4. Score the exported SavedModel's `serving_default` on the raw test split,
   once per run: what is measured is what ships. AUC, logloss and GAUC, the
   same on known candidates (in the train vocabulary) and AUC by target
   history length (`baselines.row_metrics`) go to
   `runs/<variant>/seed-<s>/result.json`.
5. The simple baselines (`baselines.py`: novelty, popularity, co-click from
   either history, and their blend) on the same test rows, from the train
   split; no training, computed on every invocation (seconds).
6. Report: `results.json`, `results.md` (the paper's table layout with mean
   +- std, the simple baselines' rows and a paired test against the best
   baseline), `auc.png`, and the Figure-3 cluster analysis
   (`clusters_tsne.png`, `clusters.json`).

Output layout under `--output` (default `runs/experiments/<name>`):

    data/                       converted data (when the config converts)
    transform/, metadata.db     the Transform-only pipeline
    runs/<variant>/seed-<s>/    pretrain/ (pretrainer.keras, logs), finetune/ (model, logs),
                                result.json
    results.json results.md auc.png clusters_tsne.png clusters.json

With a `report_dir` holding an `analysis.md` (the reading of the tables,
written by hand), results.md ends with it. With a `report_dir`, each finished run's record (metrics, curves and config;
no model) is also written to `<report_dir>/runs/<variant>-seed-<s>.json` as
soon as the run ends. Those files are meant to be committed: a checkout
without `runs/` (another machine, a fresh clone) resumes the experiment from
them and trains only the runs that have no record made with the same
settings. The Figure-3 analysis needs the figure run's stage-1 model; when
that run was reused from a committed record, the committed `clusters.json`
is kept.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import time
from typing import Any

import numpy as np

from pipelines import defaults
from sitn_tf.files import read_json, write_json
from sitn_tools.experiment import baselines as baselines_lib
from sitn_tools.experiment import config as config_lib

REPORT_FILES = ("results.json", "results.md", "auc.png", "clusters_tsne.png", "clusters.json")
RESULT_FILE = "result.json"
ANALYSIS_FILE = "analysis.md"


def _say(message: str) -> None:
    print(f"[experiment] {message}", flush=True)


def portable(value: Any) -> Any:
    """`value` with paths inside the repository's parent folder made relative to the repo.

    Report files are meant to be committed and compared across machines; an
    absolute path says nothing on another machine.
    """
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [portable(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        parent = os.path.dirname(defaults.REPO_ROOT)
        if value == parent or value.startswith(parent + os.sep):
            return os.path.relpath(value, defaults.REPO_ROOT)
    return value


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def run_folder(output: str, variant: str, seed: int) -> str:
    """Where one run keeps its models, logs and `result.json`."""
    return os.path.join(output, "runs", variant, f"seed-{seed}")


def committed_record_path(report_dir: str, variant: str, seed: int) -> str:
    """Where a run's record is kept beside the report, to be committed."""
    return os.path.join(report_dir, "runs", f"{variant}-seed-{seed}.json")


# Model fields added after records were committed, with the value that
# reproduces the behaviour before each existed (the paper's Eqs. 5-7), which
# is not necessarily today's default.
MODEL_FIELDS_ADDED: dict[str, Any] = {
    "cluster_assignment": "softmax",
    "assignment_temperature": 1.0,
    "sinkhorn_iterations": 3,
    "normalize_new_clusters": False,
    "stop_gradient_views": False,
    "i2c_view_negatives": False,
    "usage_entropy_weight": 0.0,
}
# The same for the training section: no logloss guard.
TRAINING_FIELDS_ADDED: dict[str, Any] = {"max_logloss_rise": None}
# Transform options of features no ranker reads (the candidate's item
# attributes, for the retrieval Trainer): whatever their value, the rankers
# train the same, so they are left out of the comparison.
TRANSFORM_FIELDS_UNREAD: tuple[str, ...] = ("max_item_tags",)


def with_new_model_defaults(recorded: Any) -> Any:
    """A record's Trainer config with `MODEL_FIELDS_ADDED` and `TRAINING_FIELDS_ADDED` filled in.

    A record made before a model field existed was made with the behaviour
    the field's listed value reproduces, so it stays comparable with a
    config that sets that value. `TRANSFORM_FIELDS_UNREAD` are dropped.
    """
    if not isinstance(recorded, dict) or not isinstance(recorded.get("model"), dict):
        return recorded
    transform = {
        k: v
        for k, v in (recorded.get("transform") or {}).items()
        if k not in TRANSFORM_FIELDS_UNREAD
    }
    return {
        **recorded,
        "transform": transform,
        "model": {**MODEL_FIELDS_ADDED, **recorded["model"]},
        "training": {**TRAINING_FIELDS_ADDED, **(recorded.get("training") or {})},
    }


def reusable(record: dict[str, Any], config: dict[str, Any], variant, seed: int) -> bool:
    """A record counts only if made with the same Trainer settings and the same data."""
    wanted = portable(config_lib.trainer_config(config, variant, seed))
    return with_new_model_defaults(record.get("config")) == with_new_model_defaults(
        wanted
    ) and record.get("data_config", config["data"]) == portable(config["data"])


# --------------------------------------------------------------------------- data


def prepare_data(config: dict[str, Any], output: str) -> str:
    """Converted data folder; converts once and reuses it while the flags are unchanged."""
    data = config["data"]
    if "dir" in data:
        folder = data["dir"]
        stats = os.path.join(folder, "stats.json")
        if not os.path.exists(stats) or read_json(stats).get("status") != "ok":
            raise FileNotFoundError(f"{folder}: no successful conversion (stats.json status ok)")
        return folder
    folder = os.path.join(output, "data")
    request = {"command": data["command"], "args": data["args"]}
    marker = os.path.join(folder, "experiment_conversion.json")
    stats = os.path.join(folder, "stats.json")
    if (
        os.path.exists(marker)
        and read_json(marker) == request
        and os.path.exists(stats)
        and read_json(stats).get("status") == "ok"
    ):
        _say(f"data: reusing {folder}")
        return folder
    argv = [sys.executable, "-m", "sitn_tf", "data", data["command"]]
    for key, value in data["args"].items():
        if value is True:
            argv.append(f"--{key}")
        elif value not in (False, None):
            argv += [f"--{key}", str(value)]
    argv += ["--output_dir", folder, "--overwrite"]
    _say(f"data: sitn-tf data {data['command']} -> {folder}")
    start = time.monotonic()
    subprocess.run(argv, check=True)
    write_json(marker, request)
    _say(f"data: converted in {time.monotonic() - start:.1f} s")
    return folder


def run_transform(config: dict[str, Any], data: str, output: str):
    """The pipeline's own Transform on `data` (cached in `output/metadata.db`)."""
    from pipelines.transform_run import run_transform as run_pipeline_transform

    base = config_lib.run_config(config, config_lib.VARIANTS_BY_NAME["sitn"], seed=0)
    return run_pipeline_transform(
        data,
        output,
        base,
        beam_pipeline_args=base.run.beam_args,
        pipeline_name=f"{defaults.PIPELINE_NAME}-experiment",
    )


# --------------------------------------------------------------------------- one run


def _stage_inputs(stage: str, run, transform):
    """One stage's model config and datasets, in a fresh Keras session.

    A fresh session per stage keeps names and memory from piling up; a
    pretrainer object from an earlier session stays usable.
    """
    import keras
    import tensorflow_transform as tft

    from sitn_tf import training

    keras.backend.clear_session()
    return training.stage_inputs(
        stage,
        run,
        tft.TFTransformOutput(transform.transform_graph),
        transform.split_files("train"),
        transform.split_files("eval"),
    )


def fit_stage1(run, transform, **kwargs):
    """Stage 1 of a run config on the Transform output (`training.fit_pretrainer`'s result).

    `kwargs` go to `fit_pretrainer` (e.g. `log_dir`, `verbose`).
    """
    from sitn_tf import training

    stage = _stage_inputs(training.PRETRAIN, run, transform)
    return training.fit_pretrainer(
        stage.model_config,
        run.training,
        stage.train,
        stage.eval,
        steps=run.run.pretrain_steps,
        eval_steps=run.run.eval_steps,
        **kwargs,
    )


def score_test_split(serving_model_dir: str, test_pattern: str, batch_size: int = 1024):
    """`(labels, probabilities, user_ids, item_ids)`: `serving_default` on the raw test split."""
    import tensorflow as tf

    from sitn_tf import features as F

    files = sorted(tf.io.gfile.glob(test_pattern))
    if not files:
        raise FileNotFoundError(f"no test examples match {test_pattern}")
    serve = tf.saved_model.load(serving_model_dir).signatures["serving_default"]
    spec = {
        F.LABEL: tf.io.FixedLenFeature([], tf.int64),
        F.USER_ID: tf.io.FixedLenFeature([], tf.string),
        F.ITEM_ID: tf.io.FixedLenFeature([], tf.string),
    }
    labels, scores, users, items = [], [], [], []
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size):
        parsed = tf.io.parse_example(batch, spec)
        labels.append(parsed[F.LABEL].numpy())
        users.append(parsed[F.USER_ID].numpy())
        items.append(parsed[F.ITEM_ID].numpy())
        scores.append(serve(examples=batch)["probability"].numpy().reshape(-1))
    return (
        np.concatenate(labels),
        np.concatenate(scores),
        np.concatenate(users),
        np.concatenate(items),
    )


def run_one(
    config: dict[str, Any],
    variant: config_lib.Variant,
    seed: int,
    transform,
    data: str,
    run_dir: str,
    test_rows: baselines_lib.RowSlices,
) -> dict[str, Any]:
    """Stage 1 (if the variant pretrains), stage 2 and the test scoring of one run.

    Both stages go through the training API (`sitn_tf.training`), the same
    functions the Trainers' `run_fn`s call; stage 2's model is exported by the
    pipeline's own exporter and scored through its `serving_default`.
    `test_rows` (from `baselines.row_slices`) says which test candidates are
    known and each row's target history length; the scored rows are checked
    to be these.
    """
    import tensorflow_transform as tft

    from pipelines import serving
    from sitn_tf import training

    run = config_lib.run_config(config, variant, seed)
    record: dict[str, Any] = {
        "variant": variant.name,
        "label": variant.label,
        "seed": int(seed),
        "config": run.custom_config(),
    }
    pretrained = None
    if run.pretrains:
        stage1 = fit_stage1(run, transform, log_dir=os.path.join(run_dir, "pretrain", "logs"))
        record["pretrain_seconds"] = round(stage1.seconds, 2)
        record["pretrain_steps"] = stage1.steps
        record["pretrain_history"] = stage1.history
        record["pretrain_cluster_health"] = stage1.cluster_health
        # Kept for Figure 3 (the cluster analysis reads it back); relative to
        # the run's folder, so a resumed experiment finds it wherever it lives.
        path = training.save_pretrainer(stage1.model, os.path.join(run_dir, "pretrain"))
        record["pretrainer"] = os.path.relpath(path, run_dir)
        pretrained = stage1.model
    stage = _stage_inputs(training.FINETUNE, run, transform)
    stage2 = training.fit_ranker(
        stage.model_config,
        run.training,
        stage.train,
        stage.eval,
        steps=run.run.train_steps,
        eval_steps=run.run.eval_steps,
        pretrained=pretrained,
        log_dir=os.path.join(run_dir, "finetune", "logs"),
    )
    serving_dir = os.path.join(run_dir, "finetune", "model")
    serving.export_serving_model(
        stage2.model, tft.TFTransformOutput(transform.transform_graph), serving_dir
    )
    val_auc = stage2.history.get("val_auc", [])
    record.update(
        {
            "finetune_seconds": round(stage2.seconds, 2),
            "best_epoch": stage2.best_epoch,
            "epochs_run": stage2.epochs_run,
            "steps_per_epoch": stage2.steps_per_epoch,
            "train_steps": stage2.steps,
            "restored_variables": len(stage2.restored_variables),
            # The selected epoch's (the highest unless the logloss guard refused it).
            "eval_auc": val_auc[stage2.best_epoch - 1] if val_auc else None,
            "refused_epochs": stage2.refused_epochs,
            "finetune_history": stage2.history,
        }
    )
    start = time.monotonic()
    labels, scores, users, items = score_test_split(serving_dir, os.path.join(data, "test", "*"))
    test_rows.check(labels, items)
    known = test_rows.known
    record["metrics"] = baselines_lib.row_metrics(
        labels,
        scores,
        users,
        known,
        test_rows.history_lengths,
        source_history_lengths=test_rows.source_history_lengths,
    )
    record["metrics_by_candidate"] = baselines_lib.candidate_metrics(labels, scores, users, known)
    # Kept beside the run so later analyses need no re-scoring.
    np.savez_compressed(
        os.path.join(run_dir, "test_predictions.npz"),
        labels=labels,
        probabilities=scores,
        users=users,
        known_candidate=known,
    )
    record["test_seconds"] = round(time.monotonic() - start, 2)
    record["train_seconds"] = round(
        record.get("pretrain_seconds", 0.0) + record["finetune_seconds"], 2
    )
    return record


# --------------------------------------------------------------------------- clusters


def eval_pairs(transform, seed: int, eval_steps: int):
    """The eval split's first `eval_steps` batches of 512 stage-1 pairs, unlabelled."""
    import tensorflow_transform as tft

    from sitn_tf import training

    return training.transformed_dataset(
        transform.split_files("eval"),
        tft.TFTransformOutput(transform.transform_graph),
        512,
        shuffle=False,
        seed=seed,
        repeat=False,
        keep=training.pretraining_pair,
        with_label=False,
    ).take(max(1, eval_steps))


def eval_cluster_numbers(model, dataset, seed: int) -> dict[str, Any]:
    """A stage-1 model's cluster health and cross-domain alignment on `dataset` (JSON-safe).

    `SITNPretrainer.cluster_health`, measured by the model's own metrics,
    with `SITNPretrainer.cluster_alignment` of the same pairs merged into
    each granularity: `{"instance_cosine": {...}, "granularities": {str(K): {...}}}`.
    """
    model.compile(optimizer="adam")  # evaluate() needs a compiled model; no step is taken
    health = model.cluster_health(model.evaluate(dataset, verbose=0, return_dict=True), prefix="")
    for k, entry in model.cluster_alignment(*model.pair_instances(dataset), seed=seed).items():
        health["granularities"][k].update(entry)
    return health


def cluster_analysis(
    pretrainer_path: str, transform, output: str, seed: int, eval_steps: int
) -> dict[str, Any]:
    """Figure 3 and its numbers from one stage-1 model.

    Per granularity K: the learned source and target clusters (`C^s`, `C^t`)
    in a t-SNE panel, and the cluster health that stage 1 logs
    (`SITNPretrainer.cluster_health`: usage entropy, effective and dead
    clusters per domain, nearest cross-domain cosine against random
    clusters of the same shape, Eq. 7's logit gap), measured here by the
    model's own metrics on the eval split's first `eval_steps` batches of
    512 pairs, with the same pairs' cross-domain alignment
    (`SITNPretrainer.cluster_alignment`). The panel titles use the same
    cosine functions.
    """
    import keras

    from sitn_tools.experiment import clusters as clusters_lib

    model = keras.saving.load_model(pretrainer_path)
    cfg = model.config
    health = eval_cluster_numbers(model, eval_pairs(transform, seed, eval_steps), seed)
    by_k = {
        int(k): (np.asarray(source.clusters), np.asarray(target.clusters))
        for k, source, target in zip(
            cfg.granularities, model.source_clusters, model.target_clusters, strict=True
        )
    }
    report: dict[str, Any] = {
        "pretrainer": portable(pretrainer_path),
        "similarity": cfg.similarity,
        "eval_batches": max(1, eval_steps),
    }
    per_k = {}
    compared = clusters_lib.tsne_figure(by_k, os.path.join(output, "clusters_tsne.png"), seed=seed)
    for k in by_k:
        entry = dict(compared[k])
        entry.update(health["granularities"][str(k)])
        per_k[str(k)] = entry
    report["granularities"] = per_k
    report["instance_cosine"] = health["instance_cosine"]
    write_json(os.path.join(output, "clusters.json"), report)
    return report


# --------------------------------------------------------------------------- report


def _report_group(variant: config_lib.Variant) -> str:
    """The report's grouping: Table 2 holds "Baseline" and "Ours"; ablations their table."""
    if variant.name == "sitn":
        return "Ours"
    return "Baseline" if variant.group == "Table 2" else variant.group


def write_report(
    config: dict[str, Any],
    records: list[dict[str, Any]],
    output: str,
    meta: dict[str, Any],
    simple_baselines: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from sitn_tools.experiment import report

    variants = [
        report.VariantSpec(v.name, v.label, _report_group(v))
        for v in config_lib.VARIANTS
        if v.name in config["variants"]
    ]
    summary = report.summarize(records, variants)
    baselines = [
        v.name
        for v in config_lib.VARIANTS
        if v.baseline and v.name in config["variants"] and summary.get(v.name, {}).get("n")
    ]
    tests: dict[str, Any] = {}
    best = None
    if baselines:
        best = report.best_baseline(summary, baselines, metric="auc")
        for variant in variants:
            if variant.name != best and summary.get(variant.name, {}).get("n"):
                tests[variant.name] = report.paired_test(records, variant.name, best, metric="auc")
    payload = portable(
        {
            **meta,
            "config": config,
            "runs": records,
            "summary": summary,
            "best_baseline": best,
            "paired_tests": tests,
            "baselines": simple_baselines or {},
        }
    )
    write_json(os.path.join(output, "results.json"), payload)
    table = report.markdown_table(
        summary, variants, tests, best_baseline=best, simple_baselines=simple_baselines
    )
    if simple_baselines:
        table += "\n### Simple baselines by target-history length\n\n"
        table += report.simple_baseline_table(simple_baselines)
    gains = report.gain_by_history_table(records)
    if gains:
        table += "\n### Gain over DIN by history length\n\n" + gains
    convergence = report.convergence_table(records)
    if convergence:
        table += "\n### Convergence: the epoch each run selected\n\n" + convergence
    # The hand-written reading of the tables, kept beside the report
    # (`<report_dir>/analysis.md`), goes into results.md with them.
    analysis = os.path.join(config["report_dir"], ANALYSIS_FILE) if config["report_dir"] else None
    if analysis and os.path.exists(analysis):
        with open(analysis) as f:
            table += "\n" + f.read()
    with open(os.path.join(output, "results.md"), "w") as f:
        f.write(table)
    report.bar_chart(summary, variants, os.path.join(output, "auc.png"), metric="auc")
    return payload


# --------------------------------------------------------------------------- main


def figure_clusters(config, records, transform, output: str) -> dict[str, Any] | None:
    """Figure 3 from the first seed's run of `cluster_figure_variant`, or None without one."""
    figure_variant = config["cluster_figure_variant"]
    figure_seed = config["seeds"][0]
    figure_record = next(
        (r for r in records if r["variant"] == figure_variant and r["seed"] == figure_seed), None
    )
    if figure_record is None or "pretrainer" not in figure_record:
        _say(f"no Figure 3: {figure_variant} seed {figure_seed} did not run stage 1 here")
        return None
    eval_steps = config_lib.run_config(
        config, config_lib.VARIANTS_BY_NAME[figure_variant], figure_seed
    ).run.eval_steps
    figure_run_dir = run_folder(output, figure_variant, figure_seed)
    figure_pretrainer = os.path.join(figure_run_dir, figure_record["pretrainer"])
    kept_clusters = os.path.join(config["report_dir"] or output, "clusters.json")
    if os.path.exists(figure_pretrainer):
        return cluster_analysis(figure_pretrainer, transform, output, figure_seed, eval_steps)
    if os.path.exists(kept_clusters):
        _say(
            f"{figure_variant} seed {figure_seed} was reused without its model: keeping {kept_clusters}"
        )
        for name in ("clusters.json", "clusters_tsne.png"):
            source = os.path.join(os.path.dirname(kept_clusters), name)
            if os.path.exists(source) and os.path.abspath(source) != os.path.join(output, name):
                shutil.copyfile(source, os.path.join(output, name))
        return read_json(kept_clusters)
    raise FileNotFoundError(
        f"Figure 3 needs the stage-1 model of {figure_variant} seed {figure_seed} "
        f"({figure_pretrainer}), and no clusters.json is kept in {kept_clusters}: "
        f"delete {committed_record_path(config['report_dir'], figure_variant, figure_seed)} "
        "to retrain that run."
    )


def run(
    config_path: str,
    output: str | None = None,
    seeds: list[int] | None = None,
    variants: list[str] | None = None,
    report_dir: str | None = None,
) -> dict[str, Any]:
    """Runs (or resumes) the experiment; returns the `results.json` payload."""
    config = config_lib.load(config_path)
    if seeds:
        config["seeds"] = list(seeds)
    if variants:
        config["variants"] = list(variants)
    if report_dir:
        config["report_dir"] = report_dir
    config = config_lib.validate(config, source=config_path)
    output = os.path.abspath(
        output or os.path.join(defaults.REPO_ROOT, "runs", "experiments", config["name"])
    )
    os.makedirs(output, exist_ok=True)
    wall_start = time.monotonic()

    data = prepare_data(config, output)
    # Another experiment's Transform (same data, same `transform`) is a cache
    # hit in its metadata store: studies on the same data skip the Transform.
    transform = run_transform(config, data, config["share_transform_with"] or output)
    start = time.monotonic()
    dataset = baselines_lib.read_dataset(data)
    stats = baselines_lib.train_statistics(dataset)
    test_rows = baselines_lib.row_slices(dataset, stats)
    simple_baselines = baselines_lib.evaluate(dataset, stats)
    _say(
        "simple baselines (test AUC / known-candidate AUC): "
        + ", ".join(
            f"{name} {_number(entry['metrics']['auc'])} / {_number(entry['metrics']['known_auc'])}"
            for name, entry in simple_baselines.items()
        )
        + f" ({time.monotonic() - start:.1f} s)"
    )
    del dataset, stats

    chosen = [v for v in config_lib.VARIANTS if v.name in config["variants"]]
    todo = [(v, s) for s in config["seeds"] for v in chosen]
    records: list[dict[str, Any]] = []
    run_seconds = 0.0
    for index, (variant, seed) in enumerate(todo, 1):
        run_dir = run_folder(output, variant.name, seed)
        result_path = os.path.join(run_dir, RESULT_FILE)
        committed = (
            committed_record_path(config["report_dir"], variant.name, seed)
            if config["report_dir"]
            else None
        )
        reused = None
        for path, where in ((result_path, "this output"), (committed, "the committed record")):
            if path and os.path.exists(path):
                record = read_json(path)
                if reusable(portable(record), config, variant, seed):
                    reused = (record, where)
                    break
        if reused:
            if committed and reused[1] == "this output":
                write_json(committed, portable(reused[0]))  # keep the committed copy current
            records.append(reused[0])
            _say(
                f"[{index}/{len(todo)}] {variant.name} seed {seed}: done before, reused from {reused[1]}"
            )
            continue
        if os.path.isdir(run_dir):
            shutil.rmtree(run_dir)  # a run cut short or made with other settings
        _say(f"[{index}/{len(todo)}] {variant.name} seed {seed}: training")
        start = time.monotonic()
        record = run_one(config, variant, seed, transform, data, run_dir, test_rows)
        record["wall_seconds"] = round(time.monotonic() - start, 2)
        record["data_config"] = config["data"]
        run_seconds += record["wall_seconds"]
        write_json(result_path, record)
        if committed:
            write_json(committed, portable(record))
        records.append(record)
        m = record["metrics"]
        _say(
            f"[{index}/{len(todo)}] {variant.name} seed {seed}: test AUC {m['auc']:.4f} "
            f"logloss {m['logloss']:.4f} GAUC {m['gauc']:.4f} (best epoch "
            f"{record['best_epoch']}/{record['epochs_run']}, {record['wall_seconds']:.0f} s)"
        )
        gc.collect()

    clusters = figure_clusters(config, records, transform, output)

    meta = {
        "name": config["name"],
        "data": data,
        "transform_states": transform.states,
        "wall_seconds_this_invocation": round(time.monotonic() - wall_start, 1),
        "training_seconds_this_invocation": round(run_seconds, 1),
        "training_seconds_all_runs": round(sum(r["wall_seconds"] for r in records), 1),
        "clusters": clusters["granularities"] if clusters else {},
        "environment": _environment(),
    }
    payload = write_report(config, records, output, meta, simple_baselines)
    target = config["report_dir"]
    if target:
        os.makedirs(target, exist_ok=True)
        for name in REPORT_FILES:
            source, destination = os.path.join(output, name), os.path.join(target, name)
            # No Figure 3 files when no run of the figure's variant pretrained.
            if os.path.exists(source) and os.path.abspath(source) != os.path.abspath(destination):
                shutil.copyfile(source, destination)
        _say(f"report copied to {target}")
    with open(os.path.join(output, "results.md")) as f:
        print(f.read(), flush=True)
    _say(f"done: {output}")
    return payload


def _environment() -> dict[str, Any]:
    import platform

    import keras
    import tensorflow as tf

    return {
        "machine": platform.machine(),
        "processor_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
