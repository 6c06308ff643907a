from __future__ import annotations

import keras
import numpy as np
import pytest

from sitn_tf import features
from sitn_tf.models._testing import random_batch, statistics_embedding, tiny_config
from sitn_tf.models.din import DIN


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_uses_only_target_history_and_candidate():
    config = tiny_config()
    model = DIN(config)
    x, _ = random_batch(config, empty_target_rows=(2,))
    y = _np(model(x))
    assert y.shape == (8,) and np.all((y > 0) & (y < 1))
    target_only = {
        name: x[name]
        for name in (
            features.ITEM_ID,
            features.ITEM_CATEGORY,
            features.TARGET_ITEM_IDS,
            features.TARGET_CATEGORIES,
            *features.MODEL_STAT_FEATURES,
        )
    }
    np.testing.assert_array_equal(_np(model(target_only)), y)
    assert not any("source" in w.path for w in model.weights)


def test_forward_is_din_over_raw_embeddings():
    config = tiny_config()
    model = DIN(config)
    x, _ = random_batch(config, empty_target_rows=(2,))
    items = model.embedding.item_embedding.embeddings.numpy()
    categories = model.embedding.category_embedding.embeddings.numpy()
    ids, cats = x[features.TARGET_ITEM_IDS], x[features.TARGET_CATEGORIES]
    history = (items[ids] + categories[cats]) * (ids != 0)[..., None]
    v = items[x[features.ITEM_ID]] + categories[x[features.ITEM_CATEGORY]]
    u = model.attention(v, history, mask=ids != 0)
    s = statistics_embedding(model, x)
    expected = model.head(keras.ops.concatenate([u, v, s], axis=-1))[:, 0]
    np.testing.assert_allclose(_np(model(x)), _np(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(_np(u)[2], 0.0)


def test_without_categories():
    config = tiny_config(num_categories=0)
    model = DIN(config)
    x, _ = random_batch(config)
    del x[features.ITEM_CATEGORY], x[features.TARGET_CATEGORIES]
    assert np.all(np.isfinite(_np(model(x))))


def test_bad_inputs():
    config = tiny_config()
    x, _ = random_batch(config)
    with pytest.raises(KeyError, match=features.TARGET_ITEM_IDS):
        DIN(config)({k: v for k, v in x.items() if k != features.TARGET_ITEM_IDS})
    with pytest.raises(ValueError, match="`embedding_dim`"):
        DIN(config.to_dict() | {"embedding_dim": 9})


def test_statistics_switch_and_absent_statistics():
    off = DIN(tiny_config(item_statistics=False))
    assert off.statistics is None
    assert off.head.dense_layers[0].kernel.shape[0] == 2 * 8  # concat(u, v) only, as in DIN
    config = tiny_config()
    model = DIN(config)
    x, _ = random_batch(config)
    # Absent statistics are "unknown": the same as sending bucket 0.
    absent = {k: v for k, v in x.items() if k not in features.MODEL_STAT_FEATURES}
    unknown = {**absent, **{k: np.zeros(8, "int64") for k in features.MODEL_STAT_FEATURES}}
    np.testing.assert_allclose(_np(model(absent)), _np(model(unknown)), rtol=1e-6)
    # And they matter: other buckets give other scores.
    assert not np.allclose(_np(model(absent)), _np(model(x)))
