"""Deterministic gzip TFRecord shards.

Beam's `WriteToTFRecord` assigns records to shards and orders them as the
runner happens to process bundles, so two runs differ byte-wise. The
converter instead groups records by a stable shard key, sorts each shard and
writes it here: the same records give the same bytes (gzip header with mtime 0
and no file name) on any runner and any Beam filesystem.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterable

import google_crc32c
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

_MASK_DELTA = 0xA282EAD8


def _masked_crc32c(data: bytes) -> int:
    # TFRecord stores CRCs rotated and offset so that CRCs of CRCs stay sound.
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """One TFRecord: length, CRC of length, data, CRC of data."""
    length = struct.pack("<Q", len(data))
    return b"".join(
        (
            length,
            struct.pack("<I", _masked_crc32c(length)),
            data,
            struct.pack("<I", _masked_crc32c(data)),
        )
    )


def shard_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}.tfrecord.gz"


def write_shard(path: str, records: Iterable[bytes]) -> int:
    """Writes records in the given order as one gzip TFRecord file."""
    written = 0
    # UNCOMPRESSED: Beam would otherwise gzip a `.gz` name itself.
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as out:
            for record in records:
                out.write(frame_record(record))
                written += 1
    return written
