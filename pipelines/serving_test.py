"""`score_candidates` against the per-row signatures of the same SavedModel.

A tiny Transform (in-memory Beam) and untrained models: the check is that
scoring N candidates for one user's histories in one call gives what N rows
of `serving_raw` and of `serving_default` give.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from pipelines import serving
from sitn_tf import features as F
from sitn_tf import preprocessing
from sitn_tf.models import DIN, SITNRanker
from sitn_tf.models._testing import tiny_config

MAX_SEQ_LEN = 4
RAW_SPEC = {
    **{name: tf.io.FixedLenFeature([], tf.string) for name in F.SCALAR_BYTES_FEATURES},
    **{name: tf.io.VarLenFeature(tf.string) for name in F.SEQUENCE_FEATURES},
    F.LABEL: tf.io.FixedLenFeature([], tf.int64),
    F.EVENT_TIMESTAMP: tf.io.FixedLenFeature([], tf.int64),
    F.CANDIDATE_PRIOR_CLICKS: tf.io.VarLenFeature(tf.int64),
    F.CANDIDATE_AGE: tf.io.VarLenFeature(tf.int64),
}
SOURCE = ["b1", "b2", "b3", "b4", "b5"]  # longer than MAX_SEQ_LEN: truncated
TARGET = ["m1", "m2"]
CANDIDATES = ["m1", "m2", "m3", "m4", "unseen", "m2"]
CATEGORIES = ["drama", "comedy", "", "drama", "new", "comedy"]


def _row(item, category, label):
    return {
        F.USER_ID: "u1",
        F.ITEM_ID: item,
        F.ITEM_CATEGORY: category,
        F.SOURCE_ITEM_IDS: SOURCE,
        F.SOURCE_CATEGORIES: ["c1", "c2", "c1", "c3", "c2"],
        F.TARGET_ITEM_IDS: TARGET,
        F.TARGET_CATEGORIES: ["drama", "comedy"],
        F.LABEL: label,
        F.EVENT_TIMESTAMP: 1,
        F.CANDIDATE_PRIOR_CLICKS: [3],
        F.CANDIDATE_AGE: [100],
    }


@pytest.fixture(scope="module")
def transform_output(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("transform"))
    rows = [_row(f"m{i}", ["drama", "comedy"][i % 2], i % 2) for i in range(1, 5)]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
    config = {"max_seq_len": MAX_SEQ_LEN, "num_oov_buckets": 1}
    with tft_beam.Context(temp_dir=os.path.join(root, "tmp"), force_tf_compat_v1=False):
        _, transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing.preprocessing_fn(inputs, config),
            output_record_batches=False,
        )
        _ = transform_fn | tft_beam.WriteTransformFn(os.path.join(root, "tft"))
    # The raw schema, which the Transform component writes too (requests are parsed with it).
    metadata_io.write_metadata(
        metadata, os.path.join(root, "tft", tft.TFTransformOutput.RAW_METADATA_DIR)
    )
    return tft.TFTransformOutput(os.path.join(root, "tft"))


def _example(item, category, statistics=None):
    feature = {
        name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))
        for name, values in _row(item, category, 0).items()
        if name in F.SCALAR_BYTES_FEATURES + F.SEQUENCE_FEATURES
        for values in [[values] if isinstance(values, str) else values]
    }
    if statistics is not None:  # else left out: "unknown"
        for name, value in zip(
            (F.CANDIDATE_PRIOR_CLICKS, F.CANDIDATE_AGE), statistics, strict=True
        ):
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def tiny_ranker(model_class, transform_output):
    """An untrained ranker sized to the tiny Transform's vocabularies."""
    sizes = preprocessing.vocab_sizes(transform_output, 1)
    return model_class(
        tiny_config(
            num_source_items=sizes["num_source_items"],
            num_target_items=sizes["num_target_items"],
            num_categories=sizes["num_categories"],
            max_seq_len=MAX_SEQ_LEN,
        )
    )


