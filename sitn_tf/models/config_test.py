from __future__ import annotations

import json

import pytest

from sitn_tf.models.config import SITNConfig, as_config


def _config(**changes):
    values = dict(num_source_items=100, num_target_items=80)
    values.update(changes)
    return SITNConfig(**values)


def test_defaults_are_valid_and_documented_choices():
    config = _config()
    assert config.similarity == "cosine"
    assert config.attention_normalization == "softmax"
    assert config.use_i2i and config.use_i2c
    assert config.top_k <= min(config.granularities)


def test_dict_round_trip_is_json_safe():
    config = _config(granularities=[8, 16], mlp_units=[4], num_categories=7, temperature=0.2)
    assert config.granularities == (8, 16) and config.mlp_units == (4,)
    as_json = json.dumps(config.to_dict())
    restored = SITNConfig.from_dict(json.loads(as_json))
    assert restored == config
    assert as_config(config.to_dict()) == config
    assert as_config(config) is config


def test_from_dict_rejects_unknown_fields():
    values = _config().to_dict()
    values["num_clusters"] = 3
    with pytest.raises(ValueError, match="num_clusters"):
        SITNConfig.from_dict(values)


def test_replace_validates_again():
    config = _config(granularities=(4, 8), top_k=2)
    assert config.replace(top_k=4).top_k == 4
    with pytest.raises(ValueError, match="`top_k`"):
        config.replace(top_k=5)


@pytest.mark.parametrize(
    "changes,argument",
    [
        ({"granularities": (4, 8), "top_k": 5}, "top_k"),
        ({"top_k": 0}, "top_k"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -0.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"granularities": ()}, "granularities"),
        ({"granularities": (8, 0)}, "granularities"),
        ({"granularities": (8, -4)}, "granularities"),
        ({"granularities": (8, 8)}, "granularities"),
        ({"granularities": 8}, "granularities"),
        ({"embedding_dim": 30, "num_heads": 4}, "embedding_dim"),
        ({"similarity": "euclidean"}, "similarity"),
        ({"attention_normalization": "sum"}, "attention_normalization"),
        ({"num_source_items": 1}, "num_source_items"),
        ({"num_target_items": 0}, "num_target_items"),
        ({"num_categories": 1}, "num_categories"),
        ({"dropout": 1.0}, "dropout"),
        ({"max_seq_len": 0}, "max_seq_len"),
        ({"mlp_units": (16, 0)}, "mlp_units"),
        ({"attention_units": ()}, "attention_units"),
        ({"freeze_encoder_steps": -1}, "freeze_encoder_steps"),
        ({"use_i2c": 1}, "use_i2c"),
        ({"cluster_assignment": "kmeans"}, "cluster_assignment"),
        ({"assignment_temperature": 0.0}, "assignment_temperature"),
        ({"sinkhorn_iterations": 0}, "sinkhorn_iterations"),
        ({"usage_entropy_weight": -1.0}, "usage_entropy_weight"),
        ({"normalize_new_clusters": "yes"}, "normalize_new_clusters"),
        ({"stop_gradient_views": 0}, "stop_gradient_views"),
    ],
)
def test_bad_arguments_name_the_field(changes, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        _config(**changes)


def test_a_ranker_config_needs_no_ssl_terms():
    config = _config(use_i2i=False, use_i2c=False)
    assert not (config.use_i2i or config.use_i2c)


def test_vocabulary_sizes_may_wait_for_the_transform_but_a_model_needs_them():
    unsized = SITNConfig(embedding_dim=8, num_heads=2)
    assert not unsized.sized
    with pytest.raises(ValueError, match="`num_source_items` is not set"):
        as_config(unsized)
    sized = unsized.with_vocab_sizes(num_source_items=5, num_target_items=7, num_categories=0)
    assert sized.sized and as_config(sized) is sized
    with pytest.raises(ValueError, match="`num_target_items`"):
        unsized.with_vocab_sizes(num_source_items=5, num_target_items=1, num_categories=0)


def test_as_config_rejects_other_types():
    with pytest.raises(TypeError, match="`config`"):
        as_config([("num_source_items", 3)])
