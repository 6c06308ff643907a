from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from sitn_tf import features
from sitn_tf import ops as sitn_ops
from sitn_tf.models._testing import random_batch, record_input_shapes, tiny_config
from sitn_tf.models.pretrainer import SITNPretrainer


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _losses(model, x, **kwargs):
    return {k: float(v) for k, v in model.compute_ssl_losses(model(x), **kwargs).items()}


def _drop_rows(x, rows):
    keep = np.setdiff1d(np.arange(len(x[features.SOURCE_ITEM_IDS])), rows)
    return {name: values[keep] for name, values in x.items()}


def test_instances_are_masked_means_of_the_encoders():
    config = tiny_config()
    model = SITNPretrainer(config)
    x, _ = random_batch(config)
    out = model(x)
    for domain, ids, cats in (
        ("source", features.SOURCE_ITEM_IDS, features.SOURCE_CATEGORIES),
        ("target", features.TARGET_ITEM_IDS, features.TARGET_CATEGORIES),
    ):
        encoder = getattr(model, f"{domain}_encoder")
        z = _np(encoder(x[ids], x[cats]))
        mask = x[ids] != 0
        expected = (z * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)
        np.testing.assert_allclose(_np(out[f"{domain}_instance"]), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(_np(out[f"{domain}_valid"]), mask.any(1))
    np.testing.assert_array_equal(_np(out["target_instance"])[1], 0.0)  # empty history


def test_the_batchs_padded_tail_is_not_encoded_and_changes_nothing():
    config = tiny_config(max_seq_len=10)
    model = SITNPretrainer(config)
    x = random_batch(config, batch=6, seed=4)[0]
    for name in (features.SOURCE_ITEM_IDS, features.SOURCE_CATEGORIES):
        x[name][:, 6:] = 0  # the source tail 6-9 is padding in every row
    length = int(np.asarray(sitn_ops.real_length(x[features.SOURCE_ITEM_IDS] != 0)))
    seen = record_input_shapes(model.source_encoder)
    model.jit_compile = False  # without XLA: the tail is dropped
    trimmed = model(x, training=False)
    model.jit_compile = True  # all L positions
    full = model(x, training=False)
    assert seen[0][1] == length <= 6 and seen[-1][1] == 10
    for key in ("source_instance", "target_instance"):
        np.testing.assert_allclose(
            np.asarray(trimmed[key]), np.asarray(full[key]), rtol=1e-5, atol=1e-6
        )


def test_total_loss_is_sum_of_equations():
    config = tiny_config(temperature=0.3, similarity="dot")
    model = SITNPretrainer(config)
    x, _ = random_batch(config, empty_target_rows=())
    out = model(x)
    terms = _losses(model, x)
    p_s, p_t = out["source_instance"], out["target_instance"]
    i2i = sitn_ops.info_nce(p_s, p_t, 0.3, "dot") + sitn_ops.info_nce(p_t, p_s, 0.3, "dot")
    np.testing.assert_allclose(terms["loss_i2i"], np.mean(_np(i2i)), rtol=1e-5)
    i2c_total = 0.0
    for k, source_layer, target_layer in zip(
        config.granularities,
        model.source_clusters,
        model.target_clusters,
        strict=True,
    ):
        u_s, q_s = source_layer(p_s)
        u_t, q_t = target_layer(p_t)
        rows = sitn_ops.instance_to_cluster_nce(p_s, q_t, u_t, 0.3, "dot")
        rows += sitn_ops.instance_to_cluster_nce(p_t, q_s, u_s, 0.3, "dot")
        np.testing.assert_allclose(terms[f"loss_i2c_k{k}"], np.mean(_np(rows)), rtol=1e-5)
        i2c_total += np.mean(_np(rows))
    np.testing.assert_allclose(terms["loss_i2c"], i2c_total, rtol=1e-5)
    np.testing.assert_allclose(terms["loss"], terms["loss_i2i"] + terms["loss_i2c"], rtol=1e-6)


def test_padding_and_empty_histories():
    config = tiny_config()
    model = SITNPretrainer(config)
    x, _ = random_batch(config, empty_target_rows=(1, 4))
    terms = _losses(model, x)
    assert all(np.isfinite(v) for v in terms.values())
    # A pair with an empty target history takes no part at all: same losses
    # as the batch without it.
    reduced = _losses(model, _drop_rows(x, [1, 4]))
    for name, value in terms.items():
        np.testing.assert_allclose(value, reduced[name], rtol=1e-5, atol=1e-6, err_msg=name)
    # Padding columns change nothing.
    padded = {
        name: np.pad(values, ((0, 0), (0, 2))) if values.ndim == 2 else values
        for name, values in x.items()
    }
    wider = SITNPretrainer(config.replace(max_seq_len=config.max_seq_len + 2))
    wider.set_weights(
        [
            np.pad(w, ((0, 2), (0, 0))) if "position_embedding" in v.path else w
            for v, w in zip(wider.weights, model.get_weights(), strict=True)
        ]
    )
    for name in ("source_instance", "target_instance"):
        np.testing.assert_allclose(
            _np(wider(padded)[name]), _np(model(x)[name]), rtol=1e-5, atol=1e-6
        )


def test_all_padding_target_batch_is_finite():
    config = tiny_config()
    model = SITNPretrainer(config)
    x, _ = random_batch(config, empty_target_rows=range(8))
    terms = _losses(model, x)
    assert terms == {name: 0.0 for name in terms}
    with tf.GradientTape() as tape:
        loss = model.compute_ssl_losses(model(x, training=True))["loss"]
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(np.all(np.isfinite(tf.convert_to_tensor(g))) for g in grads if g is not None)


def test_gradients_reach_clusters_encoders_and_multi_view_mlp():
    config = tiny_config()
    model = SITNPretrainer(config)
    x, _ = random_batch(config, batch=16, empty_target_rows=())
    with tf.GradientTape() as tape:
        loss = model.compute_ssl_losses(model(x, training=True))["loss"]
    grads = tape.gradient(loss, model.trainable_weights)
    without = [
        v.path
        for v, g in zip(model.trainable_weights, grads, strict=True)
        if g is None or not np.any(_np(tf.convert_to_tensor(g)))
    ]
    assert without == []
    paths = [v.path for v in model.trainable_weights]
    for expected in (
        "source_clusters_k3/clusters",
        "target_clusters_k5/clusters",
        "target_clusters_k3/multi_view/dense_0/kernel",
        "source_encoder/self_attention_0/value/kernel",
        "target_encoder/item_embedding/embeddings",
    ):
        assert any(p.endswith(expected) for p in paths), expected


def test_ablation_without_i2c_is_exactly_i2i():
    config = tiny_config(use_i2c=False)
    model = SITNPretrainer(config)
    x, _ = random_batch(config)
    terms = _losses(model, x)
    assert set(terms) == {"loss", "loss_i2i"}
    assert terms["loss"] == terms["loss_i2i"]
    assert model.source_clusters == [] and model.target_clusters == []
    assert not any("clusters" in v.path for v in model.weights)


def test_ablation_without_i2i_is_exactly_i2c():
    config = tiny_config(use_i2i=False)
    model = SITNPretrainer(config)
    terms = _losses(model, random_batch(config)[0])
    assert "loss_i2i" not in terms
    assert terms["loss"] == terms["loss_i2c"]


def test_ablation_top_1_builds_no_multi_view():
    config = tiny_config(top_k=1)
    model = SITNPretrainer(config)
    assert all(layer.multi_view is None for layer in model.source_clusters + model.target_clusters)
    assert not any("multi_view" in v.path for v in model.weights)
    out = model(random_batch(config)[0])
    # q is then the single nearest new cluster.
    u, q = model.target_clusters[0](out["target_instance"], mask=out["target_valid"])
    nearest = sitn_ops.top_k_clusters(out["target_instance"], u, 1, config.similarity)[:, 0]
    np.testing.assert_array_equal(_np(q), _np(nearest))


def test_ablation_single_granularity():
    config = tiny_config(granularities=(4,))
    model = SITNPretrainer(config)
    terms = _losses(model, random_batch(config)[0])
    assert [layer.num_clusters for layer in model.source_clusters] == [4]
    assert terms["loss_i2c"] == terms["loss_i2c_k4"]


def test_fit_logs_every_term_then_save_and_reload_is_identical(tmp_path):
    config = tiny_config()
    model = SITNPretrainer(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x, _ = random_batch(config, batch=16)
    history = model.fit(x, batch_size=8, epochs=1, verbose=0)
    health = {
        f"{part}_{what}"
        for k in (3, 5)
        for part in (f"source_k{k}", f"target_k{k}")
        for what in ("usage_entropy", "effective_clusters", "dead_clusters")
    } | {f"k{k}_{what}" for k in (3, 5) for what in ("cross_cosine", "logit_gap")}
    health |= {"source_instance_cosine", "target_instance_cosine"}
    losses = {"loss", "loss_i2i", "loss_i2c", "loss_i2c_k3", "loss_i2c_k5"}
    assert set(history.history) == losses | health
    logs = model.evaluate(x, batch_size=16, verbose=0, return_dict=True)
    assert set(logs) == set(history.history)
    terms = _losses(model, x)
    for name in losses:
        np.testing.assert_allclose(logs[name], terms[name], rtol=1e-5, err_msg=name)
    ones = _losses(model, x, sample_weight=np.ones(16, "float32"))
    np.testing.assert_allclose(ones["loss"], terms["loss"], rtol=1e-6)

    path = tmp_path / "pretrainer.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, SITNPretrainer) and restored.config == config
    for name, value in model(x).items():
        np.testing.assert_array_equal(_np(restored(x)[name]), _np(value))
    assert _losses(restored, x) == terms
    assert SITNPretrainer.from_config(model.get_config()).config == config


def _np_unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def test_cluster_health_logs_match_numpy():
    config = tiny_config(similarity="cosine")
    model = SITNPretrainer(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x, _ = random_batch(config, batch=16)
    logs = model.evaluate(x, batch_size=16, verbose=0, return_dict=True)
    out = {name: _np(value) for name, value in model(x).items()}
    valid = out["source_valid"] & out["target_valid"]
    assert 0 < valid.sum() < 16  # the fixture has empty histories
    for domain in ("source", "target"):
        unit = _np_unit(out[f"{domain}_instance"][valid])
        pairs = unit @ unit.T
        n = len(unit)
        expected = (pairs.sum() - np.trace(pairs)) / (n * (n - 1))
        np.testing.assert_allclose(logs[f"{domain}_instance_cosine"], expected, rtol=1e-4)
    tau = config.temperature
    for k, source, target in zip((3, 5), model.source_clusters, model.target_clusters, strict=True):
        c = {"source": _np(source.clusters), "target": _np(target.clusters)}
        for domain in ("source", "target"):
            p = _np_unit(out[f"{domain}_instance"][valid])
            counts = np.bincount((p @ _np_unit(c[domain]).T).argmax(1), minlength=k)
            share = counts[counts > 0] / counts.sum()
            entropy = -(share * np.log(share)).sum()
            np.testing.assert_allclose(
                logs[f"{domain}_k{k}_usage_entropy"], entropy / np.log(k), rtol=1e-5
            )
            np.testing.assert_allclose(
                logs[f"{domain}_k{k}_effective_clusters"], np.exp(entropy), rtol=1e-5
            )
            assert logs[f"{domain}_k{k}_dead_clusters"] == (counts == 0).sum()
        cos = _np_unit(c["source"]) @ _np_unit(c["target"]).T
        cross = np.concatenate([cos.max(1), cos.max(0)]).mean()
        np.testing.assert_allclose(logs[f"k{k}_cross_cosine"], cross, rtol=1e-5)
        # Eq. 7's gap, both directions, from the layers' own U and q.
        gaps = []
        for a, other in (("source", target), ("target", source)):
            b = "target" if a == "source" else "source"
            u, q = other(out[f"{b}_instance"], mask=valid)
            anchor = _np_unit(out[f"{a}_instance"])
            positive = (anchor * _np_unit(_np(q))).sum(1) / tau
            negative = (anchor @ _np_unit(_np(u)).T).max(1) / tau
            gaps.append(positive - negative)
        np.testing.assert_allclose(
            logs[f"k{k}_logit_gap"], (0.5 * (gaps[0] + gaps[1]))[valid].mean(), rtol=1e-4, atol=1e-5
        )
    report = model.cluster_health(logs, prefix="")
    assert report["instance_cosine"]["target"] == logs["target_instance_cosine"]
    report = report["granularities"]
    assert set(report) == {"3", "5"}
    assert report["5"]["cross_cosine_margin"] == pytest.approx(
        logs["k5_cross_cosine"] - model.random_cross_cosine[5]
    )


def test_cluster_alignment_matches_numpy_on_paired_instances():
    config = tiny_config(similarity="cosine")
    model = SITNPretrainer(config)
    x, _ = random_batch(config, batch=16)
    source, target = model.pair_instances([x])
    out = {name: _np(value) for name, value in model(x).items()}
    valid = out["source_valid"] & out["target_valid"]
    np.testing.assert_allclose(source, out["source_instance"][valid])
    report = model.cluster_alignment(source, target, min_size=1, seed=3)
    assert set(report) == {"3", "5"}
    for k, s_layer, t_layer in zip(
        (3, 5), model.source_clusters, model.target_clusters, strict=True
    ):
        cs, ct = _np_unit(_np(s_layer.clusters)), _np_unit(_np(t_layer.clusters))
        own_s = (_np_unit(source) @ cs.T).argmax(1)
        own_t = (_np_unit(target) @ ct.T).argmax(1)
        s_in_t = (_np_unit(source) @ ct.T).argmax(1)
        entry = report[str(k)]
        assert entry["target_agreement"] == pytest.approx(np.mean(s_in_t == own_t))
        share = np.bincount(s_in_t, minlength=k) / len(s_in_t)
        share_t = np.bincount(own_t, minlength=k) / len(own_t)
        assert entry["target_agreement_chance"] == pytest.approx(share @ share_t)
        means_s = np.stack([source[own_s == j].mean(0) for j in range(k) if (own_s == j).any()])
        means_t = np.stack([target[own_t == j].mean(0) for j in range(k) if (own_t == j).any()])
        cos = _np_unit(means_s) @ _np_unit(means_t).T
        expected = np.concatenate([cos.max(1), cos.max(0)]).mean()
        assert entry["centroid_cross_cosine"] == pytest.approx(expected, rel=1e-5)
        assert entry["source_instance_to_cluster_cosine"] == pytest.approx(
            (_np_unit(source) @ cs.T).max(1).mean(), rel=1e-5
        )
    without = SITNPretrainer(tiny_config(use_i2c=False))
    assert without.cluster_alignment(source, target) == {}
    with pytest.raises(ValueError, match="no pair"):
        model.pair_instances([])


def test_usage_regulariser_is_the_gap_to_uniform_use():
    config = tiny_config(usage_entropy_weight=0.5, granularities=(4,))
    model = SITNPretrainer(config)
    x, _ = random_batch(config, batch=16)
    out = model(x)
    terms = _losses(model, x)
    valid = _np(out["source_valid"]) & _np(out["target_valid"])
    total = 0.0
    for domain, layer in (
        ("source", model.source_clusters[0]),
        ("target", model.target_clusters[0]),
    ):
        pi = _np(layer.assign(out[f"{domain}_instance"]))[valid]
        mean = pi.mean(0)
        total += np.log(4) + (mean * np.log(mean)).sum()
    np.testing.assert_allclose(terms["loss_usage"], 0.5 * total, rtol=1e-5)
    np.testing.assert_allclose(
        terms["loss"], terms["loss_i2i"] + terms["loss_i2c"] + terms["loss_usage"], rtol=1e-6
    )


def test_sample_weights_weight_the_rows():
    config = tiny_config()
    model = SITNPretrainer(config)
    x, _ = random_batch(config, empty_target_rows=())
    weights = np.zeros(8, "float32")
    weights[[0, 3, 5]] = 1.0
    weighted = _losses(model, x, sample_weight=weights)
    # Zero-weight rows are still negatives, so compare against per-row terms.
    out = model(x)
    p_s, p_t = out["source_instance"], out["target_instance"]
    tau, sim = config.temperature, config.similarity
    rows = _np(sitn_ops.info_nce(p_s, p_t, tau, sim) + sitn_ops.info_nce(p_t, p_s, tau, sim))
    np.testing.assert_allclose(weighted["loss_i2i"], rows[[0, 3, 5]].mean(), rtol=1e-5)


def test_works_in_tf_function_with_dynamic_shapes():
    config = tiny_config()
    model = SITNPretrainer(config)
    spec = tf.TensorSpec((None, None), tf.int64)
    names = (
        features.SOURCE_ITEM_IDS,
        features.SOURCE_CATEGORIES,
        features.TARGET_ITEM_IDS,
        features.TARGET_CATEGORIES,
    )

    @tf.function(input_signature=[{name: spec for name in names}])
    def loss_fn(x):
        return model.compute_ssl_losses(model(x, training=False))["loss"]

    x, _ = random_batch(config)
    x = {name: x[name] for name in names}
    np.testing.assert_allclose(float(loss_fn(x)), _losses(model, x)["loss"], rtol=1e-5)


def test_bad_inputs_and_arguments():
    config = tiny_config()
    model = SITNPretrainer(config)
    x, _ = random_batch(config)
    with pytest.raises(KeyError, match=features.TARGET_CATEGORIES):
        model({k: v for k, v in x.items() if k != features.TARGET_CATEGORIES})
    with pytest.raises(TypeError, match=features.SOURCE_ITEM_IDS):
        model({**x, features.SOURCE_ITEM_IDS: x[features.SOURCE_ITEM_IDS].astype("float32")})
    with pytest.raises(ValueError, match=features.TARGET_ITEM_IDS):
        model({**x, features.TARGET_ITEM_IDS: np.ones((8, 9), "int64")})
    with pytest.raises(ValueError, match="`use_i2i` and `use_i2c`"):
        SITNPretrainer(config.replace(use_i2i=False, use_i2c=False))
    with pytest.raises(ValueError, match="`top_k`"):
        SITNPretrainer({**config.to_dict(), "top_k": 9})
