from __future__ import annotations

import keras
import numpy as np
import pytest

from sitn_tf.layers.sequence_encoder import SequenceEncoder

NUM_ITEMS, NUM_CATEGORIES, DIM = 30, 6, 8


def _encoder(**kwargs) -> SequenceEncoder:
    defaults = dict(
        num_items=NUM_ITEMS,
        embedding_dim=DIM,
        num_heads=2,
        num_layers=2,
        num_categories=NUM_CATEGORIES,
        max_seq_len=12,
    )
    defaults.update(kwargs)
    return SequenceEncoder(**defaults)


def _batch():
    ids = np.array([[5, 7, 9, 0, 0, 0], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 0]], "int32")
    cats = np.array([[1, 2, 3, 0, 0, 0], [1, 1, 2, 2, 3, 3], [0, 0, 0, 0, 0, 0]], "int32")
    return ids, cats


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _layer_norm(x, norm):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.epsilon) * norm.gamma.numpy() + norm.beta.numpy()


def test_output_shape_and_padding_positions_are_zero():
    ids, cats = _batch()
    z = _np(_encoder()(ids, cats))
    assert z.shape == (3, 6, DIM)
    np.testing.assert_array_equal(z[ids == 0], 0.0)
    assert np.all(np.abs(z[ids != 0]).sum(-1) > 0)


def test_extra_padding_does_not_change_real_positions():
    encoder = _encoder()
    ids, cats = _batch()
    z = _np(encoder(ids, cats))
    longer_ids = np.pad(ids, ((0, 0), (0, 4)))
    longer_cats = np.pad(cats, ((0, 0), (0, 4)))
    z_longer = _np(encoder(longer_ids, longer_cats))
    np.testing.assert_allclose(z_longer[:, :6], z, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(z_longer[:, 6:], 0.0)


def test_content_at_padding_positions_is_ignored():
    encoder = _encoder()
    ids, cats = _batch()
    noisy_cats = np.where(ids == 0, 5, cats).astype("int32")
    np.testing.assert_allclose(
        _np(encoder(ids, noisy_cats)), _np(encoder(ids, cats)), rtol=1e-5, atol=1e-6
    )


def test_self_attention_mixes_real_positions():
    # Guards the masking tests above against an encoder that ignores context.
    encoder = _encoder(use_positions=False)
    ids, cats = _batch()
    changed = ids.copy()
    changed[0, 2] = 11
    z, z_changed = _np(encoder(ids, cats)), _np(encoder(changed, cats))
    assert not np.allclose(z[0, 0], z_changed[0, 0])
    np.testing.assert_allclose(z[1], z_changed[1], rtol=1e-5, atol=1e-6)  # rows independent


def test_all_padding_row_is_finite_in_training_mode():
    encoder = _encoder(dropout=0.3)
    ids = np.zeros((2, 4), "int32")
    z = _np(encoder(ids, ids, training=True))
    assert np.all(np.isfinite(z))
    np.testing.assert_array_equal(z, 0.0)


@pytest.mark.parametrize("normalize", [True, False])
def test_embed_items_is_position_free_sum_of_tables(normalize):
    encoder = _encoder(normalize_embeddings=normalize)
    encoder(*_batch())
    candidates = np.array([4, 7], "int32")
    candidate_cats = np.array([2, 0], "int32")
    item_table = encoder.item_embedding.embeddings.numpy()
    cat_table = encoder.category_embedding.embeddings.numpy()
    expected = item_table[candidates] + cat_table[candidate_cats]
    if normalize:
        expected = _layer_norm(expected, encoder.embedding_norm)
    np.testing.assert_allclose(
        _np(encoder.embed_items(candidates, candidate_cats)), expected, rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("normalize", [True, False])
def test_zero_layers_is_embedding_plus_position(normalize):
    encoder = _encoder(num_layers=0, normalize_embeddings=normalize)
    ids, cats = _batch()
    z = _np(encoder(ids, cats))
    tokens = (
        encoder.item_embedding.embeddings.numpy()[ids]
        + encoder.category_embedding.embeddings.numpy()[cats]
        + encoder.position_embedding.numpy()[None, :6]
    )
    if normalize:
        tokens = _layer_norm(tokens, encoder.embedding_norm)
    np.testing.assert_allclose(z, tokens * (ids != 0)[..., None], rtol=1e-4, atol=1e-5)


def test_without_categories_needs_no_category_input():
    encoder = _encoder(num_categories=0)
    ids, _ = _batch()
    assert _np(encoder(ids)).shape == (3, 6, DIM)
    assert encoder.category_embedding is None


def test_missing_categories_and_too_long_sequences_fail_clearly():
    ids, _ = _batch()
    with pytest.raises(ValueError, match="`category_ids` is required"):
        _encoder()(ids)
    with pytest.raises(ValueError, match="max_seq_len"):
        _encoder(max_seq_len=4)(ids, ids)


def test_config_round_trip_gives_identical_outputs():
    encoder = _encoder(
        dropout=0.1, feedforward_dim=12, normalize_embeddings=False, name="source_encoder"
    )
    ids, cats = _batch()
    expected = _np(encoder(ids, cats))
    clone = SequenceEncoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()
    clone(ids, cats)
    clone.set_weights(encoder.get_weights())
    np.testing.assert_array_equal(_np(clone(ids, cats)), expected)


def test_save_and_reload(tmp_path):
    ids_in = keras.Input((6,), dtype="int32")
    cats_in = keras.Input((6,), dtype="int32")
    model = keras.Model([ids_in, cats_in], _encoder()(ids_in, cats_in))
    ids, cats = _batch()
    path = tmp_path / "encoder.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        restored.predict([ids, cats], verbose=0), model.predict([ids, cats], verbose=0)
    )


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"embedding_dim": 10, "num_heads": 3}, "embedding_dim"),
        ({"num_items": 1}, "num_items"),
        ({"num_heads": 0}, "num_heads"),
        ({"num_layers": -1}, "num_layers"),
        ({"num_categories": 1}, "num_categories"),
        ({"max_seq_len": 0}, "max_seq_len"),
        ({"dropout": -0.1}, "dropout"),
        ({"feedforward_dim": 0}, "feedforward_dim"),
    ],
)
def test_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        _encoder(**kwargs)
