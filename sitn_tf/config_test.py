"""The typed run config: one table of defaults, file loading, errors naming file and field."""

from __future__ import annotations

import json

import pytest

from sitn_tf import defaults
from sitn_tf.config import Config, ConfigError, RunConfig, TransformConfig, load_config
from sitn_tf.data.config import ConversionConfig
from sitn_tf.layers import SequenceEncoder
from sitn_tf.models import SITNConfig


def test_max_seq_len_defaults_agree_everywhere():
    values = {
        "transform": TransformConfig().max_seq_len,
        "model": SITNConfig().max_seq_len,
        "config.model": Config().model.max_seq_len,
        "encoder": SequenceEncoder(num_items=5, embedding_dim=4).max_seq_len,
        "converter": ConversionConfig(source="a", target="b").max_seq_len,
    }
    assert set(values.values()) == {defaults.DEFAULT_MAX_SEQ_LEN}, values


def test_yaml_and_json_load_into_the_same_config(tmp_path):
    mapping = {
        "transform": {"max_seq_len": 20},
        "model": {"embedding_dim": 16, "granularities": [4, 8]},
        "training": {"batch_size": 32, "jit_compile": False},
        "run": {"pretrain_steps": 9, "beam_args": ["--x=1"]},
    }
    (tmp_path / "c.json").write_text(json.dumps(mapping))
    (tmp_path / "c.yaml").write_text(
        "transform: {max_seq_len: 20}\n"
        "model: {embedding_dim: 16, granularities: [4, 8]}\n"
        "training: {batch_size: 32, jit_compile: false}\n"
        "run: {pretrain_steps: 9, beam_args: ['--x=1']}\n"
    )
    from_json = load_config(str(tmp_path / "c.json"))
    assert load_config(str(tmp_path / "c.yaml")) == from_json
    assert from_json.model.max_seq_len == 20  # follows the Transform
    assert from_json.model.granularities == (4, 8)
    assert from_json.run.beam_args == ("--x=1",)
    assert from_json.training.num_epochs == Config().training.num_epochs
    assert load_config(None) == Config()


def test_custom_config_round_trips_through_json():
    config = Config.from_dict({"run": {"pretrain": False}, "training": {"model": "din"}})
    custom = json.loads(json.dumps(config.custom_config()))
    assert set(custom) == {"transform", "model", "training", "run"}
    assert Config.from_custom_config(custom) == config
    assert Config.from_dict(config.to_dict()) == config


def test_only_the_retrieval_trainer_gets_the_retrieval_section():
    config = Config.from_dict({"retrieval": {"enabled": True, "masking": "cfm", "ssl_weight": 0.3}})
    # The rankers' custom_config (their cache keys, the experiments' records) is unchanged.
    assert config.custom_config() == Config().custom_config()
    custom = json.loads(json.dumps(config.retrieval_custom_config()))
    assert set(custom) == {"transform", "model", "training", "run", "retrieval"}
    assert Config.from_custom_config(custom) == config
    assert config.retrieval.hidden_units == (64,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("training: {batch_size: 0}", r"c.yaml: training.batch_size: `batch_size` must be an int"),
        (
            "training: {jit_compile: yes_please}",
            r"c.yaml: training.jit_compile: .*auto, true or false",
        ),
        ("model: {top_k: 0}", r"c.yaml: model.top_k: `top_k` must be an int >= 1"),
        ("run: {train_step: 5}", r"c.yaml: unknown field run.train_step"),
        ("runs: {}", r"c.yaml: unknown section\(s\) \['runs'\]"),
        ("model: {num_target_items: 9}", r"c.yaml: unknown field model.num_target_items"),
        ("transform: 3", r"c.yaml: `transform` must be a mapping"),
        (
            "transform: {max_seq_len: 20}\nmodel: {max_seq_len: 30}",
            r"c.yaml: model.max_seq_len=30 differs from transform.max_seq_len=20",
        ),
        (
            "model: {use_i2i: false, use_i2c: false}",
            r"c.yaml: model.use_i2i and model.use_i2c are both false but run.pretrain is true",
        ),
        (
            "model: {freeze_encoder_steps: 5}\nrun: {pretrain: false}",
            r"c.yaml: model.freeze_encoder_steps must be 0 when no stage 1 runs",
        ),
        ("retrieval: {history: source}", r"c.yaml: retrieval.history: `history` must be one of"),
        ("retrieval: {masking: xfm}", r"c.yaml: retrieval.masking: `masking` must be one of"),
        (
            "retrieval: {masking: rfm}",
            r"c.yaml: retrieval: `ssl_weight` must be > 0 with masking 'rfm'",
        ),
        ("retrieval: {head_share: 1.0}", r"c.yaml: retrieval.head_share: .*in \[0, 1\)"),
        ("retrieval: {hidden_units: [0]}", r"c.yaml: retrieval.hidden_units: `hidden_units`"),
        ("[1, 2]", r"c.yaml: the config must be a mapping, got list"),
        ("a: [", r"c.yaml: not valid YAML"),
    ],
)
def test_errors_name_the_file_and_the_field(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_config(str(path))


def test_no_stage_1_for_din_or_without_pretraining():
    assert Config().pretrains
    assert not Config.from_dict({"training": {"model": "din"}}).pretrains
    assert not Config.from_dict({"run": {"pretrain": False}}).pretrains
    # A ranker from scratch needs no contrastive terms.
    Config.from_dict({"run": {"pretrain": False}, "model": {"use_i2i": False, "use_i2c": False}})


def test_sections_validate_on_their_own():
    with pytest.raises(ValueError, match="`eval_steps`"):
        RunConfig(eval_steps=0)
    with pytest.raises(ValueError, match="`num_oov_buckets`"):
        TransformConfig(num_oov_buckets=0)
    with pytest.raises(ConfigError, match="model.num_source_items is set from the Transform"):
        Config(model=SITNConfig(num_source_items=5, num_target_items=5))
