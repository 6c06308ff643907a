"""Raw interactions -> time-ordered cross-domain CTR TFRecords (Apache Beam).

Inputs: Amazon Review Data (2018 and 2014 releases), generic TSV/CSV
interactions with an optional items table, or the seeded synthetic
generator. Output under `OUT/`: `{train,eval,test}/part-*.tfrecord.gz` of
`tf.train.Example` (features in `sitn_tf.features`, contract in
`feature_specs/schema.pbtxt`), `stats.json`, and `rejects/` when lines were
rejected.

Typical use:

    from sitn_tf.data import write_default_synthetic
    write_default_synthetic("data/synthetic")

Names are imported on first use, so `sitn-tf --help` (which imports the
command-line module of this package) does not pay for Beam and TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConversionConfig": "sitn_tf.data.config",
    "DataError": "sitn_tf.data.config",
    "convert_amazon": "sitn_tf.data.convert",
    "convert_interactions": "sitn_tf.data.convert",
    "SyntheticConfig": "sitn_tf.data.synthetic",
    "SyntheticData": "sitn_tf.data.synthetic",
    "generate_synthetic": "sitn_tf.data.synthetic",
    "prepare_synthetic_dataset": "sitn_tf.data.synthetic",
    "write_default_synthetic": "sitn_tf.data.synthetic",
    "write_synthetic_raw": "sitn_tf.data.synthetic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sitn_tf.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