@pytest.mark.parametrize("model_class", [SITNRanker, DIN])
def test_score_candidates_equals_one_row_per_candidate(tmp_path, transform_output, model_class):
    export_dir = str(tmp_path / "model")
    serving.export_serving_model(
        tiny_ranker(model_class, transform_output), transform_output, export_dir
    )
    loaded = tf.saved_model.load(export_dir)
    assert {"serving_default", serving.SERVING_RAW, serving.TRANSFORM_FEATURES,
            serving.SCORE_CANDIDATES} <= set(loaded.signatures)  # fmt: skip

    row = _row("", "", 0)
    n = len(CANDIDATES)
    histories = {
        name: tf.constant([row[name] + [""]])  # a trailing "" is padding
        for name in F.SEQUENCE_FEATURES
    }
    unknown = {F.CANDIDATE_PRIOR_CLICKS: tf.constant([-1], tf.int64)}
    unknown[F.CANDIDATE_AGE] = unknown[F.CANDIDATE_PRIOR_CLICKS]  # [-1]: none for all N
    grouped = loaded.signatures[serving.SCORE_CANDIDATES](
        user_id=tf.constant(["u1"]),
        item_id=tf.constant(CANDIDATES),
        item_category=tf.constant(CATEGORIES),
        **histories,
        **unknown,
    )[serving.PROBABILITY].numpy()
    per_row = loaded.signatures[serving.SERVING_RAW](
        user_id=tf.constant(["u1"] * n),
        item_id=tf.constant(CANDIDATES),
        item_category=tf.constant(CATEGORIES),
        **{name: tf.constant([row[name]] * n) for name in F.SEQUENCE_FEATURES},
    )[serving.PROBABILITY].numpy()
    examples = tf.constant([_example(i, c) for i, c in zip(CANDIDATES, CATEGORIES, strict=True)])
    default = loaded.signatures["serving_default"](examples=examples)[serving.PROBABILITY].numpy()
    assert grouped.shape == (n,)
    np.testing.assert_allclose(grouped, per_row, atol=1e-6, rtol=0)
    np.testing.assert_allclose(grouped, default, atol=1e-6, rtol=0)
    # Candidates differ, so their scores do: the call did not score one row N times.
    assert len(set(np.round(grouped, 6).tolist())) > 1

    # With statistics: each candidate's own, as in a tf.Example that carries them.
    clicks, ages = [0, 1, 5, 300, 0, 2], [0, 7, 99, -1, 0, 1_000_000]
    with_statistics = loaded.signatures[serving.SCORE_CANDIDATES](
        user_id=tf.constant(["u1"]),
        item_id=tf.constant(CANDIDATES),
        item_category=tf.constant(CATEGORIES),
        candidate_prior_clicks=tf.constant(clicks, tf.int64),
        candidate_age=tf.constant(ages, tf.int64),
        **histories,
    )[serving.PROBABILITY].numpy()
    examples = tf.constant(
        [
            _example(i, c, (k, a))
            for i, c, k, a in zip(CANDIDATES, CATEGORIES, clicks, ages, strict=True)
        ]
    )
    default = loaded.signatures["serving_default"](examples=examples)[serving.PROBABILITY].numpy()
    np.testing.assert_allclose(with_statistics, default, atol=1e-6, rtol=0)
    assert not np.allclose(with_statistics, grouped)  # the statistics are read

    empty = loaded.signatures[serving.SCORE_CANDIDATES](
        user_id=tf.constant(["u1"]),
        item_id=tf.constant([], tf.string),
        item_category=tf.constant([], tf.string),
        candidate_prior_clicks=tf.constant([], tf.int64),
        candidate_age=tf.constant([], tf.int64),
        **{name: tf.constant([row[name]]) for name in F.SEQUENCE_FEATURES},
    )[serving.PROBABILITY].numpy()
    assert empty.shape == (0,)
