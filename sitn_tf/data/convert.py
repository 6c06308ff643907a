"""Entry points of the converter, one per input format, and the driver.

The driver prepares `OUT/`, runs the Beam pipeline (`pipeline.py`), checks
the result (`stats.py`) and only then publishes the shards:

  OUT/train/part-00000-of-0000N.tfrecord.gz ...   gzip TFRecords
  OUT/eval/...  OUT/test/...
  OUT/stats.json                                 counts, drops, config
  OUT/rejects/rejects.jsonl                      first rejected lines, if any
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from sitn_tf.data import readers, tfrecord
from sitn_tf.data.config import SPLITS, ConversionConfig, DataError
from sitn_tf.data.pipeline import (
    REJECTS_DIR,
    REJECTS_FILE,
    STAGING,
    STATS_FILE,
    TALLIES_FILE,
    build_pipeline,
    read_json,
    write_json,
)
from sitn_tf.data.stats import (
    assemble_stats,
    beam_counters,
    check_stats,
    format_counters,
    summary_line,
)


def _exists(path: str) -> bool:
    return FileSystems.exists(path)


def _delete_tree(path: str) -> None:
    """Deletes a directory and everything below it, on any Beam filesystem."""
    if FileSystems.get_scheme(path) in (None, "file"):
        shutil.rmtree(path, ignore_errors=True)
        return
    if not _exists(path):
        return
    pattern = FileSystems.join(path, "**")
    files = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
    if files:
        FileSystems.delete(files)


def existing_dataset(output_dir: str, overwrite: bool) -> list[str]:
    """The split directories already in `output_dir`; an error unless `overwrite`."""
    datasets = [FileSystems.join(output_dir, split) for split in SPLITS]
    present = [path for path in datasets if _exists(path)]
    if present and not overwrite:
        raise DataError(
            f"{output_dir} already holds a converted dataset "
            f"({', '.join(present)}); pass --overwrite to replace it"
        )
    return present


def _prepare_output(output_dir: str, overwrite: bool) -> None:
    """Refuses to replace a published dataset unless asked; clears leftovers.

    Leftovers of a failed run (stats.json with the error, rejects, staging)
    are replaced without asking, so fixing the input and rerunning just works.
    """
    for path in existing_dataset(output_dir, overwrite):
        _delete_tree(path)
    for name in (REJECTS_DIR, STAGING):
        _delete_tree(FileSystems.join(output_dir, name))
    stats_path = FileSystems.join(output_dir, STATS_FILE)
    if _exists(stats_path):
        FileSystems.delete([stats_path])


def _mkdirs(path: str) -> None:
    try:
        FileSystems.mkdirs(path)
    except OSError:
        pass  # exists already (local) or needs no directories (object stores)
    except Exception as err:  # Beam wraps local errors in BeamIOError
        if not _exists(path):
            raise DataError(f"cannot create {path}: {err}") from None


def _publish(output_dir: str, num_shards: int) -> dict[str, list[str]]:
    """Moves staged shards into place, adding empty ones for shards no user hit."""
    staging = FileSystems.join(output_dir, STAGING)
    published: dict[str, list[str]] = {}
    for split in SPLITS:
        target_dir = FileSystems.join(output_dir, split)
        _mkdirs(target_dir)
        names = []
        for shard in range(num_shards):
            name = tfrecord.shard_name(shard, num_shards)
            staged = FileSystems.join(staging, split, name)
            final = FileSystems.join(target_dir, name)
            if _exists(staged):
                FileSystems.rename([staged], [final])
            else:
                tfrecord.write_shard(final, [])
            names.append(name)
        published[split] = names
    _delete_tree(staging)
    return published


def run_conversion(
    inputs: Sequence[readers.InputFile],
    config: ConversionConfig,
    output_dir: str,
    *,
    input_format: str,
    beam_args: Sequence[str] = (),
    overwrite: bool = False,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Runs the conversion and returns the stats that were written.

    Args:
      inputs: Matched input files (see `readers.describe_*`).
      config: Conversion rules.
      output_dir: Receives `{train,eval,test}/`, `stats.json`, `rejects/`.
      input_format: Recorded in stats.json (`amazon`, `interactions`, ...).
      beam_args: Beam pipeline options, e.g. `["--runner=DataflowRunner", ...]`.
      overwrite: Replace converter output already in `output_dir`.
      report: Receives the counter report and summary lines (default: none).

    Raises:
      DataError: bad input, too many rejects, unknown domain, no user left.
    """
    if not inputs:
        raise DataError("no input files")
    started = time.monotonic()
    _prepare_output(output_dir, overwrite)
    options = PipelineOptions(list(beam_args))
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, inputs, config, output_dir)
    staging = FileSystems.join(output_dir, STAGING)
    try:
        result = pipeline.run()
        result.wait_until_finish()
        counts = read_json(FileSystems.join(staging, TALLIES_FILE))
    except BaseException:
        _delete_tree(staging)
        raise
    counters = beam_counters(result)
    stats = assemble_stats(counts, config, inputs, input_format)
    stats["output_dir"] = output_dir
    stats["runner"] = options.get_all_options().get("runner") or "DirectRunner"
    rejects_path = FileSystems.join(output_dir, REJECTS_DIR, REJECTS_FILE)
    stats_path = FileSystems.join(output_dir, STATS_FILE)
    try:
        check_stats(stats, config, rejects_path)
    except DataError as err:
        _delete_tree(staging)
        stats["status"] = "failed"
        stats["error"] = str(err)
        stats["wall_time_seconds"] = round(time.monotonic() - started, 3)
        write_json(stats_path, stats)
        raise
    stats["files"] = _publish(output_dir, config.num_shards)
    stats["status"] = "ok"
    stats["wall_time_seconds"] = round(time.monotonic() - started, 3)
    write_json(stats_path, stats)
    if report is not None:
        report(format_counters(counters))
        report(summary_line(stats))
    return stats


