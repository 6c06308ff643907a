from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from sitn_tf import features
from sitn_tf.models._testing import random_batch, statistics_embedding, tiny_config
from sitn_tf.models.din import DIN
from sitn_tf.models.pretrainer import SITNPretrainer
from sitn_tf.models.ranker import SITNRanker

ENCODERS = ("source_encoder", "target_encoder")


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _values(model):
    return {v.path.split("/", 1)[1]: v.numpy().copy() for v in model.weights}


def test_output_is_probability_per_example():
    config = tiny_config()
    model = SITNRanker(config)
    x, _ = random_batch(config, empty_target_rows=(1, 2))
    y = _np(model(x))
    assert y.shape == (8,)
    assert np.all((y > 0) & (y < 1))
    column = {
        **x,
        features.ITEM_ID: x[features.ITEM_ID][:, None],
        features.ITEM_CATEGORY: x[features.ITEM_CATEGORY][:, None],
    }
    np.testing.assert_array_equal(_np(model(column)), y)


def test_forward_is_eq_8_over_shared_candidate_embedding():
    config = tiny_config()
    model = SITNRanker(config)
    x, _ = random_batch(config)
    z_s = model.source_encoder(x[features.SOURCE_ITEM_IDS], x[features.SOURCE_CATEGORIES])
    z_t = model.target_encoder(x[features.TARGET_ITEM_IDS], x[features.TARGET_CATEGORIES])
    # v comes from the target encoder's own tables: no separate candidate table.
    v = model.target_encoder.embed_items(x[features.ITEM_ID], x[features.ITEM_CATEGORY])
    assert not any(
        "candidate" in w.path and "candidate_statistics" not in w.path for w in model.weights
    )
    u_s = model.source_attention(v, z_s, mask=x[features.SOURCE_ITEM_IDS] != 0)
    u_t = model.target_attention(v, z_t, mask=x[features.TARGET_ITEM_IDS] != 0)
    s = statistics_embedding(model, x)
    expected = model.head(keras.ops.concatenate([u_s, u_t, v, s], axis=-1))[:, 0]
    np.testing.assert_allclose(_np(model(x)), _np(expected), rtol=1e-6)
    # An empty target history means u_f^t = 0.
    np.testing.assert_array_equal(_np(u_t)[1], 0.0)


def test_statistics_switch_keeps_the_papers_head():
    off = SITNRanker(tiny_config(item_statistics=False))
    assert off.statistics is None
    assert off.head.dense_layers[0].kernel.shape[0] == 3 * 8  # Eq. 8: concat(u_s, u_t, v)
    on = SITNRanker(tiny_config())
    assert on.head.dense_layers[0].kernel.shape[0] == 3 * 8 + 2 * on.config.statistics_dim


def test_empty_histories_are_finite_in_training():
    config = tiny_config(dropout=0.2)
    model = SITNRanker(config)
    x, y = random_batch(config, empty_target_rows=range(8))
    x[features.SOURCE_ITEM_IDS][:] = 0
    with tf.GradientTape() as tape:
        loss = keras.losses.binary_crossentropy(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    assert np.isfinite(float(loss))
    assert all(np.all(np.isfinite(_np(tf.convert_to_tensor(g)))) for g in grads if g is not None)


def test_load_pretrained_restores_exactly_the_encoders(tmp_path):
    config = tiny_config()
    pretrainer = SITNPretrainer(config)
    rng = np.random.default_rng(0)
    for variable in pretrainer.weights:  # every value differs from any init
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
    ranker = SITNRanker(config)
    before = _values(ranker)
    restored = ranker.load_pretrained(pretrainer)

    encoder_paths = [v.path for name in ENCODERS for v in getattr(ranker, name).weights]
    assert restored == encoder_paths
    assert any(p.endswith("target_encoder/item_embedding/embeddings") for p in restored)
    source = {v.path.split("/", 1)[1]: v.numpy() for v in pretrainer.weights}
    after = _values(ranker)
    for path, value in after.items():
        if path.startswith(ENCODERS):
            np.testing.assert_array_equal(value, source[path], err_msg=path)
            assert not np.array_equal(value, before[path]), path
        else:
            np.testing.assert_array_equal(value, before[path], err_msg=path)

    # From a .keras file, and from a directory holding exactly one.
    path = tmp_path / "stage1" / "pretrainer.keras"
    path.parent.mkdir()
    pretrainer.save(path)
    for where in (path, str(path.parent)):
        fresh = SITNRanker(config)
        assert fresh.load_pretrained(where) == encoder_paths
        for path_, value in _values(fresh).items():
            if path_.startswith(ENCODERS):
                np.testing.assert_array_equal(value, after[path_], err_msg=path_)


def test_load_pretrained_errors(tmp_path):
    config = tiny_config()
    pretrainer = SITNPretrainer(config)
    with pytest.raises(ValueError, match="embedding_dim"):
        SITNRanker(config.replace(embedding_dim=16)).load_pretrained(pretrainer)
    with pytest.raises(ValueError, match="found 0"):
        SITNRanker(config).load_pretrained(tmp_path)
    pretrainer.save(tmp_path / "a.keras")
    pretrainer.save(tmp_path / "b.keras")
    with pytest.raises(ValueError, match="found 2"):
        SITNRanker(config).load_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError):
        SITNRanker(config).load_pretrained(tmp_path / "missing.keras")
    DIN(config).save(tmp_path / "din.keras")
    with pytest.raises(TypeError, match="not a SITNPretrainer"):
        SITNRanker(config).load_pretrained(tmp_path / "din.keras")


