"""Helpers of the model tests: a tiny config, random id batches, and call spies."""

from __future__ import annotations

import numpy as np

from sitn_tf import features
from sitn_tf.models.config import SITNConfig

SEQ_LEN = 6


def record_input_shapes(layer, argument: int = 0) -> list[tuple]:
    """Wraps `layer.call` to record the shape of its positional `argument` at every call.

    Returns the list the shapes are appended to, e.g. `(rows, L)` of the ids an
    encoder reads, or `(histories, L, D)` of the keys a target attention reads.
    """
    shapes: list[tuple] = []
    call = layer.call

    def spy(*args, **kwargs):
        shapes.append(tuple(args[argument].shape))
        return call(*args, **kwargs)

    layer.call = spy
    return shapes


def tiny_config(**changes) -> SITNConfig:
    values = dict(
        num_source_items=30,
        num_target_items=25,
        num_categories=5,
        embedding_dim=8,
        num_heads=2,
        num_layers=1,
        max_seq_len=SEQ_LEN,
        dropout=0.0,
        granularities=(3, 5),
        top_k=2,
        multi_view_units=(8,),
        attention_units=(8,),
        mlp_units=(8,),
        # Deterministic in training too (the masking is tested in its layer's test).
        statistics_unknown_rate=0.0,
    )
    values.update(changes)
    return SITNConfig(**values)


def random_batch(config: SITNConfig, batch: int = 8, seed: int = 0, empty_target_rows=(1,)):
    """Padded id matrices (right padding), candidates, their statistics' buckets, and labels."""
    rng = np.random.default_rng(seed)

    def sequence(num_items, min_len):
        ids = rng.integers(1, num_items, size=(batch, config.max_seq_len))
        lengths = rng.integers(min_len, config.max_seq_len + 1, size=batch)
        ids[np.arange(config.max_seq_len)[None] >= lengths[:, None]] = 0
        return ids.astype("int64")

    def categories(ids):
        values = rng.integers(1, max(config.num_categories, 2), size=ids.shape)
        return np.where(ids > 0, values, 0).astype("int64")

    source = sequence(config.num_source_items, 1)
    target = sequence(config.num_target_items, 1)
    target[list(empty_target_rows)] = 0
    x = {
        features.SOURCE_ITEM_IDS: source,
        features.SOURCE_CATEGORIES: categories(source),
        features.TARGET_ITEM_IDS: target,
        features.TARGET_CATEGORIES: categories(target),
        features.ITEM_ID: rng.integers(1, config.num_target_items, size=batch).astype("int64"),
    }
    x[features.ITEM_CATEGORY] = categories(x[features.ITEM_ID])
    x[features.CANDIDATE_CLICKS_BUCKET] = rng.integers(0, 24, size=batch).astype("int64")
    x[features.CANDIDATE_AGE_BUCKET] = rng.integers(0, 40, size=batch).astype("int64")
    labels = (rng.random(batch) < 0.5).astype("float32")
    return x, labels


def statistics_embedding(model, x) -> np.ndarray | None:
    """The head's statistics part `s` by hand: table rows of the batch's bucket ids."""
    if model.statistics is None:
        return None
    clicks, ages = (np.asarray(t) for t in model.statistics.tables)
    return np.concatenate(
        [clicks[x[features.CANDIDATE_CLICKS_BUCKET]], ages[x[features.CANDIDATE_AGE_BUCKET]]],
        axis=-1,
    )