def convert_interactions(
    interactions: str,
    output_dir: str,
    config: ConversionConfig,
    *,
    items: str | None = None,
    delimiter: str | None = None,
    beam_args: Sequence[str] = (),
    overwrite: bool = False,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Converts a TSV/CSV interactions table (and optional items table).

    Args:
      interactions: Path or glob of files with a header naming `user_id`,
        `item_id`, `domain`, `timestamp` and optionally `rating`, in any order.
        Gzip is detected from content.
      output_dir: Output directory (local or any Beam filesystem).
      config: Conversion rules.
      items: Optional path or glob of files with `item_id`, `domain` and
        optionally `category`, `brand`, `title`, `price_bucket`, `tags`
        (`|`-separated); see `readers.OPTIONAL_ITEM_COLUMNS`.
      delimiter: Column separator; by default `.tsv` means tab, `.csv` comma,
        anything else is decided by the header.
      beam_args: Beam pipeline options, passed through.
      overwrite: Replace a dataset already in `output_dir`.
      report: Receives the Beam counter report and the summary line.

    Returns:
      The content of `OUT/stats.json`.
    """
    inputs = readers.describe_delimited(interactions, readers.KIND_INTERACTIONS, delimiter)
    if items:
        inputs += readers.describe_delimited(items, readers.KIND_ITEMS, delimiter)
    return run_conversion(
        inputs,
        config,
        output_dir,
        input_format="interactions",
        beam_args=beam_args,
        overwrite=overwrite,
        report=report,
    )


def convert_amazon(
    reviews: Mapping[str, str],
    output_dir: str,
    config: ConversionConfig,
    *,
    metadata: Mapping[str, str] | None = None,
    beam_args: Sequence[str] = (),
    overwrite: bool = False,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Converts Amazon Review Data (2018 or 2014 release) of two domains.

    Args:
      reviews: Domain name -> path or glob of that domain's review file(s),
        JSON lines, optionally gzip (e.g. `{"books": "Books.json.gz"}`).
      output_dir: Output directory.
      config: Conversion rules; `config.source` and `config.target` must be
        keys of `reviews`.
      metadata: Domain name -> path or glob of `meta_<Domain>.json(.gz)`;
        2018 JSON or 2014 Python-literal lines.
      beam_args, overwrite, report: As in `convert_interactions`.

    Returns:
      The content of `OUT/stats.json`.
    """
    metadata = dict(metadata or {})
    names = ", ".join(sorted(reviews)) or "none"
    for flag, domain in (("--source", config.source), ("--target", config.target)):
        if domain not in reviews:
            raise DataError(f"unknown {flag} domain {domain!r}: reviews were given for {names}")
    for domain in metadata:
        if domain not in reviews:
            raise DataError(
                f"metadata given for domain {domain!r}, which has no reviews "
                f"(reviews were given for {names})"
            )
    inputs: list[readers.InputFile] = []
    # Only the two named domains are read: reviews of others could not be used.
    for domain in (config.source, config.target):
        inputs += readers.describe_amazon(reviews[domain], readers.KIND_AMAZON_REVIEWS, domain)
        if domain in metadata:
            inputs += readers.describe_amazon(metadata[domain], readers.KIND_AMAZON_META, domain)
    return run_conversion(
        inputs,
        config,
        output_dir,
        input_format="amazon",
        beam_args=beam_args,
        overwrite=overwrite,
        report=report,
    )
