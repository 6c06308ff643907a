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


def _analyze(tmp_path, rows, custom_config, spec=RAW_SPEC):
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
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


ATTRIBUTES = [  # (item_brand, item_price_bucket, item_tags) of the TRAIN rows
    (["Acme"], ["1"], ["noir", "short", "long"]),
    ([], [""], []),  # no brand value at all (data converted before), unknown price
    (["Acme"], ["2"], ["noir"]),
    (["Brio"], ["1"], ["x", "noir", "short"]),
]
ATTRIBUTE_SPEC = {
    **RAW_SPEC,
    # As the schema gives them (optional): variable-length.
    F.ITEM_BRAND: tf.io.VarLenFeature(tf.string),
    F.ITEM_PRICE_BUCKET: tf.io.VarLenFeature(tf.string),
    F.ITEM_TAGS: tf.io.VarLenFeature(tf.string),
}


def _analyze_attributes(tmp_path, custom_config):
    rows = [
        {**row, F.ITEM_BRAND: brand, F.ITEM_PRICE_BUCKET: price, F.ITEM_TAGS: tags}
        for row, (brand, price, tags) in zip(TRAIN, ATTRIBUTES, strict=True)
    ]
    return _analyze(tmp_path, rows, custom_config, ATTRIBUTE_SPEC)


def test_item_attributes_map_to_ids(tmp_path):
    transformed, output = _analyze_attributes(tmp_path, {"max_item_tags": 2, "num_oov_buckets": 1})
    # Vocabularies by frequency, negatives included (row 1 is one); "" never enters.
    assert _vocab(output, P.BRAND_VOCAB) == ["Acme", "Brio"]
    assert sorted(_vocab(output, P.PRICE_BUCKET_VOCAB)) == ["1", "2"]
    tags = _vocab(output, P.TAG_VOCAB)
    # Only the first two tags of each row are kept, so "long" is never counted:
    # noir 3, short 1, x 1.
    assert tags[0] == "noir" and sorted(tags[1:]) == ["short", "x"]
    prices = _vocab(output, P.PRICE_BUCKET_VOCAB)

    def tag(token):
        return tags.index(token) + 1

    # Acme 1, Brio 2; a missing brand maps like "": the first OOV id, 2 + 1.
    assert [r[F.ITEM_BRAND] for r in transformed] == [1, 3, 1, 2]
    assert [r[F.ITEM_PRICE_BUCKET] for r in transformed] == [
        prices.index("1") + 1,
        3,  # "" -> OOV, not padding
        prices.index("2") + 1,
        prices.index("1") + 1,
    ]
    assert [list(r[F.ITEM_TAGS]) for r in transformed] == [
        [1, tag("short")],  # "long" cut by max_item_tags = 2
        [0, 0],  # no tags: all padding
        [1, 0],
        [tag("x"), 1],
    ]
    assert P.item_attribute_vocab_sizes(output, num_oov_buckets=1) == {
        "brand": 2 + 2,
        "price_bucket": 2 + 2,
        "tags": 3 + 2,
    }
    # The ranker's sizes do not change.
    assert set(P.vocab_sizes(output, num_oov_buckets=1)) == {
        "num_users", "num_source_items", "num_target_items", "num_categories"
    }  # fmt: skip

    # Serving: a request may omit the attributes; a tag never seen in train is OOV.
    layer = output.transform_features_layer()
    empty = tf.SparseTensor(tf.zeros([0, 2], tf.int64), tf.constant([], tf.string), [2, 0])
    raw = {
        F.USER_ID: tf.constant(["u1", "u1"]),
        F.ITEM_ID: tf.constant(["m1", "m2"]),
        F.ITEM_CATEGORY: tf.constant(["drama", ""]),
        F.SOURCE_ITEM_IDS: empty,
        F.SOURCE_CATEGORIES: empty,
        F.TARGET_ITEM_IDS: empty,
        F.TARGET_CATEGORIES: empty,
        F.ITEM_BRAND: tf.SparseTensor([[0, 0]], ["Brio"], [2, 1]),
        F.ITEM_PRICE_BUCKET: empty,
        F.ITEM_TAGS: tf.SparseTensor([[1, 0], [1, 1]], ["new-tag", "x"], [2, 2]),
    }
    out = layer(raw)
    assert out[F.ITEM_BRAND].numpy().tolist() == [2, 3]
    assert out[F.ITEM_PRICE_BUCKET].numpy().tolist() == [3, 3]
    assert out[F.ITEM_TAGS].numpy().tolist() == [[0, 0], [4, tag("x")]]


def test_missing_item_attributes_map_like_unknown(tmp_path):
    # TRAIN has no attributes at all (data converted before they existed):
    # every value is unknown, so each vocabulary is empty, and tf.Transform
    # writes its one placeholder token into it (id 1). A brand or price is
    # then the first OOV id, 1 + 1, and tags are all padding.
    transformed, output = _analyze(tmp_path, TRAIN, {"max_item_tags": 3})
    for name in (P.BRAND_VOCAB, P.PRICE_BUCKET_VOCAB, P.TAG_VOCAB):
        assert output.vocabulary_size_by_name(name) == 1, name
    assert {r[F.ITEM_BRAND] for r in transformed} == {2}
    assert {r[F.ITEM_PRICE_BUCKET] for r in transformed} == {2}
    assert {tuple(r[F.ITEM_TAGS]) for r in transformed} == {(0, 0, 0)}
    assert P.item_attribute_vocab_sizes(output, num_oov_buckets=1) == {
        "brand": 3,
        "price_bucket": 3,
        "tags": 3,
    }


def test_bad_max_item_tags_names_the_key():
    with pytest.raises(ValueError, match="`max_item_tags`"):
        P.transform_config({"max_item_tags": 0})
