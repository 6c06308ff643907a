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

SEQ_LEN = 4
# Unequal files, more than one parse batch (1,024) and a partial last one.
FILE_SIZES = (1100, 900, 700)
SPEC = {
    **{name: tf.io.FixedLenFeature([], tf.int64) for name in (F.ITEM_ID, F.ITEM_CATEGORY)},
    **{name: tf.io.FixedLenFeature([SEQ_LEN], tf.int64) for name in F.SEQUENCE_FEATURES},
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
        for i in range(len(rows[F.LABEL]))
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
    for name in F.MODEL_ID_FEATURES:
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
    assert set(batches[0]) == set(F.MODEL_ID_FEATURES)
    got = np.concatenate([b[F.ITEM_ID].numpy() for b in batches])
    np.testing.assert_array_equal(got, np.tile(expected, 3)[: steps * batch_size])


def test_shuffled_pass_keeps_the_same_examples(transformed):
    pattern, output, files = transformed
    expected = _old_filter(_reading_order(files))[F.ITEM_ID]
    batches = list(_dataset(pattern, output, 128, repeat=False, shuffle=True))
    got = np.concatenate([b[F.ITEM_ID].numpy() for b in batches])
    assert sorted(got.tolist()) == sorted(expected.tolist())
    assert got.tolist() != expected.tolist()  # it did shuffle


# Rows per instance in the grouped files: 1-6, so that groups straddle the
# parse chunk (1,024 rows) and batch boundaries.
GROUP_FILE_SIZES = (1500, 800)


def _grouped_columns(n: int, rng: np.random.Generator, first_id: int):
    """Columns whose adjacent runs share histories, and each row's run number."""
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(rng.integers(1, 7)))
    sizes[-1] -= sum(sizes) - n
    run = np.repeat(np.arange(len(sizes)), sizes)
    columns = _columns(len(sizes), rng, first_id)
    columns = {
        name: (values[run] if name in F.SEQUENCE_FEATURES else None)
        for name, values in columns.items()
    }
    columns[F.ITEM_ID] = np.arange(first_id, first_id + n)
    columns[F.ITEM_CATEGORY] = rng.integers(1, 9, n)
    columns[F.LABEL] = (rng.random(n) < 0.3).astype(np.int64)
    return columns, run


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    """(file pattern, TFTransformOutput, per-file (columns, run of each row))."""
    root = str(tmp_path_factory.mktemp("grouped"))
    metadata_io.write_metadata(
        dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(SPEC)),
        os.path.join(root, tft.TFTransformOutput.TRANSFORMED_METADATA_DIR),
    )
    rng = np.random.default_rng(11)
    files, first = [], 1
    for i, n in enumerate(GROUP_FILE_SIZES):
        files.append(_grouped_columns(n, rng, first))
        first += n
        _write(os.path.join(root, f"train-{i:05d}.gz"), files[-1][0])
    return os.path.join(root, "train-*.gz"), tft.TFTransformOutput(root), files


def _grouped_dataset(pattern, output, batch_size, *, repeat, shuffle):
    return training.transformed_dataset(
        pattern, output, batch_size, shuffle=shuffle, seed=5, repeat=repeat,
        shuffle_buffer=200, group_histories=True,
    )  # fmt: skip


def _expected_groups(files) -> list[np.ndarray]:
    """Item ids of each group, in the order a deterministic interleave of the
    files' groups reads them: runs of equal histories, cut at parse chunks."""
    per_file = []
    for columns, run in files:
        ids = columns[F.ITEM_ID]
        chunk = np.arange(len(ids)) // 1024
        cut = np.flatnonzero((np.diff(run) != 0) | (np.diff(chunk) != 0)) + 1
        per_file.append(np.split(ids, cut))
    return [
        groups[i] for i in range(max(map(len, per_file))) for groups in per_file if i < len(groups)
    ]


def test_grouped_pass_reads_every_row_once_in_groups(grouped):
    pattern, output, files = grouped
    expected = np.concatenate(_expected_groups(files))
    batches = list(_grouped_dataset(pattern, output, 100, repeat=False, shuffle=False))
    assert [len(y) for _, y in batches[:-1]] == [100] * (len(batches) - 1)
    got = {
        name: np.concatenate([x[name].numpy() for x, _ in batches])
        for name in SPEC
        if name != F.LABEL
    }
    np.testing.assert_array_equal(got[F.ITEM_ID], expected)
    # Every row keeps its own features and label.
    rows = {name: np.concatenate([c[name] for c, _ in files]) for name in SPEC}
    position = got[F.ITEM_ID] - 1
    for name in F.MODEL_ID_FEATURES:
        np.testing.assert_array_equal(got[name], rows[name][position], err_msg=name)
    labels = np.concatenate([y.numpy() for _, y in batches])
    np.testing.assert_array_equal(labels, rows[F.LABEL][position])


def test_grouped_shuffle_mixes_groups_and_keeps_them_whole(grouped):
    pattern, output, files = grouped
    groups = _expected_groups(files)
    batches = list(_grouped_dataset(pattern, output, 128, repeat=False, shuffle=True))
    got = np.concatenate([x[F.ITEM_ID].numpy() for x, _ in batches])
    assert sorted(got.tolist()) == sorted(np.concatenate(groups).tolist())
    assert got.tolist() != np.concatenate(groups).tolist()  # it did shuffle
    where = {item: i for i, item in enumerate(got.tolist())}
    for group in groups:  # each group's rows stay next to each other, in order
        start = where[int(group[0])]
        np.testing.assert_array_equal(got[start : start + len(group)], group)
    repeated = _grouped_dataset(pattern, output, 128, repeat=True, shuffle=True).take(40)
    assert {len(y) for _, y in repeated} == {128}


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
