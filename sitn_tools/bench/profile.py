"""`sitn-tf bench profile`: where a training step's time goes, op by op.

Each model is built, fed and compiled exactly as `bench train` does it
(`sitn_tools.bench.train`: the Trainers' input function on the pipeline's
Transform output, `sitn_tf.training.build_ranker` / `build_pretrainer`), and
trained with `keras.Model.fit`: `--warmup_steps` untimed steps (tracing,
tf.data buffers filling), then `--steps` steps under
`tf.profiler.experimental` tracing, then the fit is stopped.

The trace (an XSpace, `TRACE_DIR/MODEL/plugins/profile/RUN/*.xplane.pb`,
readable by TensorBoard's profile plugin where one is installed) is
converted offline by TensorFlow's own profiler plugin
(`_pywrap_profiler_plugin.xspace_to_tools_data(..., "framework_op_stats")`,
the table TensorBoard's "TF op stats" shows): one row per executed TF op
with its occurrences and self time. From those rows the command reports,
per training step:

* the top ops by self time (name, type, ms/step, count/step);
* op types by self time and by count (e.g. all `Mul`, all `Select`);
* time by part of the model (the layer scope in the op's name, forward and
  backward apart; optimizer, loss and metrics, input pipeline).

Self times are summed over the host's threads (inter-op parallelism), so
their total per step may exceed the step's wall time; the report gives both.
`retraces_in_window` counts traces of the train function while profiling:
non-zero means a retrace cost sits inside the figures.

Output: the JSON report (`--output`, default WORKDIR/profile.json), the same
tables as Markdown next to it (`.md`), and the traces under `--trace_dir`
(default WORKDIR/profile-traces/).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sitn_tools.bench import common, fixtures
from sitn_tools.bench import flops as flops_lib
from sitn_tools.bench import train as train_bench

# Op types that belong to the tf.data pipeline, not to the step.
INPUT_TYPES = frozenset({"Dataset", "Iterator", "IteratorGetNext", "OptionalFromValue"})
# Scopes that are not layers of the model: where their ops go in `by_part`.
_NON_LAYER_SCOPES = {
    "adam": "optimizer",
    "sgd": "optimizer",
    "adamw": "optimizer",
    "compile_loss": "loss",
    "binary_crossentropy": "loss",
}

FULL = {"batch_size": 256, "seq_len": 50, "steps": 20, "warmup_steps": 5, "top": 25}
QUICK = {"batch_size": 32, "seq_len": 16, "steps": 3, "warmup_steps": 2, "top": 10}


# ------------------------------------------------------------ trace parsing


def op_rows(framework_op_stats: bytes | str) -> list[dict[str, Any]]:
    """The ops of a `framework_op_stats` tool output, IDLE excluded.

    The tool returns a JSON list of Google-Charts data tables (one with the
    host's idle time, one without); rows of the first table that is not
    IDLE are returned as `{"type", "name", "occurrences", "self_us"}`.
    """
    tables = json.loads(framework_op_stats)
    if not tables:
        return []
    table = tables[-1]  # the last table leaves IDLE out; drop it anyway below
    columns = [c["id"] for c in table["cols"]]
    where = {name: columns.index(name) for name in ("type", "operation", "occurrences",
                                                   "total_self_time")}  # fmt: skip
    rows = []
    for row in table["rows"]:
        cells = [c.get("v") if c is not None else None for c in row["c"]]
        if cells[where["type"]] == "IDLE":
            continue
        rows.append(
            {
                "type": str(cells[where["type"]]),
                "name": str(cells[where["operation"]]),
                "occurrences": int(cells[where["occurrences"]] or 0),
                "self_us": float(cells[where["total_self_time"]] or 0.0),
            }
        )
    return rows


def _strip_call_prefixes(name: str) -> str:
    # Ops inside the compiled train function carry one
    # `StatefulPartitionedCall/` (or `PartitionedCall/`) per function level.
    parts = name.split("/")
    while parts and parts[0] in ("StatefulPartitionedCall", "PartitionedCall"):
        parts = parts[1:]
    return "/".join(parts)


def _scope_is(scope: str, name: str) -> bool:
    # Inside a traced function Keras makes each scope unique with a suffix:
    # layer `head` runs under `head_1` (`_2`, ... on later traces).
    return scope == name or re.fullmatch(re.escape(name) + r"_\d+", scope) is not None


def part_of(op: Mapping[str, Any], model_name: str, layer_names: Sequence[str] = ()) -> str:
    """Which part of the step an op belongs to, from its name scope.

    `model/layer/...` -> `layer` (forward), `gradient_tape/model/layer/...`
    -> `layer (backward)`, where `layer` is one of `layer_names` (the
    model's own sublayers); the model's other ops are `model (top level)`;
    the optimizer's, loss's and input pipeline's ops are named so; anything
    else (e.g. the gradients' `AddN`s) is `other`.
    """
    if op["type"] in INPUT_TYPES:
        return "input pipeline"
    name = _strip_call_prefixes(op["name"])
    backward = name.startswith("gradient_tape/")
    if backward:
        name = name[len("gradient_tape/") :]
    parts = name.split("/")
    if _scope_is(parts[0], model_name):
        layer = next((n for n in layer_names if len(parts) > 2 and _scope_is(parts[1], n)), None)
        part = layer or "model (top level)"
    elif parts[0] in _NON_LAYER_SCOPES:
        part = _NON_LAYER_SCOPES[parts[0]]
    else:
        part = "other"
    return f"{part} (backward)" if backward else part


def _per_step(groups: Mapping[str, list[float]], steps: int, total_us: float):
    rows = []
    for key, (self_us, count) in groups.items():
        rows.append(
            {
                "key": key,
                "ms_per_step": self_us / steps / 1e3,
                "count_per_step": count / steps,
                "share": self_us / total_us if total_us else 0.0,
            }
        )
    rows.sort(key=lambda r: (-r["ms_per_step"], r["key"]))
    return rows


def summarize(
    rows: Sequence[Mapping[str, Any]],
    steps: int,
    model_name: str,
    layer_names: Sequence[str] = (),
) -> dict[str, Any]:
    """Per-step tables of one model's op rows (see the module docstring).

    Returns `{"self_ms_per_step", "ops_per_step", "top_ops", "by_type",
    "by_part", "by_part_and_type"}`, each table a list of `{"key",
    "ms_per_step", "count_per_step", "share"}` rows, largest first;
    `top_ops` rows carry the op's `type` too. Shares are of
    the summed self time of all ops, input pipeline included.
    """
    if steps < 1:
        raise ValueError(f"`steps` must be >= 1, got {steps}")
    total = sum(r["self_us"] for r in rows)
    by_name: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    by_type: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    by_part: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    by_part_type: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    types = {}
    for r in rows:
        part = part_of(r, model_name, layer_names)
        for groups, key in ((by_name, r["name"]), (by_type, r["type"]), (by_part, part),
                            (by_part_type, f"{part}: {r['type']}")):  # fmt: skip
            groups[key][0] += r["self_us"]
            groups[key][1] += r["occurrences"]
        types[r["name"]] = r["type"]
    top = _per_step(by_name, steps, total)
    for r in top:
        r["type"] = types[r["key"]]
    return {
        "self_ms_per_step": total / steps / 1e3,
        "ops_per_step": sum(r["occurrences"] for r in rows) / steps,
        "top_ops": top,
        "by_type": _per_step(by_type, steps, total),
        "by_part": _per_step(by_part, steps, total),
        "by_part_and_type": _per_step(by_part_type, steps, total),
    }


def framework_op_stats(trace_dir: str) -> bytes:
    """`framework_op_stats` of the newest run's XSpace files under `trace_dir`."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    runs = sorted(glob.glob(os.path.join(trace_dir, "plugins", "profile", "*")))
    paths = sorted(glob.glob(os.path.join(runs[-1], "*.xplane.pb"))) if runs else []
    if not paths:
        raise FileNotFoundError(f"No *.xplane.pb trace under {trace_dir!r}.")
    data, ok = plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    if not ok or not data:
        raise RuntimeError(f"The profiler plugin could not convert {paths}.")
    return data


# ------------------------------------------------------------ profiling


class _ProfileWindow:
    """Keras callback: starts the profiler after `warmup` steps, stops it
    `steps` steps later (after waiting for the last step's loss) and ends the fit.

    `watch(model)` counts the traces of the model's train step: Keras calls
    the Python `train_step` only while tracing the compiled step, so calls
    made inside the window are retraces.
    """

    def __init__(self, trace_dir: str, warmup: int, steps: int):
        import keras
        import tensorflow as tf

        window = self
        self.seconds = 0.0
        self.start = 0.0
        self.traces = 0
        self.traces_before = self.traces_after = 0

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if batch == warmup - 1:
                    float((logs or {}).get("loss", 0.0))  # the warm-up is done
                    window.traces_before = window.traces
                    tf.profiler.experimental.start(trace_dir)
                    window.start = time.perf_counter()
                elif batch == warmup + steps - 1:
                    float((logs or {}).get("loss", 0.0))
                    window.seconds = time.perf_counter() - window.start
                    tf.profiler.experimental.stop()
                    window.traces_after = window.traces
                    self.model.stop_training = True

        self.callback = Callback()

    def watch(self, model) -> None:
        train_step = model.train_step

        def counted(*args, **kwargs):
            self.traces += 1
            return train_step(*args, **kwargs)

        # An instance attribute: the compiled step is built from it at `fit`.
        model.train_step = counted


def profile_model(
    kind: str,
    config,
    transform,
    batch_size: int,
    jit_compile: bool,
    training,
    *,
    steps: int,
    warmup_steps: int,
    trace_dir: str,
) -> dict[str, Any]:
    """Profiles `steps` training steps of `kind` (`stage1`, `stage2`, `din`).

    Returns the model's summary (`summarize`) with the window's wall time,
    the candidates per history of its batches (stage 2, DIN) and the trace
    folder.
    """
    import keras

    candidates = None
    if kind != flops_lib.STAGE1:
        candidates = train_bench.candidates_per_history(
            train_bench.train_stream(kind, transform, batch_size, training)
        )
    model = train_bench.build_model(kind, config, training)
    model.jit_compile = jit_compile
    window = _ProfileWindow(trace_dir, warmup_steps, steps)
    window.watch(model)
    model.fit(
        train_bench.train_stream(kind, transform, batch_size, training),
        epochs=1,
        steps_per_epoch=warmup_steps + steps,
        callbacks=[window.callback],
        verbose=0,
    )
    layers = [layer.name for layer in model.layers]
    summary = summarize(op_rows(framework_op_stats(trace_dir)), steps, model.name, layers)
    result = {
        "model": kind,
        "keras_name": model.name,
        "batch_size": batch_size,
        "max_seq_len": config.max_seq_len,
        "jit_compile": jit_compile,
        "steps": steps,
        "warmup_steps": warmup_steps,
        "wall_ms_per_step": window.seconds / steps * 1e3,
        "traces": window.traces,
        "retraces_in_window": window.traces_after - window.traces_before,
        "trace_dir": trace_dir,
        **({"candidates_per_history": candidates} if candidates is not None else {}),
        **summary,
    }
    del model
    keras.backend.clear_session()
    return result


# ------------------------------------------------------------ output


def _table(rows: Iterable[Mapping[str, Any]], top: int, with_type: bool) -> str:
    headers = ["op" if with_type else "", "ms/step", "count/step", "share"]
    if with_type:
        headers.insert(1, "type")
    body = []
    for r in list(rows)[:top]:
        cells = [f"`{r['key']}`"] if with_type else [r["key"]]
        if with_type:
            cells.append(r["type"])
        cells += [r["ms_per_step"], r["count_per_step"], f"{100 * r['share']:.1f} %"]
        body.append(cells)
    return common.format_table(headers, body)


def format_markdown(report: Mapping[str, Any], top: int) -> str:
    """The report's tables as Markdown, one section per model."""
    load = report["machine"].get("load_average_at_start")
    text = [
        f"Profile of `{report['config']['command']}`, "
        f"{report['machine']['date_utc']}, 1-minute load average at start "
        f"{load[0] if load else '-'}, at end "
        f"{(report['machine'].get('load_average_at_end') or ['-'])[0]}.",
        "",
    ]
    for r in report["results"]:
        head = (
            f"## {r['model']}, batch {r['batch_size']} x seq {r['max_seq_len']}, "
            f"XLA {'on' if r['jit_compile'] else 'off'}"
        )
        facts = (
            f"{r['steps']} steps after {r['warmup_steps']} warm-up steps: wall "
            f"{r['wall_ms_per_step']:.1f} ms/step, summed op self time "
            f"{r['self_ms_per_step']:.1f} ms/step, {r['ops_per_step']:,.0f} ops/step, "
            f"traces of the train step {r['traces']} (in the window: "
            f"{r['retraces_in_window']})"
        )
        if "candidates_per_history" in r:
            facts += f", candidates per history {r['candidates_per_history']:.2f}"
        text += [head, "", facts + ".", ""]
        text += ["By part of the step (layer scope; backward apart):", ""]
        text += [_table(r["by_part"], top, False), ""]
        text += ["By op type:", "", _table(r["by_type"], top, False), ""]
        text += ["By part and op type:", "", _table(r["by_part_and_type"], top, False), ""]
        text += ["Top ops by self time:", "", _table(r["top_ops"], top, True), ""]
    return "\n".join(text).rstrip() + "\n"


# ------------------------------------------------------------ command


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    base = dict(QUICK if args.quick else FULL)
    for key in base:
        value = getattr(args, key, None)
        if value is not None:
            base[key] = value
    return base


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sitn_tf.config import load_config

    settings = _settings(args)
    run_config = load_config(args.config)
    if args.quick:
        run_config = run_config.updated({"model": train_bench.QUICK_MODEL})
    training = run_config.training
    workdir = os.path.abspath(args.workdir)
    trace_root = os.path.abspath(args.trace_dir or os.path.join(workdir, "profile-traces"))
    jit = args.xla == "on"
    command = (
        f"sitn-tf bench profile --models {','.join(args.models)} --batch_size "
        f"{settings['batch_size']} --seq_len {settings['seq_len']} --steps {settings['steps']} "
        f"--xla {args.xla}"
    )
    report = common.new_report(
        "profile",
        {
            **settings,
            "command": command,
            "quick": args.quick,
            "models": list(args.models),
            "xla": args.xla,
            "model_config": run_config.to_dict()["model"],
            "training": dataclasses.asdict(training),
            "run_config_file": args.config,
            "data": args.data or "synthetic",
            "trace_dir": trace_root,
        },
    )
    sizes = train_bench.QUICK if args.quick else train_bench.FULL
    data_dir = fixtures.training_data(
        args.data,
        workdir,
        num_users=sizes["num_users"],
        items_per_domain=sizes["items_per_domain"],
        max_seq_len=settings["seq_len"],
    )
    transform = fixtures.transformed(data_dir, workdir, settings["seq_len"])
    config = fixtures.model_config(transform, run_config, settings["seq_len"])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for kind in args.models:
        trace_dir = os.path.join(
            trace_root, f"{kind}-b{settings['batch_size']}-l{settings['seq_len']}-{stamp}"
        )
        result = profile_model(
            kind,
            config,
            transform,
            settings["batch_size"],
            jit,
            training,
            steps=settings["steps"],
            warmup_steps=settings["warmup_steps"],
            trace_dir=trace_dir,
        )
        report["results"].append(result)
        print(
            f"[bench profile] {kind}: {result['wall_ms_per_step']:.1f} ms/step wall, "
            f"{result['self_ms_per_step']:.1f} ms/step op self time, trace {trace_dir}",
            flush=True,
        )
    common.finish_report(report, args.output)
    markdown = format_markdown(report, settings["top"])
    with open(os.path.splitext(args.output)[0] + ".md", "w") as f:
        f.write(markdown)
    print(markdown)
    return report
