"""Deterministic gzip TFRecord shards.

Beam's `WriteToTFRecord` assigns records to shards and orders them as the
runner happens to process bundles, so two runs differ byte-wise. The
converter instead groups records by a stable shard key, sorts each shard and
writes it here: the same records give the same bytes (gzip header with mtime 0
and no file name) on any runner and any Beam filesystem. `read_records` reads
them back without TensorFlow's eager overhead (for inspection and tests).
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterable, Iterator

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


def read_records(path: str) -> Iterator[bytes]:
    """Reads a gzip TFRecord file, verifying both CRCs of every record."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        with gzip.GzipFile(fileobj=raw, mode="rb") as handle:
            data = handle.read()
    offset, size = 0, len(data)
    while offset < size:
        if offset + 12 > size:
            raise ValueError(f"{path}: truncated record header at byte {offset}")
        header = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[offset + 8 : offset + 12])
        if length_crc != _masked_crc32c(header):
            raise ValueError(f"{path}: corrupted length at byte {offset}")
        start, end = offset + 12, offset + 12 + length
        if end + 4 > size:
            raise ValueError(f"{path}: truncated record at byte {offset}")
        record = data[start:end]
        (data_crc,) = struct.unpack("<I", data[end : end + 4])
        if data_crc != _masked_crc32c(record):
            raise ValueError(f"{path}: corrupted record at byte {offset}")
        yield record
        offset = end + 4
