"""Reading converted examples back into Python, for inspection and tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import tensorflow as tf
from apache_beam.io.filesystems import FileSystems

from sitn_tf import features


def decode_example(serialized: bytes) -> dict[str, Any]:
    """Decodes one converter example into plain Python values.

    Bytes features become str; scalars are unwrapped, histories are lists.
    """
    example = tf.train.Example.FromString(serialized)
    feature = example.features.feature
    out: dict[str, Any] = {}
    for name in features.SCALAR_BYTES_FEATURES:
        (out[name],) = (v.decode("utf-8") for v in feature[name].bytes_list.value)
    for name in features.SEQUENCE_FEATURES:
        out[name] = [v.decode("utf-8") for v in feature[name].bytes_list.value]
    for name in features.INT_FEATURES:
        (out[name],) = feature[name].int64_list.value
    return out


def split_files(output_dir: str, split: str) -> list[str]:
    pattern = FileSystems.join(output_dir, split, "*.tfrecord.gz")
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def read_split(output_dir: str, split: str) -> Iterator[dict[str, Any]]:
    """Yields the decoded examples of `OUT/<split>/`, in file order."""
    files = split_files(output_dir, split)
    if not files:
        return
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        yield decode_example(record.numpy())
