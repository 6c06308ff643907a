"""What every benchmark shares: machine facts, timing windows, memory, reports.

Conventions:

* A *window* is a stretch of repeated work timed as one; its figure is units
  (examples, rows, FLOPs) divided by its seconds. A benchmark reports every
  window and their median, after untimed warm-up work (tracing, XLA
  compilation, tf.data buffers filling).
* Peak RSS is sampled from `/proc/self/statm` by a background thread while a
  measurement runs (`RssSampler`), so each sweep point gets its own peak; it is
  the whole process's resident memory, harness included.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from sitn_tf import files

SCHEMA_VERSION = 1

# Packages whose versions go into every report (absent ones are skipped).
_PACKAGES = (
    "tensorflow",
    "keras",
    "tfx",
    "tensorflow-transform",
    "tfx-bsl",
    "apache-beam",
    "numpy",
)


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine_info(with_tensorflow: bool = True) -> dict[str, Any]:
    """Where the figures come from: CPU, cores, memory, accelerators, load."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "memory_bytes": _memory_total_bytes(),
        "load_average_at_start": load_average(),
    }
    if with_tensorflow:
        import tensorflow as tf

        info["gpus"] = [
            tf.config.experimental.get_device_details(d).get("device_name", d.name)
            for d in tf.config.list_physical_devices("GPU")
        ]
    return info


def library_versions() -> dict[str, str]:
    import sitn_tf

    versions = {"sitn-tf": sitn_tf.__version__}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssSampler:
    """Peak resident memory of this process while the `with` block runs.

    A daemon thread samples every `interval` seconds; `peak_bytes` also
    includes the values at entry and exit, so short blocks are covered.
    """

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.start_bytes = 0
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_bytes = max(self.peak_bytes, rss_bytes())

    def __enter__(self) -> RssSampler:
        self.start_bytes = self.peak_bytes = rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, rss_bytes())


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"`q` must be in [0, 100], got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def timed_windows(
    step: Callable[[], Any],
    units_per_step: float,
    *,
    windows: int,
    window_seconds: float,
    warmup_steps: int = 1,
    sync: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Runs `step` in timed windows; returns per-window rates and their median.

    The first `warmup_steps` calls are untimed (the first one also measures
    the time of one step, to size windows). Each window repeats `step` enough
    times to last about `window_seconds`, at least once. `sync(result)` must
    block until the result is really computed (e.g. `.numpy()`), so that
    asynchronous devices are timed honestly.
    """
    if windows < 1:
        raise ValueError(f"`windows` must be >= 1, got {windows}")
    sync = sync or (lambda result: result)
    for _ in range(max(warmup_steps, 0)):
        sync(step())
    start = time.perf_counter()
    sync(step())
    one = max(time.perf_counter() - start, 1e-9)
    steps = max(1, int(round(window_seconds / one)))
    rates, seconds = [], []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(steps):
            result = step()
        sync(result)
        elapsed = time.perf_counter() - start
        seconds.append(elapsed)
        rates.append(steps * units_per_step / elapsed)
    return {
        "steps_per_window": steps,
        "window_seconds": seconds,
        "rates": rates,
        "median": median(rates),
    }


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table; also valid Markdown (pipes), so docs can paste it."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            if value == 0 or math.isnan(value):
                return f"{value:g}"
            magnitude = abs(value)
            if magnitude >= 100:
                return f"{value:,.0f}"
            if magnitude >= 1:
                return f"{value:.2f}"
            return f"{value:.3g}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    text = [[cell(v) for v in row] for row in rows]
    widths = [
        max(len(str(h)), *(len(r[i]) for r in text)) if text else len(str(h))
        for i, h in enumerate(headers)
    ]
    lines = [
        "| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row, raw in zip(text, rows, strict=True):
        # Numbers right-aligned, words left-aligned.
        cells = [
            c.rjust(w) if isinstance(v, (int, float)) and not isinstance(v, bool) else c.ljust(w)
            for c, w, v in zip(row, widths, raw, strict=True)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def new_report(
    kind: str, config: dict[str, Any], *, with_tensorflow: bool = True
) -> dict[str, Any]:
    """The envelope every benchmark JSON shares; results go under `results`."""
    return {
        "schema_version": SCHEMA_VERSION,
        "benchmark": kind,
        "machine": machine_info(with_tensorflow),
        "versions": library_versions(),
        "config": config,
        "results": [],
    }


def finish_report(report: dict[str, Any], path: str | None) -> None:
    """Stamps the end load average and writes `path` (folders created)."""
    report["machine"]["load_average_at_end"] = load_average()
    if path:
        write_report(report, path)


def write_report(report: dict[str, Any], path: str) -> None:
    """Writes `report` as JSON to `path` atomically (folders created)."""
    files.write_json(path, report, allow_nan=False)


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20
