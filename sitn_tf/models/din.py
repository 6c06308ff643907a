"""DIN (Zhou et al., KDD 2018): the single-domain baseline of the paper."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from sitn_tf import features
from sitn_tf import ops as sitn_ops
from sitn_tf.layers import MLP, SequenceEncoder, TargetAttention
from sitn_tf.models import _inputs
from sitn_tf.models.config import SITNConfig, as_config
from sitn_tf.models.ctr import CTRModel, candidate_statistics


@keras.saving.register_keras_serializable(package="sitn_tf")
class DIN(CTRModel):
    """Deep Interest Network on the target-domain history only.

    `y_hat = sigmoid(MLP(concat(u, v)))` with `u = TargetAttention(v, E)`,
    where `E` are the embedded target-history items (no self-attention, no
    positions, no layer norm: DIN's original design) and `v` the candidate embedding from
    the same tables. Target attention and head are the classes and sizes
    SITNRanker uses (`config.attention_units`, `config.mlp_units`), so the
    comparison isolates what the source domain and pretraining add. The
    source history and all stage-1 fields of the config are ignored. With
    `config.item_statistics` the head also reads the candidate's statistics,
    as in `SITNRanker`: `MLP(concat(u, v, s))`.

    Inputs: `ITEM_ID`, `TARGET_ITEM_IDS` (and `ITEM_CATEGORY`,
    `TARGET_CATEGORIES` when `config.num_categories > 0`), integer ids with
    0 = padding. Output: click probability of shape `(batch,)`.
    """

    def __init__(self, config: SITNConfig | Mapping[str, Any], **kwargs):
        kwargs.setdefault("name", "din")
        super().__init__(**kwargs)
        self.config = as_config(config)
        cfg = self.config
        # An encoder without blocks or positions is exactly DIN's embedding
        # layer: item table + category table, padding zeroed.
        self.embedding = SequenceEncoder(
            num_items=cfg.num_target_items,
            embedding_dim=cfg.embedding_dim,
            num_heads=1,
            num_layers=0,
            num_categories=cfg.num_categories,
            max_seq_len=cfg.max_seq_len,
            use_positions=False,
            normalize_embeddings=False,
            name="target_embedding",
        )
        self.attention = TargetAttention(
            cfg.attention_units, normalization=cfg.attention_normalization, name="target_attention"
        )
        self.statistics = candidate_statistics(cfg)
        self.head = MLP(
            (*cfg.mlp_units, 1), dropout=cfg.dropout, output_activation="sigmoid", name="head"
        )
        self.build()

    def build(self, input_shape=None):
        dim, seq = self.config.embedding_dim, self.config.max_seq_len
        self.embedding.build((None, seq))
        self.attention.build((None, dim), (None, seq, dim))
        width = 2 * dim
        if self.statistics is not None:
            self.statistics.build()
            width += self.statistics.compute_output_shape([(None,)])[-1]
        self.head.build((None, width))
        self.built = True

    def call(self, inputs, training=None):
        return self.score(inputs, training=training)

    def score(self, inputs, history_index=None, training=None):
        """Scores candidates, embedding each distinct target history once.

        As `SITNRanker.score`: without `history_index`, adjacent rows with
        the same target history share its embedding; with it, the history
        features are `(histories, seq_len)` and candidate `i` reads row
        `history_index[i]`. Returns `(batch,)` probabilities.
        """
        cfg = self.config
        with_categories = cfg.num_categories > 0
        candidate, candidate_category = _inputs.get_ids(
            inputs, _inputs.candidate_features(cfg), "DIN", None
        )
        ids, categories = _inputs.get_ids(
            inputs,
            (features.TARGET_ITEM_IDS, features.TARGET_CATEGORIES if with_categories else None),
            "DIN",
            cfg.max_seq_len,
        )
        if history_index is None:
            starts, history_index = sitn_ops.adjacent_runs([ids, categories])
            ids = ops.take(ids, starts, axis=0)
            if categories is not None:
                categories = ops.take(categories, starts, axis=0)
        history = self.embedding(ids, categories, training=training)  # (histories, L, D)
        v = self.embedding.embed_items(candidate, candidate_category)
        real = sitn_ops.padding_mask(ids)  # (histories, L)
        if not self.jit_compile:
            # As in `SITNRanker.score`: the tail that is padding in every
            # history has zero attention weights; a data-dependent length,
            # so not under XLA.
            length = sitn_ops.real_length(real)
            history, real = history[:, :length], real[:, :length]
        mask = ops.take(real, history_index, axis=0)  # (batch, L')
        u = self.attention(v, history, mask=mask, key_index=history_index)
        parts = [u, v]
        if self.statistics is not None:
            stats = _inputs.statistic_ids(inputs, candidate, "DIN")
            parts.append(self.statistics(stats, training=training))
        probability = self.head(ops.concatenate(parts, axis=-1), training=training)
        return ops.squeeze(probability, -1)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
