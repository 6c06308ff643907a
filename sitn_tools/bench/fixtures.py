"""Inputs the train and serve benchmarks need, built once per settings and cached.

* `converted_synthetic`: the seeded synthetic dataset, converted by the same
  Beam converter as real data (`sitn_tf.data.prepare_synthetic_dataset`).
* `transformed`: the Transform's outputs for one `max_seq_len`, from the
  pipeline's own Transform (`pipelines.transform_run`: ExampleGen ...
  Transform of `create_pipeline(..., transform_only=True)`), cached in its
  ML Metadata store.
* `serving_model`: a `SITNRanker` fitted for a few steps with the training
  API and exported with `pipelines.serving.export_serving_model`, the
  exporter behind the Pusher's model.

Everything lives under one work folder (default `runs/bench/`); a finished
item is marked by a `DONE` file and reused by later runs.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

from sitn_tf import files

logger = logging.getLogger("sitn_tf.bench")

DONE = "DONE"
# Histories kept by the conversion; each Transform then keeps its own
# `max_seq_len` most recent items.
CONVERSION_MAX_SEQ_LEN = 200
# Small Beam jobs: one in-process worker starts fastest.
LOCAL_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")


def _done(path: str) -> bool:
    return os.path.exists(os.path.join(path, DONE))


def _mark_done(path: str, info: dict[str, Any]) -> None:
    files.write_json(os.path.join(path, DONE), info)


def converted_synthetic(
    workdir: str,
    *,
    num_users: int,
    items_per_domain: int,
    max_seq_len: int = CONVERSION_MAX_SEQ_LEN,
    seed: int = 7,
) -> str:
    """Folder of a converted synthetic dataset (`train/`, `eval/`, `test/`, raw/)."""
    from sitn_tf.data import SyntheticConfig, prepare_synthetic_dataset

    name = f"synthetic-u{num_users}-i{items_per_domain}-l{max_seq_len}-s{seed}"
    out = os.path.join(workdir, "data", name)
    if _done(out):
        return out
    logger.info("bench: converting synthetic data into %s", out)
    stats = prepare_synthetic_dataset(
        out,
        SyntheticConfig(num_users=num_users, items_per_domain=items_per_domain, seed=seed),
        conversion={"max_seq_len": max_seq_len},
        beam_args=list(LOCAL_BEAM_ARGS),
        overwrite=True,
    )
    _mark_done(
        out,
        {
            "instances": sum(
                split.get("instances", 0) for split in stats.get("splits", {}).values()
            ),
            "status": stats.get("status"),
        },
    )
    return out


def training_data(
    data: str | None, workdir: str, *, num_users: int, items_per_domain: int, max_seq_len: int
) -> str:
    """`bench train`'s and `bench profile`'s data: `--data` as given, else the synthetic set
    converted with histories of at least `max_seq_len` (and `CONVERSION_MAX_SEQ_LEN`)."""
    if data:
        return os.path.abspath(data)
    return converted_synthetic(
        workdir,
        num_users=num_users,
        items_per_domain=items_per_domain,
        max_seq_len=max(CONVERSION_MAX_SEQ_LEN, max_seq_len),
    )


def transformed(data_dir: str, workdir: str, max_seq_len: int):
    """The pipeline's Transform of `data_dir` with histories of `max_seq_len`.

    Returns a `pipelines.transform_run.TransformOutputs`; a second call with
    the same data and length is a cache hit of the pipeline's metadata store.
    """
    from pipelines.transform_run import run_transform
    from sitn_tf.config import Config

    key = os.path.basename(os.path.normpath(data_dir))
    out = os.path.join(workdir, "transform", f"{key}-l{max_seq_len}")
    logger.info("bench: the pipeline's Transform (max_seq_len=%d) into %s", max_seq_len, out)
    config = Config.from_dict({"transform": {"max_seq_len": max_seq_len}})
    return run_transform(data_dir, out, config, beam_pipeline_args=list(LOCAL_BEAM_ARGS))


def model_config(transform, config, max_seq_len: int):
    """`SITNConfig` sized by the Transform's vocabularies, as the Trainers size it.

    `config` is a `sitn_tf.config.Config` whose `model` section is used.
    """
    import tensorflow_transform as tft

    from sitn_tf import training

    config = config.updated({"transform": {"max_seq_len": max_seq_len}, "model": {}})
    return training.sized_model_config(config, tft.TFTransformOutput(transform.transform_graph))


def serving_model(transform, workdir: str, config, max_seq_len: int, fit_steps: int = 10) -> str:
    """A ranker trained and exported like the Pusher's model; returns the SavedModel folder."""
    import dataclasses

    import tensorflow_transform as tft

    from pipelines import serving
    from sitn_tf import training

    # Named after the Transform's folder under `workdir` (data and max_seq_len).
    name = os.path.relpath(transform.transform_graph, os.path.join(workdir, "transform"))
    out = os.path.join(workdir, "serving", name.split(os.sep)[0])
    if _done(out):
        return out
    if os.path.exists(out):
        shutil.rmtree(out)
    output = tft.TFTransformOutput(transform.transform_graph)
    model_config_ = model_config(transform, config, max_seq_len)
    settings = dataclasses.replace(config.training, shuffle_buffer=1000, num_epochs=1)
    if fit_steps > 0:
        # Latency does not depend on the weights' values, but a fitted model
        # is what gets pushed; a few steps make it one.
        train_files = transform.split_files("train")
        train, eval_ = training.stage_datasets(
            training.FINETUNE, output, train_files, train_files, settings
        )
        ranker = training.fit_ranker(
            model_config_, settings, train, eval_, steps=fit_steps, eval_steps=1, verbose=0
        ).model
    else:
        ranker = training.build_ranker(model_config_, settings)
    serving.export_serving_model(ranker, output, out)
    files.write_json(os.path.join(out, "assets.extra", "sitn_config.json"), model_config_.to_dict())
    _mark_done(out, {"transform": transform.transform_graph, "fit_steps": fit_steps})
    return out
