"""`sitn-tf bench serve`: latency and throughput of the SavedModel's `serving_default`.

The model is the pushed SavedModel (`--model`, e.g.
`runs/serving_model/sitn/<version>`) or, by default, a `SITNRanker` exported
here with `pipelines.serving.export_serving_model` (the Trainer's exporter)
from the synthetic benchmark dataset. The signature receives what a client
sends: a `(batch,)` string tensor of serialized raw `tf.Example`s; the
embedded Transform graph parses and maps them, then the ranker scores.

Requests are realistic: candidate and history item ids (with their
categories) are drawn from the item ids seen in real raw examples, and both
histories are full length (`max_seq_len` items each), the most expensive case.
They are serialized by the converter's own `Instance.to_example`.

Figures: batch-1 latency percentiles (p50/p95/p99 over `--latency_calls`
calls, plus each window's p50), and examples/s at each throughput batch size
(median of timed windows). Then one user x N candidates (`--candidates`,
default 1, 10, 100, 500): the `score_candidates` signature, one call per
request with full-length histories, p50/p99 latency and candidates/s (N over
the p50), against the same N candidates as N single-candidate calls of
`serving_default` (for N <= 100; total time per N calls). Calls go through the loaded signature in this
process, i.e. without the RPC and batching layers of TF Serving.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time
from typing import Any

from sitn_tools.bench import common, fixtures

FULL = {
    "batch_sizes": (64, 512),
    "windows": 5,
    "window_seconds": 2.0,
    "latency_calls": 1000,
    "num_users": 3000,
    "items_per_domain": 1000,
    "request_pool": 2048,
    # What pipelines/configs/amazon_books_movies.yaml and the default run use.
    "max_seq_len": 50,
    "candidates": (1, 10, 100, 500),
    "candidate_calls": 200,
    "single_call_repeats": 20,
}
QUICK = {
    "batch_sizes": (64, 512),
    "windows": 5,
    "window_seconds": 0.02,
    "latency_calls": 50,
    "num_users": 200,
    "items_per_domain": 300,
    "request_pool": 512,
    "max_seq_len": 16,  # shares the quick train run's Transform output
    "candidates": (1, 10),
    "candidate_calls": 10,
    "single_call_repeats": 2,
}
# N single-candidate calls are timed up to this N (beyond, they only take long).
MAX_SINGLE_CALLS = 100
LATENCY_WARMUP = 20
SCORE_CANDIDATES = "score_candidates"  # pipelines.serving.SCORE_CANDIDATES


def item_pools(pattern: str, limit_records: int = 20_000) -> dict[str, list[tuple[str, str]]]:
    """`(item_id, category)` pairs per domain, as seen in raw converted examples."""
    import tensorflow as tf

    from sitn_tf import features as F

    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no raw TFRecords match {pattern!r}")
    pools: dict[str, set[tuple[str, str]]] = {"source": set(), "target": set()}
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit_records)
    for record in dataset.as_numpy_iterator():
        feature = tf.train.Example.FromString(record).features.feature

        def values(name: str, feature=feature) -> list[str]:
            return [v.decode("utf-8") for v in feature[name].bytes_list.value]

        pools["source"].update(
            zip(values(F.SOURCE_ITEM_IDS), values(F.SOURCE_CATEGORIES), strict=True)
        )
        pools["target"].update(
            zip(values(F.TARGET_ITEM_IDS), values(F.TARGET_CATEGORIES), strict=True)
        )
        pools["target"].update(zip(values(F.ITEM_ID), values(F.ITEM_CATEGORY), strict=True))
    for domain, pool in pools.items():
        if not pool:
            raise ValueError(f"no {domain} item ids in the raw examples matching {pattern!r}")
    return {domain: sorted(pool) for domain, pool in pools.items()}


def make_requests(
    pools: dict[str, list[tuple[str, str]]], count: int, max_seq_len: int, seed: int = 0
) -> list[bytes]:
    """`count` serialized raw examples with full-length histories in both domains."""
    import numpy as np

    rng = np.random.default_rng(seed)
    source, target = pools["source"], pools["target"]
    requests = []
    for i in range(count):
        src = [source[j] for j in rng.integers(0, len(source), max_seq_len)]
        tgt = [target[j] for j in rng.integers(0, len(target), max_seq_len)]
        candidate = target[int(rng.integers(0, len(target)))]
        requests.append(request_example(f"bench-user-{i}", candidate, src, tgt, i))
    return requests


def _model_seq_len(model_dir: str) -> int | None:
    path = os.path.join(model_dir, "assets.extra", "sitn_config.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return int(json.load(f)["max_seq_len"])


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    base = dict(QUICK if args.quick else FULL)
    for key in ("batch_sizes", "windows", "window_seconds", "latency_calls", "candidates"):
        value = getattr(args, key, None)
        if value is not None:
            base[key] = tuple(value) if isinstance(value, list) else value
    return base


def run(args: argparse.Namespace) -> dict[str, Any]:
    import tensorflow as tf

    from pipelines import defaults
    from sitn_tf.config import load_config

    settings = _settings(args)
    workdir = os.path.abspath(args.workdir)
    if args.model:
        model_dir = os.path.abspath(args.model)
        if not os.path.isdir(model_dir):
            raise FileNotFoundError(f"--model {args.model}: no such SavedModel folder")
        if not args.examples:
            raise ValueError("--model needs --examples (raw TFRecords to draw item ids from)")
        examples = args.examples
        max_seq_len = args.max_seq_len or _model_seq_len(model_dir)
        if not max_seq_len:
            raise ValueError(
                f"{model_dir} has no assets.extra/sitn_config.json; give --max_seq_len"
            )
    else:
        max_seq_len = args.max_seq_len or settings["max_seq_len"]
        data_dir = fixtures.converted_synthetic(
            workdir,
            num_users=settings["num_users"],
            items_per_domain=settings["items_per_domain"],
            max_seq_len=max(max_seq_len, fixtures.CONVERSION_MAX_SEQ_LEN),
        )
        transform = fixtures.transformed(data_dir, workdir, max_seq_len)
        # The model the Amazon Books -> Movies config trains.
        run_config = load_config(
            os.path.join(defaults.REPO_ROOT, "pipelines", "configs", "amazon_books_movies.yaml")
        )
        model_dir = fixtures.serving_model(
            transform,
            workdir,
            run_config,
            max_seq_len,
            fit_steps=0 if args.quick else 20,
        )
        examples = os.path.join(data_dir, "train", "*")
    report = common.new_report(
        "serve",
        {
            **{k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
            "quick": args.quick,
            "model_dir": model_dir,
            "examples": examples,
            "max_seq_len": max_seq_len,
            "signature": "serving_default",
        },
    )
    report["candidates"] = []
    pools = item_pools(examples)
    requests = make_requests(pools, settings["request_pool"], max_seq_len)
    report["config"]["request_bytes_mean"] = sum(map(len, requests)) / len(requests)

    load_start = time.perf_counter()
    loaded = tf.saved_model.load(model_dir)
    serve = loaded.signatures["serving_default"]
    report["load_seconds"] = round(time.perf_counter() - load_start, 3)

    def call(batch: tf.Tensor) -> Any:
        return serve(examples=batch)

    def sync(outputs: dict[str, tf.Tensor]) -> Any:
        return outputs["probability"].numpy()

    with common.RssSampler() as rss:
        report["results"].append(_latency(call, sync, requests, settings))
        for batch_size in settings["batch_sizes"]:
            report["results"].append(_throughput(call, sync, requests, batch_size, settings))
        if SCORE_CANDIDATES in loaded.signatures:
            score = loaded.signatures[SCORE_CANDIDATES]
            for count in settings["candidates"]:
                report["candidates"].append(
                    _one_user(score, call, sync, pools, count, max_seq_len, settings)
                )
        else:
            report["candidates_skipped"] = f"{model_dir} has no {SCORE_CANDIDATES} signature"
    report["peak_rss_bytes"] = rss.peak_bytes
    common.finish_report(report, args.output)
    print(format_results(report))
    return report


def _latency(call, sync, requests: list[bytes], settings: dict[str, Any]) -> dict[str, Any]:
    import tensorflow as tf

    singles = [tf.constant([r]) for r in requests]
    for i in range(LATENCY_WARMUP):
        sync(call(singles[i % len(singles)]))
    n = settings["latency_calls"]
    windows = settings["windows"]
    per_window = max(1, n // windows)
    latencies: list[float] = []
    window_p50: list[float] = []
    for w in range(windows):
        mine = []
        for i in range(per_window):
            batch = singles[(w * per_window + i) % len(singles)]
            start = time.perf_counter()
            sync(call(batch))
            mine.append((time.perf_counter() - start) * 1000.0)
        latencies += mine
        window_p50.append(common.percentile(mine, 50))
    return {
        "measure": "latency",
        "batch_size": 1,
        "calls": len(latencies),
        "windows": windows,
        "window_p50_ms": window_p50,
        "p50_ms": common.percentile(latencies, 50),
        "p95_ms": common.percentile(latencies, 95),
        "p99_ms": common.percentile(latencies, 99),
        "mean_ms": sum(latencies) / len(latencies),
        "max_ms": max(latencies),
        "examples_per_second": 1000.0 / common.percentile(latencies, 50),
    }


def _throughput(
    call, sync, requests: list[bytes], batch_size: int, settings: dict[str, Any]
) -> dict[str, Any]:
    import tensorflow as tf

    batches = [
        tf.constant([requests[(b * batch_size + i) % len(requests)] for i in range(batch_size)])
        for b in range(4)
    ]
    state = {"i": 0}

    def step():
        state["i"] += 1
        return call(batches[state["i"] % len(batches)])

    timing = common.timed_windows(
        step,
        batch_size,
        windows=settings["windows"],
        window_seconds=settings["window_seconds"],
        warmup_steps=3,
        sync=sync,
    )
    return {
        "measure": "throughput",
        "batch_size": batch_size,
        "windows": settings["windows"],
        "steps_per_window": timing["steps_per_window"],
        "window_seconds": timing["window_seconds"],
        "examples_per_second_per_window": timing["rates"],
        "examples_per_second": timing["median"],
        "ms_per_batch": 1000.0 * batch_size / timing["median"],
    }


def request_example(user: str, candidate, source, target, order: int, **statistics) -> bytes:
    """A serialized raw `tf.Example` as a client sends it (the converter's `Instance.to_example`).

    `candidate` is an `(item_id, category)` pair; `source` and `target` are
    lists of such pairs, oldest first; `statistics` are the candidate's
    `Instance` statistics fields (unknown when left out).
    """
    from sitn_tf.data.instances import Instance

    return Instance(
        split="test",
        user_id=user,
        item_id=candidate[0],
        item_category=candidate[1],
        source_items=tuple(x[0] for x in source),
        source_categories=tuple(x[1] for x in source),
        target_items=tuple(x[0] for x in target),
        target_categories=tuple(x[1] for x in target),
        label=0,
        event_timestamp=0,
        order=order,
        **statistics,
    ).to_example()


def _one_user(
    score, call, sync, pools, count: int, max_seq_len: int, settings: dict[str, Any]
) -> dict[str, Any]:
    """One user's full-length histories and `count` candidates, scored by
    `score_candidates` in one call, and (up to `MAX_SINGLE_CALLS`) by `count`
    single-candidate calls of `serving_default`."""
    import numpy as np
    import tensorflow as tf

    from sitn_tf import features as F

    rng = np.random.default_rng(count)
    source, target = pools["source"], pools["target"]
    src = [source[j] for j in rng.integers(0, len(source), max_seq_len)]
    tgt = [target[j] for j in rng.integers(0, len(target), max_seq_len)]
    candidates = [target[j] for j in rng.integers(0, len(target), count)]
    # Realistic statistics: every candidate seen before, at some age.
    clicks = rng.integers(1, 1000, count)
    ages = rng.integers(1, 10**8, count)
    request = {
        F.USER_ID: tf.constant(["bench-user"]),
        F.ITEM_ID: tf.constant([c[0] for c in candidates]),
        F.ITEM_CATEGORY: tf.constant([c[1] for c in candidates]),
        F.SOURCE_ITEM_IDS: tf.constant([[x[0] for x in src]]),
        F.SOURCE_CATEGORIES: tf.constant([[x[1] for x in src]]),
        F.TARGET_ITEM_IDS: tf.constant([[x[0] for x in tgt]]),
        F.TARGET_CATEGORIES: tf.constant([[x[1] for x in tgt]]),
        F.CANDIDATE_PRIOR_CLICKS: tf.constant(clicks, tf.int64),
        F.CANDIDATE_AGE: tf.constant(ages, tf.int64),
    }

    def timed(run, calls: int) -> list[float]:
        for _ in range(min(LATENCY_WARMUP, max(calls, 3))):
            run()
        out = []
        for _ in range(calls):
            start = time.perf_counter()
            run()
            out.append((time.perf_counter() - start) * 1000.0)
        return out

    grouped = timed(lambda: sync(score(**request)), settings["candidate_calls"])
    p50 = common.percentile(grouped, 50)
    result = {
        "candidates": count,
        "calls": len(grouped),
        "p50_ms": p50,
        "p99_ms": common.percentile(grouped, 99),
        "candidates_per_second": 1000.0 * count / p50,
    }
    if count <= MAX_SINGLE_CALLS:
        singles = [
            tf.constant(
                [
                    request_example(
                        "bench-user",
                        c,
                        src,
                        tgt,
                        i,
                        candidate_prior_clicks=int(clicks[i]),
                        candidate_seen=1,
                        candidate_age=int(ages[i]),
                    )
                ]
            )
            for i, c in enumerate(candidates)
        ]

        def one_by_one():
            for single in singles:
                sync(call(single))

        sequential = timed(one_by_one, settings["single_call_repeats"])
        single_p50 = common.percentile(sequential, 50)
        result.update(
            {
                "single_calls_p50_ms": single_p50,
                "single_calls_p99_ms": common.percentile(sequential, 99),
                "single_calls_candidates_per_second": 1000.0 * count / single_p50,
                "speedup_over_single_calls": single_p50 / p50,
            }
        )
    return result


def format_results(report: dict[str, Any]) -> str:
    rows = []
    for r in report["results"]:
        if r["measure"] == "latency":
            rows.append(
                [1, "latency", r["p50_ms"], r["p95_ms"], r["p99_ms"], r["examples_per_second"]]
            )
        else:
            rows.append(
                [r["batch_size"], "throughput", r["ms_per_batch"], "", "", r["examples_per_second"]]
            )
    header = (
        f"serving_default of {report['config']['model_dir']} "
        f"(histories {report['config']['max_seq_len']} + {report['config']['max_seq_len']} items)"
    )
    table = common.format_table(
        ["batch", "measure", "p50 ms (or ms/batch)", "p95 ms", "p99 ms", "examples/s"], rows
    )
    text = header + "\n" + table
    if report.get("candidates"):
        rows = [
            [
                r["candidates"],
                r["p50_ms"],
                r["p99_ms"],
                r["candidates_per_second"],
                r.get("single_calls_p50_ms", "-"),
                r.get("single_calls_candidates_per_second", "-"),
                r.get("speedup_over_single_calls", "-"),
            ]
            for r in report["candidates"]
        ]
        text += (
            "\n\n1 user x N candidates: score_candidates (one call) vs N serving_default calls\n"
        )
        text += common.format_table(
            ["N", "p50 ms", "p99 ms", "candidates/s", "N single calls p50 ms",
             "single candidates/s", "speed-up"],
            rows,
        )  # fmt: skip
    elif report.get("candidates_skipped"):
        text += f"\n\n1 user x N candidates not measured: {report['candidates_skipped']}"
    return text
