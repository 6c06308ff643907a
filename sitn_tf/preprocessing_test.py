"""preprocessing_fn against hand-built examples, through real tf.Transform analysis."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from sitn_tf import features as F
from sitn_tf import preprocessing as P

RAW_SPEC = {
    F.USER_ID: tf.io.FixedLenFeature([], tf.string),
    F.ITEM_ID: tf.io.FixedLenFeature([], tf.string),
    F.ITEM_CATEGORY: tf.io.FixedLenFeature([], tf.string),
    F.SOURCE_ITEM_IDS: tf.io.VarLenFeature(tf.string),
    F.SOURCE_CATEGORIES: tf.io.VarLenFeature(tf.string),
    F.TARGET_ITEM_IDS: tf.io.VarLenFeature(tf.string),
    F.TARGET_CATEGORIES: tf.io.VarLenFeature(tf.string),
    F.LABEL: tf.io.FixedLenFeature([], tf.int64),
    F.EVENT_TIMESTAMP: tf.io.FixedLenFeature([], tf.int64),
}


def _row(user, item, cat, src, src_cat, tgt, tgt_cat, label):
    return {
        F.USER_ID: user,
        F.ITEM_ID: item,
        F.ITEM_CATEGORY: cat,
        F.SOURCE_ITEM_IDS: src,
        F.SOURCE_CATEGORIES: src_cat,
        F.TARGET_ITEM_IDS: tgt,
        F.TARGET_CATEGORIES: tgt_cat,
        F.LABEL: label,
        F.EVENT_TIMESTAMP: 100,
    }


TRAIN = [
    _row("u1", "m1", "drama", ["b1", "b2", "b3"], ["c1", "c1", "c2"], [], [], 1),
    _row("u1", "m9", "", ["b1", "b2", "b3"], ["c1", "c1", "c2"], [], [], 0),  # negative
    _row("u1", "m2", "comedy", ["b1", "b2", "b3"], ["c1", "c1", "c2"], ["m1"], ["drama"], 1),
    _row("u2", "m1", "drama", ["b4"], ["c3"], ["m2", "m3", "m1"], ["comedy", "", "drama"], 1),
]


def _analyze(tmp_path, rows, custom_config):
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
    out = os.path.join(tmp_path, "tft")
    with tft_beam.Context(temp_dir=os.path.join(tmp_path, "tmp"), force_tf_compat_v1=False):
        (transformed, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: P.preprocessing_fn(inputs, custom_config), output_record_batches=False
        )
        _ = transform_fn | tft_beam.WriteTransformFn(out)
    return transformed, tft.TFTransformOutput(out)


def _vocab(output, name):
    return [t.decode() if isinstance(t, bytes) else t for t in output.vocabulary_by_name(name)]


def test_vocabularies_ids_padding_and_truncation(tmp_path):
    transformed, output = _analyze(tmp_path, TRAIN, {"max_seq_len": 2, "num_oov_buckets": 1})
    targets = _vocab(output, P.TARGET_ITEM_VOCAB)
    # Negatives do not enter the target vocabulary; clicked candidates and histories do.
    assert sorted(targets) == ["m1", "m2", "m3"]
    assert sorted(_vocab(output, P.SOURCE_ITEM_VOCAB)) == ["b1", "b2", "b3", "b4"]
    # tf.Transform never puts "" (unknown category) in a vocabulary: it maps to an OOV id.
    assert sorted(_vocab(output, P.CATEGORY_VOCAB)) == ["c1", "c2", "c3", "comedy", "drama"]
    assert sorted(_vocab(output, P.USER_VOCAB)) == ["u1", "u2"]

    def tid(token):
        return targets.index(token) + 1

    sources = _vocab(output, P.SOURCE_ITEM_VOCAB)
    first = transformed[0]
    # Most recent two source items, ids shifted by one, no padding needed.
    assert list(first[F.SOURCE_ITEM_IDS]) == [sources.index("b2") + 1, sources.index("b3") + 1]
    assert list(first[F.TARGET_ITEM_IDS]) == [0, 0]  # empty history: all padding
    assert first[F.TARGET_HISTORY_LENGTH] == 0
    assert first[F.TARGET_HISTORY_BUCKET] == b"0"
    # The negative candidate "m9" is out of vocabulary: first OOV id, V + 1.
    assert transformed[1][F.ITEM_ID] == len(targets) + 1
    assert transformed[1][F.ITEM_CATEGORY] == 5 + 1  # "" -> the OOV id, not padding
    third = transformed[2]
    assert list(third[F.TARGET_ITEM_IDS]) == [tid("m1"), 0]
    assert third[F.TARGET_HISTORY_BUCKET] == b"1-2"
    fourth = transformed[3]
    # Three target clicks truncated to the last two; the untruncated length is kept.
    assert list(fourth[F.TARGET_ITEM_IDS]) == [tid("m3"), tid("m1")]
    assert fourth[F.TARGET_HISTORY_LENGTH] == 3
    assert fourth[F.TARGET_HISTORY_BUCKET] == b"3-5"
    assert [r[F.LABEL] for r in transformed] == [1, 0, 1, 1]

    sizes = P.vocab_sizes(output, num_oov_buckets=1)
    assert sizes == {
        "num_users": 2 + 2,
        "num_source_items": 4 + 2,
        "num_target_items": 3 + 2,
        "num_categories": 5 + 2,
    }


def test_serving_without_label_and_with_unseen_ids(tmp_path):
    _, output = _analyze(tmp_path, TRAIN, {"max_seq_len": 3, "num_oov_buckets": 2})
    raw = {
        F.USER_ID: tf.constant(["new-user"]),
        F.ITEM_ID: tf.constant(["m1"]),
        F.ITEM_CATEGORY: tf.constant(["drama"]),
        F.SOURCE_ITEM_IDS: tf.sparse.from_dense(tf.constant([["zzz", "b1"]])),
        F.SOURCE_CATEGORIES: tf.sparse.from_dense(tf.constant([["c9", "c1"]])),
        F.TARGET_ITEM_IDS: tf.SparseTensor(
            tf.zeros([0, 2], tf.int64), tf.constant([], tf.string), [1, 0]
        ),
        F.TARGET_CATEGORIES: tf.SparseTensor(
            tf.zeros([0, 2], tf.int64), tf.constant([], tf.string), [1, 0]
        ),
    }
    layer = output.transform_features_layer()
    out = layer(raw)
    assert F.LABEL not in out
    v = output.vocabulary_size_by_name(P.SOURCE_ITEM_VOCAB)
    src = out[F.SOURCE_ITEM_IDS].numpy()[0]
    assert src.shape == (3,)
    assert v + 1 <= src[0] <= v + 2  # unseen -> one of the two OOV ids, never padding
    assert src[2] == 0
    np.testing.assert_array_equal(out[F.TARGET_ITEM_IDS].numpy(), [[0, 0, 0]])
    assert out[F.TARGET_HISTORY_BUCKET].numpy().tolist() == [b"0"]


@pytest.mark.parametrize(
    ("key", "value"),
    [("max_seq_len", 0), ("num_oov_buckets", 0), ("frequency_threshold", 0)],
)
def test_bad_config_names_the_key(key, value):
    with pytest.raises(ValueError, match=f"`{key}`"):
        P.transform_config({key: value})


def test_history_bucket_edges():
    got = P.history_bucket(tf.constant([0, 1, 2, 3, 5, 6, 100], tf.int64)).numpy().tolist()
    assert got == [b"0", b"1-2", b"1-2", b"3-5", b"3-5", b"6+", b"6+"]


def test_log2_bucket_by_hand():
    values = [-5, -1, 0, 1, 2, 3, 4, 7, 8, 1023, 1024, 10**12]
    # 0 unknown, 1 zero, then 2 + floor(log2 v), capped at num_buckets - 1 = 11.
    expected = [0, 0, 1, 2, 3, 3, 4, 4, 5, 11, 11, 11]
    got = P.log2_bucket(tf.constant(values, tf.int64), num_buckets=12).numpy().tolist()
    assert got == expected
    powers = [2**k for k in range(1, 20)]  # no power of two falls a bucket short
    got = P.log2_bucket(tf.constant(powers, tf.int64), num_buckets=40).numpy().tolist()
    assert got == [k + 2 for k in range(1, 20)]
    with pytest.raises(ValueError, match="`num_buckets` must be >= 3"):
        P.log2_bucket(tf.constant([1], tf.int64), 2)


def test_candidate_statistics_and_known_slice(tmp_path):
    spec = {
        **RAW_SPEC,
        F.CANDIDATE_PRIOR_CLICKS: tf.io.VarLenFeature(tf.int64),
        F.CANDIDATE_AGE: tf.io.VarLenFeature(tf.int64),
    }
    rows = [
        {**row, F.CANDIDATE_PRIOR_CLICKS: [clicks], F.CANDIDATE_AGE: [age]}
        for row, clicks, age in zip(TRAIN, [0, 5, 1, 9], [0, 86_400, -1, 3], strict=True)
    ]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    with tft_beam.Context(temp_dir=os.path.join(tmp_path, "tmp"), force_tf_compat_v1=False):
        (transformed, _), _ = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: P.preprocessing_fn(inputs, {}), output_record_batches=False
        )
    # 5 -> 2 + 2, 1 -> 2, 9 -> 2 + 3; 86,400 s -> 2 + 16; -1 -> unknown.
    assert [r[F.CANDIDATE_CLICKS_BUCKET] for r in transformed] == [1, 4, 2, 5]
    assert [r[F.CANDIDATE_AGE_BUCKET] for r in transformed] == [1, 18, 0, 3]
    # "m9" is the only candidate outside the target vocabulary (a negative).
    assert [r[F.CANDIDATE_KNOWN] for r in transformed] == [b"known", b"unknown", b"known", b"known"]


def test_missing_statistics_are_unknown(tmp_path):
    # TRAIN has no statistics at all (data converted before they existed, or
    # a serving request without them): every bucket is 0.
    transformed, _ = _analyze(tmp_path, TRAIN, {})
    assert {r[F.CANDIDATE_CLICKS_BUCKET] for r in transformed} == {0}
    assert {r[F.CANDIDATE_AGE_BUCKET] for r in transformed} == {0}