def test_freeze_encoders_for_n_steps():
    config = tiny_config(freeze_encoder_steps=3)
    model = SITNRanker(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    x, y = random_batch(config, batch=8)
    start = _values(model)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0)  # steps 0, 1, 2: frozen
    frozen = _values(model)
    for path, value in frozen.items():
        if path.startswith(ENCODERS):
            np.testing.assert_array_equal(value, start[path], err_msg=path)
    assert not np.array_equal(frozen["head/dense_0/kernel"], start["head/dense_0/kernel"])
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # step 3: trains
    thawed = _values(model)
    key = "target_encoder/item_embedding/embeddings"
    assert not np.array_equal(thawed[key], frozen[key])


@pytest.mark.parametrize("label_shape", ["(batch,)", "(batch, 1)"])
def test_compiles_with_bce_and_auc(label_shape):
    config = tiny_config()
    model = SITNRanker(config)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.AUC(name="auc")],
    )
    x, y = random_batch(config, batch=16)
    labels = y if label_shape == "(batch,)" else y[:, None]
    logs = model.evaluate(x, labels, batch_size=16, verbose=0, return_dict=True)
    p = np.clip(_np(model(x)), 1e-7, 1 - 1e-7)
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-4)
    # Keras approximates AUC on 200 thresholds.
    np.testing.assert_allclose(logs["auc"], roc_auc_score(y, p), atol=0.02)
    if label_shape == "(batch, 1)":  # the pipeline's shape; one fit is enough
        history = model.fit(x, labels, batch_size=16, epochs=3, verbose=0)
        assert history.history["loss"][2] < history.history["loss"][0]


def _serving_signature():
    # Named specs: the flat serving signature then takes feature names as keys.
    spec = {
        name: tf.TensorSpec((None,), tf.int64, name=name)
        for name in (features.ITEM_ID, features.ITEM_CATEGORY, *features.MODEL_STAT_FEATURES)
    }
    for name in features.SEQUENCE_FEATURES:
        spec[name] = tf.TensorSpec((None, None), tf.int64, name=name)
    return spec


@pytest.mark.parametrize("model_class", [SITNRanker, DIN])
def test_export_with_tf_saved_model(tmp_path, model_class):
    config = tiny_config()
    model = model_class(config)
    x, _ = random_batch(config)

    class Exporter(tf.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[_serving_signature()])
        def serve(self, inputs):
            return {"probability": self.model(inputs, training=False)}

    exporter = Exporter(model)
    tf.saved_model.save(exporter, str(tmp_path), signatures={"serving_default": exporter.serve})
    loaded = tf.saved_model.load(str(tmp_path))
    served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in x.items()})
    np.testing.assert_allclose(served["probability"].numpy(), _np(model(x)), rtol=1e-6)


@pytest.mark.parametrize("model_class", [SITNRanker, DIN])
def test_keras_save_and_reload_gives_identical_outputs(tmp_path, model_class):
    config = tiny_config(freeze_encoder_steps=1)
    model = model_class(config)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=[keras.metrics.AUC()])
    x, y = random_batch(config, batch=16)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is model_class and restored.config == config
    np.testing.assert_array_equal(_np(restored(x)), _np(model(x)))
    assert model_class.from_config(model.get_config()).config == config


def test_bad_inputs():
    config = tiny_config()
    model = SITNRanker(config)
    x, _ = random_batch(config)
    with pytest.raises(KeyError, match=features.ITEM_ID):
        model({k: v for k, v in x.items() if k != features.ITEM_ID})
    with pytest.raises(ValueError, match=features.ITEM_ID):
        model({**x, features.ITEM_ID: np.ones((8, 2), "int64")})
    with pytest.raises(TypeError, match=features.ITEM_CATEGORY):
        model({**x, features.ITEM_CATEGORY: np.array(["a"] * 8)})
    with pytest.raises(ValueError, match="`top_k`"):
        SITNRanker(config.to_dict() | {"top_k": 7})
