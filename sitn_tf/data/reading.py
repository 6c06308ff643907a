"""Reading converted examples back into Python, for inspection and tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from apache_beam.io.filesystems import FileSystems
from tensorflow.core.example import example_pb2

from sitn_tf import features
from sitn_tf.data import tfrecord


def decode_example(serialized: bytes) -> dict[str, Any]:
    """Decodes one converter example into plain Python values.

    Bytes features become str; scalars are unwrapped, histories are lists.
    """
    example = example_pb2.Example.FromString(serialized)
    feature = example.features.feature
    out: dict[str, Any] = {}
    for name in features.SCALAR_BYTES_FEATURES:
        (out[name],) = (v.decode("utf-8") for v in feature[name].bytes_list.value)
    for name in features.SEQUENCE_FEATURES:
        out[name] = [v.decode("utf-8") for v in feature[name].bytes_list.value]
    for name in features.INT_FEATURES:
        (out[name],) = feature[name].int64_list.value
    # Optional: missing in data converted before they existed, read as unknown
    # ("" / no tags). `name in feature` first: indexing a map adds the key.
    for name in features.OPTIONAL_FEATURES:
        present = name in feature
        values = [v.decode("utf-8") for v in feature[name].bytes_list.value] if present else []
        if name in features.OPTIONAL_SEQUENCE_FEATURES:
            out[name] = values
        else:
            (out[name],) = values or [""]
    return out


def split_files(output_dir: str, split: str) -> list[str]:
    pattern = FileSystems.join(output_dir, split, "*.tfrecord.gz")
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def read_split(output_dir: str, split: str) -> Iterator[dict[str, Any]]:
    """Yields the decoded examples of `OUT/<split>/`, in file order."""
    for path in split_files(output_dir, split):
        for record in tfrecord.read_records(path):
            yield decode_example(record)
