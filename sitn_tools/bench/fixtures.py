"""Inputs the train and serve benchmarks need, built once per settings and cached.

* `converted_synthetic`: the seeded synthetic dataset, converted by the same
  Beam converter as real data (`sitn_tf.data.prepare_synthetic_dataset`).
* `transformed`: the Transform's outputs for one `max_seq_len`: the
  `transform_fn` with its vocabularies and the transformed train split as
  gzip TFRecords, produced by `tft_beam.AnalyzeAndTransformDataset` with the
  pipeline's own `preprocessing_fn` and the project schema (what the TFX
  Transform component runs, without ML Metadata around it).
* `serving_model`: a `SITNRanker` fitted for a few steps and exported with
  `pipelines.serving.export_serving_model`, the exporter behind the Pusher's
  model.

Everything lives under one work folder (default `runs/bench/`); a finished
item is marked by a `DONE` file and reused by later runs.
"""

from __future__ import annotations

import functools
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
TRANSFORMED_TRAIN = "transformed/train"
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


def _schema():
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    from pipelines import defaults

    with open(defaults.SCHEMA_PATH) as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())


def transformed(data_dir: str, workdir: str, max_seq_len: int) -> str:
    """Transform output for `data_dir`'s train split padded to `max_seq_len`.

    Returns a folder usable as `tft.TFTransformOutput(folder)`, with the
    transformed train examples under `transformed/train/`.
    """
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io
    from tfx_bsl.public import tfxio

    from pipelines import preprocessing

    key = os.path.basename(os.path.normpath(data_dir))
    out = os.path.join(workdir, "transform", f"{key}-l{max_seq_len}")
    if _done(out):
        return out
    if os.path.exists(out):
        shutil.rmtree(out)
    logger.info("bench: running tf.Transform (max_seq_len=%d) into %s", max_seq_len, out)
    custom_config = {**preprocessing.DEFAULTS, "max_seq_len": max_seq_len}
    preprocessing_fn = functools.partial(
        preprocessing.preprocessing_fn, custom_config=custom_config
    )
    source = tfxio.TFExampleRecord(
        file_pattern=os.path.join(data_dir, "train", "*"), schema=_schema()
    )
    with beam.Pipeline(options=PipelineOptions(list(LOCAL_BEAM_ARGS))) as pipeline:
        with tft_beam.Context(temp_dir=os.path.join(out, "tmp")):
            raw = pipeline | "Read" >> source.BeamSource()
            (data, metadata), transform_fn = (
                raw,
                source.TensorAdapterConfig(),
            ) | "AnalyzeAndTransform" >> tft_beam.AnalyzeAndTransformDataset(preprocessing_fn)
            _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(out)
            _ = data | "Write" >> beam.io.WriteToTFRecord(
                os.path.join(out, TRANSFORMED_TRAIN, "part"),
                file_name_suffix=".gz",
                coder=tft.coders.ExampleProtoCoder(metadata.schema),
            )
    # The raw schema, where the Transform component also leaves it: the
    # serving signatures parse requests with it.
    metadata_io.write_metadata(
        dataset_metadata.DatasetMetadata(_schema()),
        os.path.join(out, tft.TFTransformOutput.RAW_METADATA_DIR),
    )
    shutil.rmtree(os.path.join(out, "tmp"), ignore_errors=True)
    _mark_done(out, {"data": data_dir, "transform": custom_config})
    return out


def transformed_train_files(transform_dir: str) -> str:
    return os.path.join(transform_dir, TRANSFORMED_TRAIN, "*")


def model_config(transform_dir: str, model: dict[str, Any], max_seq_len: int):
    """`SITNConfig` sized by the Transform's vocabularies, as the Trainers size it."""
    import tensorflow_transform as tft

    from pipelines import train_lib

    custom_config = {
        "transform": {"max_seq_len": max_seq_len},
        "model": dict(model),
    }
    return train_lib.model_config(custom_config, tft.TFTransformOutput(transform_dir))


def serving_model(
    transform_dir: str, workdir: str, model: dict[str, Any], max_seq_len: int, fit_steps: int = 10
) -> str:
    """A ranker exported like the Pusher's model; returns the SavedModel folder."""
    import keras
    import tensorflow_transform as tft

    from pipelines import finetune_trainer, serving, train_lib

    out = os.path.join(workdir, "serving", os.path.basename(transform_dir))
    if _done(out):
        return out
    if os.path.exists(out):
        shutil.rmtree(out)
    output = tft.TFTransformOutput(transform_dir)
    config = model_config(transform_dir, model, max_seq_len)
    training = train_lib.training_config({})
    keras.utils.set_random_seed(int(training["seed"]))
    ranker = finetune_trainer.build_model(config, training)
    if fit_steps > 0:
        # Latency does not depend on the weights' values, but a fitted model
        # is what gets pushed; a few steps make it one.
        dataset = train_lib.transformed_dataset(
            transformed_train_files(transform_dir),
            output,
            int(training["batch_size"]),
            shuffle=True,
            seed=int(training["seed"]),
            repeat=True,
            shuffle_buffer=1000,
        )
        ranker.fit(dataset, epochs=1, steps_per_epoch=fit_steps, verbose=0)
    serving.export_serving_model(ranker, output, out)
    files.write_json(os.path.join(out, "assets.extra", "sitn_config.json"), config.to_dict())
    _mark_done(out, {"transform": transform_dir, "fit_steps": fit_steps})
    return out
