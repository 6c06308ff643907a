"""`transformed_dataset` with stage 1's filter, against numpy; the builders' XLA settings.

The files are written in the Transform's output format (gzip TFRecords of
int64 ids, `transformed_metadata/` schema) without running Beam; the
expected stream is what filtering one example at a time, in reading order,
gives, computed with numpy.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from sitn_tf import features as F
from sitn_tf import training
from sitn_tf.config import TrainingConfig
from sitn_tf.training import datasets as datasets_lib
from sitn_tf.training.datasets import read_columns

SEQ_LEN = 4
# Unequal files, more than one parse batch (1,024) and a partial last one.
FILE_SIZES = (1100, 900, 700)
SPEC = {
    **{name: tf.io.FixedLenFeature([], tf.int64) for name in (F.ITEM_ID, F.ITEM_CATEGORY)},
    **{name: tf.io.FixedLenFeature([SEQ_LEN], tf.int64) for name in F.SEQUENCE_FEATURES},
    **{name: tf.io.FixedLenFeature([], tf.int64) for name in F.MODEL_STAT_FEATURES},
    F.LABEL: tf.io.FixedLenFeature([], tf.int64),
}


def _columns(n: int, rng: np.random.Generator, first_id: int) -> dict[str, np.ndarray]:
    # About 45 % positives and a third of the histories empty: the filter
    # keeps roughly 30 %, so kept examples straddle parse batches.
    lengths = np.where(rng.random(n) < 0.35, 0, rng.integers(1, SEQ_LEN + 1, n))
    target = rng.integers(1, 50, (n, SEQ_LEN)) * (np.arange(SEQ_LEN) < lengths[:, None])
    return {
        F.ITEM_ID: np.arange(first_id, first_id + n),  # identifies each example
        F.ITEM_CATEGORY: rng.integers(1, 9, n),
        F.SOURCE_ITEM_IDS: rng.integers(1, 50, (n, SEQ_LEN)),
        F.SOURCE_CATEGORIES: rng.integers(1, 9, (n, SEQ_LEN)),
        F.TARGET_ITEM_IDS: target,
        F.TARGET_CATEGORIES: np.where(target > 0, rng.integers(1, 9, (n, SEQ_LEN)), 0),
        F.CANDIDATE_CLICKS_BUCKET: rng.integers(0, 24, n),
        F.CANDIDATE_AGE_BUCKET: rng.integers(0, 40, n),
        F.LABEL: (rng.random(n) < 0.45).astype(np.int64),
    }


def _write(path: str, columns: dict[str, np.ndarray]) -> None:
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for i in range(len(columns[F.LABEL])):
            feature = {
                name: tf.train.Feature(
                    int64_list=tf.train.Int64List(value=np.atleast_1d(values[i]).tolist())
                )
                for name, values in columns.items()
            }
            writer.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    """(file pattern, TFTransformOutput, per-file columns)."""
    root = str(tmp_path_factory.mktemp("transformed"))
    metadata_io.write_metadata(
        dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(SPEC)),
        os.path.join(root, tft.TFTransformOutput.TRANSFORMED_METADATA_DIR),
    )
    rng = np.random.default_rng(3)
    files, first = [], 1
    for i, n in enumerate(FILE_SIZES):
        files.append(_columns(n, rng, first))
        first += n
        _write(os.path.join(root, f"train-{i:05d}.gz"), files[-1])
    return os.path.join(root, "train-*.gz"), tft.TFTransformOutput(root), files


def _reading_order(files: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Rows in the order a deterministic interleave of all files reads them:
    one record from each file in turn, skipping files that have run out."""
    order = [
        (f, row)
        for row in range(max(FILE_SIZES))
        for f in range(len(files))
        if row < len(files[f][F.LABEL])
    ]
    return {name: np.stack([files[f][name][row] for f, row in order]) for name in SPEC}


