"""`sitn-tf bench train`: training throughput of stage 1, stage 2 and DIN.

Every sweep point trains the real model through the Trainers' input function
(`sitn_tf.training.stage_datasets` on the pipeline's Transform output, with
stage 1's filter `sitn_tf.training.pretraining_pair`), compiled as the
Trainers compile it (`sitn_tf.training.build_ranker` / `build_pretrainer`), with
`keras.Model.fit`. Timing:

one `fit` whose first 2 steps are untimed warm-up (step 1 traces, and with
XLA compiles; tf.data buffers fill), the second step's time sizing the
windows; then timed windows of enough steps to last about `--window_seconds`
each, `--windows` of them (fewer, but at least 3, when they would exceed
`--max_point_seconds`); then the fit is stopped. A point whose shortest
measurement would exceed `--skip_seconds` (extrapolated from the same model
at a smaller batch) is not run and is listed under `skipped` in the report.

Reported per point: examples/s per window and median (an example is one
candidate row, whatever the grouping), the median's achieved GFLOP/s
(analytic FLOPs, `sitn_tools.bench.flops`, of the work the model does: for
stage 2 and DIN at the candidates per distinct history measured on the
point's own batches, `candidates_per_history`) and its share of the matmul
peak measured in the same run, and the peak RSS while the point ran. Models `input` and `input_stage1` time the stage-2 and stage-1 tf.data
pipelines alone (no model), to show whether training is input-bound.

Isolation: by default (not with `--quick`) every point runs in a fresh
Python process (`python -m sitn_tools.bench.train REQUEST RESULT`). TensorFlow's
and the C allocator's freed memory stays in a process, so in one long-lived
process a point's peak RSS would carry what earlier, bigger points left
behind; a fresh process measures each point alone. A point whose process
fails (e.g. killed for memory) is listed under `failed` and the sweep goes on.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from sitn_tf import features as F
from sitn_tf import files
from sitn_tools.bench import common, fixtures
from sitn_tools.bench import flops as flops_lib

logger = logging.getLogger("sitn_tf.bench")

INPUT = "input"  # the stage-2 (and DIN) input pipeline alone
INPUT_STAGE1 = "input_stage1"  # stage 1's, with its filter
INPUTS = (INPUT, INPUT_STAGE1)
MODELS = (flops_lib.STAGE1, flops_lib.STAGE2, flops_lib.DIN, INPUT, INPUT_STAGE1)
DEFAULT_CONFIG = os.path.join("pipelines", "configs", "amazon_books_movies.yaml")

FULL = {
    "batch_sizes": (256, 1024, 4096),
    "seq_lens": (50, 100, 200),
    "windows": 5,
    "window_seconds": 1.0,
    "max_point_seconds": 40.0,
    "skip_seconds": 120.0,
    "matmul_size": 2048,
    "num_users": 3000,
    "items_per_domain": 1000,
}
QUICK = {
    "batch_sizes": (32,),
    "seq_lens": (16,),
    "windows": 5,
    "window_seconds": 0.02,
    "max_point_seconds": 10.0,
    "skip_seconds": 60.0,
    "matmul_size": 256,
    "num_users": 200,
    "items_per_domain": 300,
}
# A smoke run traces each model once; fewer cluster sets keep that short.
QUICK_MODEL = {"granularities": [8, 16], "top_k": 2}
MIN_WINDOWS = 3
_XLA_LABEL = {None: "-", True: "on", False: "off"}


def point_key(entry: dict[str, Any]) -> tuple[str, int, int, bool | None]:
    """What identifies a sweep point (measured, skipped or failed):
    (model, batch_size, max_seq_len, jit_compile)."""
    return (entry["model"], entry["batch_size"], entry["max_seq_len"], entry["jit_compile"])


def point_label(key) -> str:
    """A `point_key` (tuple or its JSON list) for messages, e.g.
    `stage2 batch 4096 seq 200 XLA off`."""
    model, batch, seq, jit = key
    return f"{model} batch {batch} seq {seq} XLA {_XLA_LABEL[jit]}"


def matmul_peak(size: int, *, windows: int, window_seconds: float) -> dict[str, Any]:
    """float32 GFLOP/s of a plain `tf.linalg.matmul` of two `size` x `size` matrices."""
    import tensorflow as tf

    a = tf.random.normal((size, size), seed=1)
    b = tf.random.normal((size, size), seed=2)

    @tf.function
    def step():
        # Reduce to a scalar so that syncing copies 4 bytes, not the product.
        return tf.reduce_sum(tf.linalg.matmul(a, b))

    timing = common.timed_windows(
        step,
        2.0 * size**3 / 1e9,
        windows=windows,
        window_seconds=window_seconds,
        warmup_steps=2,
        sync=lambda r: r.numpy(),
    )
    return {
        "matrix_size": size,
        "dtype": "float32",
        "gflops_per_window": timing["rates"],
        "gflops": timing["median"],
        "steps_per_window": timing["steps_per_window"],
    }


class _WindowTimer:
    """Keras callback that times windows of steps inside one `fit`, then stops it.

    Steps 0 and 1 are warm-up (step 0 traces, and with XLA compiles); step
    1's time sizes the windows: `steps` per window, `windows` windows (fewer
    when they would exceed the point's budget, but at least `MIN_WINDOWS`).
    After the last window the callback sets `model.stop_training`. It reads
    the loss only at window boundaries: reading waits for the device, which
    is what makes the timing honest on asynchronous GPUs.
    """

    WARMUP_STEPS = 2

    def __init__(self, batch_size: int, settings: dict[str, Any]):
        import keras

        timer = self
        self.batch_size = batch_size
        self.settings = settings
        self.marks: list[float] = []
        self.steps = 0
        self.windows = 0
        self.start = 0.0
        self.first_step = 0.0
        self.second_step = 0.0
        self.seconds: list[float] = []

        class Callback(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                timer.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                timer.on_batch_end(batch, logs, self.model)

        self.callback = Callback()

    def _plan(self) -> None:
        step = max(self.second_step, 1e-6)
        self.steps = max(1, round(self.settings["window_seconds"] / step))
        windows = self.settings["windows"]
        budget = self.settings["max_point_seconds"]
        if windows * self.steps * step > budget:
            windows = max(MIN_WINDOWS, min(windows, math.floor(budget / (self.steps * step))))
        self.windows = windows

    def on_batch_end(self, batch: int, logs, model) -> None:
        if batch < self.WARMUP_STEPS:
            float((logs or {}).get("loss", 0.0))
            self.marks.append(time.perf_counter())
            if batch == 0:
                self.first_step = self.marks[0] - self.start
            else:
                self.second_step = self.marks[1] - self.marks[0]
                self._plan()
            return
        done = batch + 1 - self.WARMUP_STEPS
        if done % self.steps:
            return
        float((logs or {}).get("loss", 0.0))
        self.marks.append(time.perf_counter())
        self.seconds.append(self.marks[-1] - self.marks[-2])
        if len(self.seconds) >= self.windows:
            model.stop_training = True


def train_stream(kind: str, transform, batch_size: int, training):
    """The train stream a Trainer reads (`sitn_tf.training.stage_datasets`) at `batch_size`."""
    import tensorflow_transform as tft

    from sitn_tf import training as training_api

    stage = training_api.PRETRAIN if kind == flops_lib.STAGE1 else training_api.FINETUNE
    batches = dataclasses.replace(training, batch_size=batch_size, pretrain_batch_size=batch_size)
    files = transform.split_files("train")
    train, _ = training_api.stage_datasets(
        stage, tft.TFTransformOutput(transform.transform_graph), files, files, batches
    )
    return train


# Batches read to measure the candidates per distinct history of a point.
_GROUPING_SAMPLE_BATCHES = 20


def candidates_per_history(dataset, batches: int = _GROUPING_SAMPLE_BATCHES) -> float:
    """Candidate rows per run of equal histories in the first `batches` batches:
    what stage 2 and DIN share an encoding over (`sitn_tf.ops.adjacent_runs`)."""
    from sitn_tf import ops as sitn_ops

    rows = runs = 0
    for inputs, _ in dataset.take(batches):
        starts, index = sitn_ops.adjacent_runs([inputs[name] for name in F.SEQUENCE_FEATURES])
        rows += int(index.shape[0])
        runs += int(starts.shape[0])
    return rows / max(runs, 1)


def attended_lengths(dataset, batches: int = _GROUPING_SAMPLE_BATCHES) -> dict[str, float]:
    """Mean positions stage 2 and DIN read per batch without XLA, per domain: up
    to the last position real in some history (`sitn_tf.ops.real_length`)."""
    from sitn_tf import ops as sitn_ops

    names = {"source": F.SOURCE_ITEM_IDS, "target": F.TARGET_ITEM_IDS}
    totals = {domain: 0 for domain in names}
    count = 0
    for inputs, _ in dataset.take(batches):
        count += 1
        for domain, name in names.items():
            totals[domain] += int(sitn_ops.real_length(inputs[name] != 0))
    return {domain: total / max(count, 1) for domain, total in totals.items()}


def build_model(kind: str, config, training):
    """The model compiled as the Trainers compile it (`sitn_tf.training.build_*`)."""
    import keras

    from sitn_tf import training as training_api

    keras.utils.set_random_seed(training.seed)
    if kind == flops_lib.STAGE1:
        return training_api.build_pretrainer(config, training)
    model = "din" if kind == flops_lib.DIN else "sitn"
    return training_api.build_ranker(config, dataclasses.replace(training, model=model))


def _input_only(kind: str, transform, batch_size: int, settings: dict[str, Any], training):
    model = flops_lib.STAGE1 if kind == INPUT_STAGE1 else flops_lib.STAGE2
    iterator = iter(train_stream(model, transform, batch_size, training))

    def step():
        return next(iterator)

    def sync(batch):
        features = batch if kind == INPUT_STAGE1 else batch[0]
        return features[F.ITEM_ID].numpy()

    timing = common.timed_windows(
        step,
        batch_size,
        windows=settings["windows"],
        window_seconds=settings["window_seconds"],
        warmup_steps=5,
        sync=sync,
    )
    return {
        "examples_per_second": timing["rates"],
        "median": timing["median"],
        "steps_per_window": timing["steps_per_window"],
        "window_seconds": timing["window_seconds"],
    }


def measure_point(
    kind: str,
    config,
    transform,
    batch_size: int,
    jit_compile: bool | None,
    training,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """One sweep point: returns its figures (see the module docstring).

    `transform` is a `pipelines.transform_run.TransformOutputs`, `training` a
    `sitn_tf.config.TrainingConfig`.
    """
    import keras

    point: dict[str, Any] = {
        "model": kind,
        "batch_size": batch_size,
        "max_seq_len": config.max_seq_len,
        "jit_compile": jit_compile if kind not in INPUTS else None,
    }
    with common.RssSampler() as rss:
        if kind in INPUTS:
            point.update(_input_only(kind, transform, batch_size, settings, training))
        else:
            if kind != flops_lib.STAGE1:
                point["candidates_per_history"] = candidates_per_history(
                    train_stream(kind, transform, batch_size, training)
                )
                if not jit_compile:  # under XLA the attention reads all L positions
                    point["attended_lengths"] = attended_lengths(
                        train_stream(kind, transform, batch_size, training)
                    )
            model = build_model(kind, config, training)
            point["shipped_jit_compile"] = bool(model.jit_compile)
            model.jit_compile = jit_compile
            timer = _WindowTimer(batch_size, settings)
            model.fit(
                train_stream(kind, transform, batch_size, training),
                epochs=1,
                steps_per_epoch=10**9,  # the timer stops the fit
                callbacks=[timer.callback],
                verbose=0,
            )
            rates = [timer.steps * batch_size / s for s in timer.seconds]
            point.update(
                {
                    "first_step_seconds": round(timer.first_step, 3),
                    "step_seconds_estimate": round(timer.second_step, 4),
                    "steps_per_window": timer.steps,
                    "windows": len(rates),
                    "window_seconds": [round(s, 4) for s in timer.seconds],
                    "examples_per_second": rates,
                    "median": common.median(rates),
                }
            )
            del model
    point["peak_rss_bytes"] = rss.peak_bytes
    point["rss_at_start_bytes"] = rss.start_bytes
    if kind not in INPUTS:
        grouping = (
            {}
            if kind == flops_lib.STAGE1
            else {
                "candidates_per_history": point["candidates_per_history"],
                "attended_lengths": point.get("attended_lengths"),
            }
        )
        forward = flops_lib.forward_flops(kind, config, batch_size=batch_size, **grouping)
        per_example = flops_lib.train_flops(kind, config, batch_size=batch_size, **grouping)
        point["forward_flops_per_example"] = forward
        point["train_flops_per_example"] = per_example
        point["achieved_gflops"] = point["median"] * per_example / 1e9
    keras.backend.clear_session()
    gc.collect()
    return point


# Kept from a failed point's output: enough for the error, not the whole log.
_FAILURE_TAIL_CHARS = 2000


def measure_point_in_subprocess(
    kind: str,
    config,
    transform,
    batch_size: int,
    jit_compile: bool | None,
    training,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """`measure_point` in a fresh Python process; see "Isolation" above.

    Raises `PointFailed` (with the process's exit status and the tail of its
    output) when the process does not write its result.
    """
    request = {
        "kind": kind,
        "config": config.to_dict(),
        "transform": dataclasses.asdict(transform),
        "batch_size": batch_size,
        "jit_compile": jit_compile,
        "training": dataclasses.asdict(training),
        "settings": settings,
    }
    with tempfile.TemporaryDirectory(prefix="sitn-bench-point-") as tmp:
        request_path = os.path.join(tmp, "request.json")
        result_path = os.path.join(tmp, "point.json")
        files.write_json(request_path, request)
        process = subprocess.run(
            [sys.executable, "-m", "sitn_tools.bench.train", request_path, result_path],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if process.returncode != 0 or not os.path.exists(result_path):
            raise PointFailed(process.returncode, process.stdout[-_FAILURE_TAIL_CHARS:])
        return files.read_json(result_path)


class PointFailed(RuntimeError):
    def __init__(self, returncode: int, output_tail: str):
        super().__init__(f"exit status {returncode}")
        self.returncode = returncode
        self.output_tail = output_tail


def _point_main(argv: list[str]) -> int:
    """Child side of `measure_point_in_subprocess`: REQUEST.json -> RESULT.json."""
    if len(argv) != 2:
        print("usage: python -m sitn_tools.bench.train REQUEST.json RESULT.json", file=sys.stderr)
        return 2
    from pipelines.transform_run import TransformOutputs
    from sitn_tf.config import TrainingConfig
    from sitn_tf.models import SITNConfig

    request = files.read_json(argv[0])
    point = measure_point(
        request["kind"],
        SITNConfig.from_dict(request["config"]),
        TransformOutputs(**request["transform"]),
        request["batch_size"],
        request["jit_compile"],
        TrainingConfig(**request["training"]),
        request["settings"],
    )
    files.write_json(argv[1], point)
    return 0


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    base = dict(QUICK if args.quick else FULL)
    for key in base:
        value = getattr(args, key, None)
        if value is not None:
            base[key] = tuple(value) if isinstance(value, list) else value
    return base


def _xla_modes(value: str) -> tuple[bool, ...]:
    return {"off": (False,), "on": (True,), "both": (False, True)}[value]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sitn_tf.config import load_config

    settings = _settings(args)
    models = tuple(args.models)
    run_config = load_config(args.config)
    if args.quick:
        run_config = run_config.updated({"model": QUICK_MODEL})
    training = run_config.training
    xla = args.xla or ("off" if args.quick else "both")
    isolate = (not args.quick) if args.isolate is None else args.isolate
    workdir = os.path.abspath(args.workdir)
    report = common.new_report(
        "train",
        {
            **{k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
            "quick": args.quick,
            "models": list(models),
            "xla": xla,
            "isolate": isolate,
            "model_config": run_config.to_dict()["model"],
            "training": dataclasses.asdict(training),
            "run_config_file": args.config,
            "data": args.data or "synthetic",
        },
    )
    peak = matmul_peak(
        settings["matmul_size"],
        windows=max(settings["windows"], 5),
        window_seconds=max(settings["window_seconds"], 0.2),
    )
    report["matmul_peak"] = peak
    print(
        f"[bench train] matmul peak ({peak['matrix_size']}^2 float32): "
        f"{peak['gflops']:.1f} GFLOP/s",
        flush=True,
    )
    data_dir = fixtures.training_data(
        args.data,
        workdir,
        num_users=settings["num_users"],
        items_per_domain=settings["items_per_domain"],
        max_seq_len=max(settings["seq_lens"]),
    )
    report["config"]["data_dir"] = data_dir
    for seq_len in settings["seq_lens"]:
        transform = fixtures.transformed(data_dir, workdir, seq_len)
        config = fixtures.model_config(transform, run_config, seq_len)
        report.setdefault("model_configs", {})[str(seq_len)] = config.to_dict()
        for batch_size in settings["batch_sizes"]:
            for kind in models:
                for jit in (None,) if kind in INPUTS else _xla_modes(xla):
                    predicted = _predicted_point_seconds(
                        report["results"], kind, batch_size, seq_len, jit
                    )
                    if predicted is not None and predicted > settings["skip_seconds"]:
                        skipped = {
                            "model": kind,
                            "batch_size": batch_size,
                            "max_seq_len": seq_len,
                            "jit_compile": jit,
                            "predicted_seconds": round(predicted, 1),
                            "reason": f"{MIN_WINDOWS} windows of one step after "
                            f"{_WindowTimer.WARMUP_STEPS} warm-up steps would take about "
                            f"{predicted:.0f} s (> --skip_seconds "
                            f"{settings['skip_seconds']:.0f}), extrapolated from the "
                            "largest smaller batch",
                        }
                        report.setdefault("skipped", []).append(skipped)
                        print(
                            f"[bench train] skipped {point_label(point_key(skipped))}: {skipped['reason']}",
                            flush=True,
                        )
                        continue
                    measure = measure_point_in_subprocess if isolate else measure_point
                    try:
                        point = measure(
                            kind, config, transform, batch_size, jit, training, settings
                        )
                    except PointFailed as error:
                        failed = {
                            "model": kind,
                            "batch_size": batch_size,
                            "max_seq_len": seq_len,
                            "jit_compile": jit,
                            "returncode": error.returncode,
                            "output_tail": error.output_tail,
                        }
                        report.setdefault("failed", []).append(failed)
                        print(
                            f"[bench train] FAILED {point_label(point_key(failed))}: its process exited "
                            f"with status {error.returncode}; last output:\n{error.output_tail}",
                            flush=True,
                        )
                        common.finish_report(report, args.output)
                        continue
                    if kind not in INPUTS:
                        point["fraction_of_peak"] = point["achieved_gflops"] / peak["gflops"]
                    report["results"].append(point)
                    print(_point_line(point), flush=True)
                    # Partial results survive an interrupted sweep.
                    common.finish_report(report, args.output)
    report["ratios"] = ratios(report["results"])
    common.finish_report(report, args.output)
    print(format_results(report))
    print()
    print(summary_tables(report))
    return report


def _predicted_point_seconds(
    results: list[dict[str, Any]], kind: str, batch_size: int, seq_len: int, jit: bool
) -> float | None:
    """Seconds the shortest measurement of a point would take, from a smaller batch.

    Time per example at the largest smaller batch already measured (same
    model, length and XLA setting) times `batch_size` gives a step; the
    shortest measurement is the warm-up steps plus `MIN_WINDOWS` windows of
    one step.
    """
    smaller = [
        p
        for p in results
        if p["model"] == kind
        and p["max_seq_len"] == seq_len
        and p["jit_compile"] == jit
        and p["batch_size"] < batch_size
    ]
    if not smaller:
        return None
    nearest = max(smaller, key=lambda p: p["batch_size"])
    step = batch_size / nearest["median"]
    return step * (_WindowTimer.WARMUP_STEPS + MIN_WINDOWS)


def _point_line(point: dict[str, Any]) -> str:
    xla = {None: "", True: " xla", False: ""}[point["jit_compile"]]
    line = (
        f"[bench train] {point['model']:<6}{xla} batch {point['batch_size']:>5} "
        f"seq {point['max_seq_len']:>4}: {point['median']:>10,.0f} examples/s"
    )
    if "achieved_gflops" in point:
        line += f", {point['achieved_gflops']:.2f} GFLOP/s"
    return line + f", peak RSS {common.mib(point['peak_rss_bytes']):,.0f} MiB"


def ratios(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """SITN/DIN throughput (stage 2 over DIN) and XLA on/off, per matching point."""
    by_key = {point_key(p): p["median"] for p in results}
    sitn_din, xla = [], []

    def order(item):
        model, batch, seq, jit = item[0]
        return (model, batch, seq, str(jit))

    for (model, batch, seq, jit), value in sorted(by_key.items(), key=order):
        if model == flops_lib.STAGE2 and (flops_lib.DIN, batch, seq, jit) in by_key:
            sitn_din.append(
                {
                    "batch_size": batch,
                    "max_seq_len": seq,
                    "jit_compile": jit,
                    "ratio": value / by_key[(flops_lib.DIN, batch, seq, jit)],
                }
            )
        if jit is True and (model, batch, seq, False) in by_key:
            xla.append(
                {
                    "model": model,
                    "batch_size": batch,
                    "max_seq_len": seq,
                    "ratio": value / by_key[(model, batch, seq, False)],
                }
            )
    return {"sitn_over_din": sitn_din, "xla_on_over_off": xla}


def grid(
    results: list[dict[str, Any]],
    value,
    *,
    models: tuple[str, ...] = flops_lib.MODELS,
) -> tuple[list[str], list[list[Any]]]:
    """(headers, rows) of one figure laid out as rows (model, batch) x columns seq.

    `value(point_by_key, model, batch, seq)` returns the cell or None ("-");
    `point_by_key` maps (model, batch, seq, jit_compile) to the point.
    """
    by_key = {point_key(p): p for p in results}
    seqs = sorted({p["max_seq_len"] for p in results})
    batches = sorted({p["batch_size"] for p in results})
    rows = []
    for model in models:
        for batch in batches:
            cells = [value(by_key, model, batch, seq) for seq in seqs]
            if any(c is not None for c in cells):
                rows.append([model, batch, *("-" if c is None else c for c in cells)])
    return ["model", "batch", *(f"seq {s}" for s in seqs)], rows


def _median(jit: bool):
    def value(by_key, model, batch, seq):
        point = by_key.get((model, batch, seq, jit))
        return None if point is None else point["median"]

    return value


def _field(jit: bool, key: str, scale=lambda v: v):
    def value(by_key, model, batch, seq):
        point = by_key.get((model, batch, seq, jit))
        return None if point is None or key not in point else scale(point[key])

    return value


def _ratio(numerator, denominator):
    def value(by_key, model, batch, seq):
        top, bottom = numerator(model, batch, seq), denominator(model, batch, seq)
        if top not in by_key or bottom not in by_key:
            return None
        return by_key[top]["median"] / by_key[bottom]["median"]

    return value


def summary_tables(report: dict[str, Any]) -> str:
    """The sweep as grids (rows model x batch, columns max_seq_len): throughput
    with XLA off and on, XLA on/off, SITN stage 2 / DIN, share of the matmul
    peak and peak RSS (XLA off)."""
    results = report["results"]
    trained = (flops_lib.STAGE1, flops_lib.STAGE2, flops_lib.DIN)
    sections = [
        ("examples/s, XLA off", _median(False), trained),
        ("examples/s, XLA on", _median(True), trained),
        ("XLA on / off", _ratio(lambda m, b, s: (m, b, s, True),
                                lambda m, b, s: (m, b, s, False)), trained),
        ("SITN stage 2 / DIN, XLA off",
         _ratio(lambda m, b, s: (flops_lib.STAGE2, b, s, False),
                lambda m, b, s: (flops_lib.DIN, b, s, False)), (flops_lib.STAGE2,)),
        ("SITN stage 2 / DIN, XLA on",
         _ratio(lambda m, b, s: (flops_lib.STAGE2, b, s, True),
                lambda m, b, s: (flops_lib.DIN, b, s, True)), (flops_lib.STAGE2,)),
        ("achieved / peak GFLOP/s, XLA off", _field(False, "fraction_of_peak"), trained),
        ("peak RSS MiB, XLA off", _field(False, "peak_rss_bytes", common.mib), trained),
        ("examples/s, input pipeline alone", _median(None), INPUTS),
    ]  # fmt: skip
    text = []
    for title, value, models in sections:
        headers, rows = grid(results, value, models=models)
        if rows:
            text += [f"{title}:", "", common.format_table(headers, rows), ""]
    return "\n".join(text).rstrip()


def format_results(report: dict[str, Any]) -> str:
    peak = report["matmul_peak"]["gflops"]
    rows = []
    for p in report["results"]:
        rows.append(
            [
                p["model"],
                _XLA_LABEL[p["jit_compile"]],
                p["batch_size"],
                p["max_seq_len"],
                p["median"],
                min(p["examples_per_second"]),
                max(p["examples_per_second"]),
                len(p["examples_per_second"]),
                p.get("candidates_per_history", "-"),
                p.get("achieved_gflops", "-"),
                p.get("fraction_of_peak", "-"),
                common.mib(p["peak_rss_bytes"]),
            ]
        )
    table = common.format_table(
        [
            "model",
            "XLA",
            "batch",
            "seq",
            "examples/s (median)",
            "min",
            "max",
            "windows",
            "candidates/history",
            "GFLOP/s",
            "of peak",
            "peak RSS MiB",
        ],
        rows,
    )
    lines = [f"matmul peak: {peak:.1f} GFLOP/s", table]
    for skipped in report.get("skipped", []):
        lines.append(f"not measured: {point_label(point_key(skipped))}: {skipped['reason']}")
    for failed in report.get("failed", []):
        lines.append(
            f"FAILED: {point_label(point_key(failed))}: exit status {failed['returncode']}"
        )
    r = report.get("ratios", {})
    if r.get("sitn_over_din"):
        lines.append("")
        lines.append(
            common.format_table(
                ["batch", "seq", "XLA", "SITN stage 2 / DIN"],
                [
                    [x["batch_size"], x["max_seq_len"], "on" if x["jit_compile"] else "off",
                     x["ratio"]]
                    for x in r["sitn_over_din"]
                ],
            )
        )  # fmt: skip
    if r.get("xla_on_over_off"):
        lines.append("")
        lines.append(
            common.format_table(
                ["model", "batch", "seq", "XLA on / off"],
                [[x["model"], x["batch_size"], x["max_seq_len"], x["ratio"]]
                 for x in r["xla_on_over_off"]],
            )
        )  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(_point_main(sys.argv[1:]))
