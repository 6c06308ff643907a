"""Deterministic gzip TFRecord shards, checked against TensorFlow's reader."""

from __future__ import annotations

import gzip

import pytest
import tensorflow as tf

from sitn_tf.data import tfrecord

RECORDS = [b"", b"a", b"\x00\xff" * 1000, "héllo".encode()]


def _read(path):
    return [r.numpy() for r in tf.data.TFRecordDataset([path], compression_type="GZIP")]


def test_tensorflow_reads_what_we_write(tmp_path):
    path = str(tmp_path / "x" / tfrecord.shard_name(0, 1))
    assert tfrecord.write_shard(path, RECORDS) == len(RECORDS)
    assert _read(path) == RECORDS


def test_same_records_same_bytes_and_no_timestamp_in_gzip_header(tmp_path):
    first, second = str(tmp_path / "a.gz"), str(tmp_path / "b.gz")
    tfrecord.write_shard(first, RECORDS)
    tfrecord.write_shard(second, RECORDS)
    data = open(first, "rb").read()
    assert data == open(second, "rb").read()
    assert data[4:8] == b"\x00\x00\x00\x00"  # gzip MTIME
    assert data[3] & 0x08 == 0  # no FNAME


def test_frame_matches_tensorflow_writer(tmp_path):
    path = str(tmp_path / "tf.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for record in RECORDS:
            writer.write(record)
    assert open(path, "rb").read() == b"".join(tfrecord.frame_record(r) for r in RECORDS)


def test_corrupted_record_is_detected(tmp_path):
    path = tmp_path / "c.gz"
    raw = bytearray(tfrecord.frame_record(b"payload-bytes"))
    raw[14] ^= 0xFF  # inside the data: its CRC no longer matches
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(tf.errors.DataLossError):
        _read(str(path))


def test_empty_shard_is_a_valid_file(tmp_path):
    path = str(tmp_path / tfrecord.shard_name(3, 4))
    assert path.endswith("part-00003-of-00004.tfrecord.gz")
    tfrecord.write_shard(path, [])
    assert _read(path) == []


def test_read_records_round_trip_and_crc_check(tmp_path):
    path = str(tmp_path / "r.gz")
    tfrecord.write_shard(path, RECORDS)
    assert list(tfrecord.read_records(path)) == RECORDS
    raw = bytearray(tfrecord.frame_record(b"payload-bytes"))
    raw[14] ^= 0xFF
    (tmp_path / "bad.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ValueError, match="corrupted record at byte 0"):
        list(tfrecord.read_records(str(tmp_path / "bad.gz")))