def _old_filter(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One example at a time: clicked, with at least one target history id."""
    kept = [
        i
        for i in range(len(rows[F.SOURCE_ITEM_IDS]))
        if rows[F.LABEL][i] == 1 and np.any(rows[F.TARGET_ITEM_IDS][i] != 0)
    ]
    return {name: values[kept] for name, values in rows.items()}


def _dataset(pattern, output, batch_size, *, repeat, shuffle=False, with_label=False):
    return training.transformed_dataset(
        pattern,
        output,
        batch_size,
        shuffle=shuffle,
        seed=5,
        repeat=repeat,
        keep=training.pretraining_pair,
        with_label=with_label,
        shuffle_buffer=500,
    )


def test_pretraining_pair_is_a_per_example_mask():
    batch = {
        F.LABEL: tf.constant([1, 1, 0, 1], tf.int64),
        F.TARGET_ITEM_IDS: tf.constant([[0, 0, 0], [0, 0, 7], [4, 5, 0], [3, 0, 0]], tf.int64),
    }
    np.testing.assert_array_equal(
        training.pretraining_pair(batch).numpy(), [False, True, False, True]
    )


@pytest.mark.parametrize("batch_size", [64, 100])
def test_one_pass_yields_the_per_example_filter_in_order(transformed, batch_size):
    pattern, output, files = transformed
    expected = _old_filter(_reading_order(files))
    batches = list(_dataset(pattern, output, batch_size, repeat=False, with_label=True))
    sizes = [len(labels) for _, labels in batches]
    n = len(expected[F.LABEL])
    assert sizes == [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    for name in F.MODEL_INPUT_FEATURES:
        got = np.concatenate([inputs[name].numpy() for inputs, _ in batches])
        np.testing.assert_array_equal(got, expected[name], err_msg=name)
    np.testing.assert_array_equal(np.concatenate([b.numpy() for _, b in batches]), 1)


def test_repeating_gives_full_batches_across_epochs(transformed):
    pattern, output, files = transformed
    expected = _old_filter(_reading_order(files))[F.ITEM_ID]
    batch_size = 96
    assert len(expected) % batch_size  # an epoch ends inside a batch
    steps = 2 * len(expected) // batch_size + 1
    batches = list(_dataset(pattern, output, batch_size, repeat=True).take(steps))
    assert [len(b[F.ITEM_ID]) for b in batches] == [batch_size] * steps
    assert set(batches[0]) == set(F.MODEL_INPUT_FEATURES)
    got = np.concatenate([b[F.ITEM_ID].numpy() for b in batches])
    np.testing.assert_array_equal(got, np.tile(expected, 3)[: steps * batch_size])


def test_shuffled_pass_keeps_the_same_examples(transformed):
    pattern, output, files = transformed
    expected = _old_filter(_reading_order(files))[F.ITEM_ID]
    batches = list(_dataset(pattern, output, 128, repeat=False, shuffle=True))
    got = np.concatenate([b[F.ITEM_ID].numpy() for b in batches])
    assert sorted(got.tolist()) == sorted(expected.tolist())
    assert got.tolist() != expected.tolist()  # it did shuffle


# Instances of 1-6 rows (a positive and its negatives share histories),
# each split over two files as a multi-worker Transform writes them: part of
# its rows in one file, the rest in the other.
NUM_INSTANCES = 700


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    """(file pattern, TFTransformOutput, rows in a deterministic interleave's order)."""
    root = str(tmp_path_factory.mktemp("grouped"))
    metadata_io.write_metadata(
        dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(SPEC)),
        os.path.join(root, tft.TFTransformOutput.TRANSFORMED_METADATA_DIR),
    )
    rng = np.random.default_rng(11)
    sizes = rng.integers(1, 7, NUM_INSTANCES)
    n = int(sizes.sum())
    instance = np.repeat(np.arange(NUM_INSTANCES), sizes)
    histories = _columns(NUM_INSTANCES, rng, 1)
    columns = {name: histories[name][instance] for name in F.SEQUENCE_FEATURES}
    columns[F.ITEM_ID] = np.arange(1, n + 1)
    columns[F.ITEM_CATEGORY] = rng.integers(1, 9, n)
    columns[F.LABEL] = (rng.random(n) < 0.3).astype(np.int64)
    columns[F.CANDIDATE_CLICKS_BUCKET] = rng.integers(0, 24, n)
    columns[F.CANDIDATE_AGE_BUCKET] = rng.integers(0, 40, n)
    position = np.arange(n) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    # Alternately the smaller and the larger half first, so the files stay
    # about equally long (as a balanced multi-worker write).
    half = np.where(np.arange(NUM_INSTANCES) % 2 == 0, sizes // 2, sizes - sizes // 2)
    in_first = position < np.repeat(half, sizes)
    files = [
        {name: values[part] for name, values in columns.items()} for part in (in_first, ~in_first)
    ]
    for i, part in enumerate(files):
        _write(os.path.join(root, f"train-{i:05d}.gz"), part)
    order = [(f, row) for row in range(n) for f in range(2) if row < len(files[f][F.LABEL])]
    rows = {name: np.stack([files[f][name][row] for f, row in order]) for name in SPEC}
    return os.path.join(root, "train-*.gz"), tft.TFTransformOutput(root), rows


def _grouped_dataset(pattern, output, batch_size, *, repeat, shuffle):
    return training.transformed_dataset(
        pattern, output, batch_size, shuffle=shuffle, seed=5, repeat=repeat,
        shuffle_buffer=200, group_histories=True,
    )  # fmt: skip


def _history_keys(rows) -> list[bytes]:
    return [
        b"".join(rows[name][i].tobytes() for name in F.SEQUENCE_FEATURES)
        for i in range(len(rows[F.SOURCE_ITEM_IDS]))
    ]


def _grouped_order(rows, block: int) -> np.ndarray:
    """Row positions after grouping each block of `block` rows: a stable sort
    on the order in which each history first appears in the block."""
    keys = _history_keys(rows)
    order = []
    for start in range(0, len(keys), block):
        first = {}
        numbers = [first.setdefault(k, len(first)) for k in keys[start : start + block]]
        order += (start + np.argsort(numbers, kind="stable")).tolist()
    return np.array(order)


def _runs(keys) -> int:
    return 1 + sum(a != b for a, b in zip(keys[:-1], keys[1:], strict=True))


def test_history_keys_are_equal_for_equal_histories(grouped):
    _, _, rows = grouped
    keys = datasets_lib.history_keys({k: tf.constant(v[:300]) for k, v in rows.items()}).numpy()
    expected = _history_keys({k: v[:300] for k, v in rows.items()})
    for i in range(300):
        for j in range(i):
            assert (keys[i] == keys[j]) == (expected[i] == expected[j])


def test_grouped_pass_reads_every_row_once_with_its_histories_together(grouped):
    pattern, output, rows = grouped
    expected = _grouped_order(rows, 1024)
    batches = list(_grouped_dataset(pattern, output, 100, repeat=False, shuffle=False))
    assert [len(y) for _, y in batches[:-1]] == [100] * (len(batches) - 1)
    got = {
        name: np.concatenate([x[name].numpy() for x, _ in batches])
        for name in F.MODEL_INPUT_FEATURES
    }
    np.testing.assert_array_equal(got[F.ITEM_ID], rows[F.ITEM_ID][expected])
    for name in F.MODEL_INPUT_FEATURES:
        np.testing.assert_array_equal(got[name], rows[name][expected], err_msg=name)
    labels = np.concatenate([y.numpy() for _, y in batches])
    np.testing.assert_array_equal(labels, rows[F.LABEL][expected])
    # The halves of an instance, read from two files, come together: about
    # one run per instance (a few are cut by block ends), against about two
    # in reading order.
    assert _runs(_history_keys(got)) <= 1.05 * NUM_INSTANCES
    assert _runs(_history_keys(rows)) > 1.5 * NUM_INSTANCES


def test_grouped_shuffle_mixes_histories_and_keeps_them_together(grouped):
    pattern, output, rows = grouped
    batches = list(_grouped_dataset(pattern, output, 128, repeat=False, shuffle=True))
    got = {
        name: np.concatenate([x[name].numpy() for x, _ in batches])
        for name in F.MODEL_INPUT_FEATURES
    }
    assert sorted(got[F.ITEM_ID].tolist()) == sorted(rows[F.ITEM_ID].tolist())
    assert got[F.ITEM_ID].tolist() != rows[F.ITEM_ID][_grouped_order(rows, 200)].tolist()
    keys = _history_keys(got)
    for start in range(0, len(keys), 200):  # a history is one run per block
        block = keys[start : start + 200]
        assert _runs(block) == len(set(block))
    again = list(_grouped_dataset(pattern, output, 128, repeat=True, shuffle=True).take(40))
    assert {len(y) for _, y in again} == {128}


def test_grouping_and_keep_do_not_combine(grouped):
    pattern, output, _ = grouped
    with pytest.raises(ValueError, match="group_histories"):
        training.transformed_dataset(
            pattern, output, 8, shuffle=False, seed=0, repeat=False,
            keep=training.pretraining_pair, group_histories=True,
        )  # fmt: skip


def test_keep_must_return_a_batch_mask(transformed):
    pattern, output, _ = transformed

    def whole_batch(x):
        return tf.reduce_any(tf.not_equal(x[F.TARGET_ITEM_IDS], 0))

    with pytest.raises(ValueError, match=r"`keep` must return a \(batch,\) bool mask"):
        training.transformed_dataset(
            pattern, output, 8, shuffle=False, seed=0, repeat=False, keep=whole_batch
        )


# ------------------------------------------------------------ XLA settings


@pytest.mark.parametrize("key", ["jit_compile", "pretrain_jit_compile"])
@pytest.mark.parametrize("value", ["yes", 1, 0, None, "on"])
def test_jit_settings_reject_anything_but_auto_true_false(key, value):
    with pytest.raises(ValueError, match=f"`{key}` must be auto, true or false"):
        TrainingConfig(**{key: value})


_TINY_MODEL = dict(
    num_source_items=12, num_target_items=12, embedding_dim=8, num_heads=2, num_layers=1,
    max_seq_len=4, granularities=(2, 3), top_k=2, multi_view_units=(8,),
    attention_units=(8,), mlp_units=(8,),
)  # fmt: skip


@pytest.mark.parametrize(
    "build, key",
    [
        (lambda c, t: training.build_ranker(c, t), "jit_compile"),
        (
            lambda c, t: training.build_ranker(c, dataclasses.replace(t, model="din")),
            "jit_compile",
        ),
        (lambda c, t: training.build_pretrainer(c, t), "pretrain_jit_compile"),
    ],
    ids=["sitn", "din", "stage1"],
)
def test_trainers_compile_with_their_own_jit_setting(build, key):
    from sitn_tf.models import SITNConfig

    config = SITNConfig(**_TINY_MODEL)
    other = "pretrain_jit_compile" if key == "jit_compile" else "jit_compile"
    for value, expected in ((True, True), (False, False)):
        # The other stage's setting must not leak into this one.
        settings = TrainingConfig(**{key: value, other: not value})
        assert build(config, settings).jit_compile is expected
    # "auto" is Keras' choice, which is off on a CPU-only host.
    auto = build(config, TrainingConfig(**{key: "auto"}))
    if not tf.config.list_logical_devices("GPU"):
        assert auto.jit_compile is False


def test_read_columns_reads_every_example_in_reading_order(transformed):
    pattern, output, files = transformed
    columns = read_columns(pattern, output, [F.ITEM_ID, F.TARGET_ITEM_IDS], batch_size=7)
    expected = _reading_order(files)
    np.testing.assert_array_equal(columns[F.ITEM_ID], expected[F.ITEM_ID])
    np.testing.assert_array_equal(columns[F.TARGET_ITEM_IDS], expected[F.TARGET_ITEM_IDS])
    with pytest.raises(KeyError, match="no_such_feature"):
        read_columns(pattern, output, ["no_such_feature"])
