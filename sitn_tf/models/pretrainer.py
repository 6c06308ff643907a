"""Stage 1 of SITN: contrastive pretraining of the two sequence encoders."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from sitn_tf import ops as sitn_ops
from sitn_tf.layers import InterestClusters, MaskedMeanPooling, SequenceEncoder
from sitn_tf.models import _inputs
from sitn_tf.models.config import SITNConfig, as_config


def build_encoder(config: SITNConfig, domain: str) -> SequenceEncoder:
    """The encoder `f_s` (`domain="source"`) or `f_t` (`"target"`).

    Pretrainer and ranker both build encoders here, so that their variables
    line up one to one for `SITNRanker.load_pretrained`.
    """
    num_items = config.num_source_items if domain == "source" else config.num_target_items
    return SequenceEncoder(
        num_items=num_items,
        embedding_dim=config.embedding_dim,
        num_heads=config.num_heads,
        num_layers=config.num_layers,
        num_categories=config.num_categories,
        max_seq_len=config.max_seq_len,
        use_positions=config.use_positions,
        dropout=config.dropout,
        name=f"{domain}_encoder",
    )


@keras.saving.register_keras_serializable(package="sitn_tf")
class SITNPretrainer(keras.Model):
    """Stage 1: `L_ssl = L_i2i + L_i2c` over pairs of user histories.

    Each example is one user's (source history, target history) pair. The
    encoders `f_s`, `f_t` (Eq. 1, not shared) and the masked mean `g`
    (Eq. 2) give the instances `p^s_i`, `p^t_i`; then

    * `L_i2i = L^{s2t} + L^{t2s}` (Eqs. 3-4): InfoNCE across domains, the
      other users of the batch being the negatives;
    * for each granularity `K` (multi-granularity), per domain an
      `InterestClusters` layer gives new clusters `U` (Eq. 5) and multi-view
      clusters `q_i` (Eq. 6), and
      `e_i2c = e^{s2t} + e^{t2s}` (Eq. 7) contrasts `p^s_i` with `q^t_i`
      against all of `U^t`, and `p^t_i` with `q^s_i` against `U^s`;
      `L_i2c = sum_K e_i2c^K`.

    Each term is averaged over the valid pairs of the batch (optionally
    weighted by `sample_weight`). A pair is valid when both histories have
    at least one item; invalid pairs (e.g. a user without target history)
    take no part at all: no loss, no negatives for others, no share in the
    new clusters. All-padding histories thus give finite losses, and a batch
    without any valid pair gives 0. Rows are otherwise taken as given: feed
    each user at most once per batch (deduplicate upstream), because a
    repeated user is a false negative for itself in `L_i2i`.

    Inputs: a dict keyed by `sitn_tf.features` names with integer ids,
    0 = padding: `SOURCE_ITEM_IDS`, `TARGET_ITEM_IDS` of shape
    `(batch, seq_len)` and, when `config.num_categories > 0`,
    `SOURCE_CATEGORIES`, `TARGET_CATEGORIES` of the same shapes. Other keys
    (labels, candidates) are ignored.

    `call` returns a dict: `source_instance`, `target_instance` (`(batch, D)`)
    and `source_valid`, `target_valid` (`(batch,)` bool). `compute_loss`
    (used by `fit`/`evaluate`) returns `L_ssl` and logs `loss_i2i`,
    `loss_i2c` and `loss_i2c_k{K}` per granularity (only the terms that are
    switched on). Compile with just an optimizer:

        model = SITNPretrainer(config)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model.fit(dataset_of_feature_dicts, epochs=...)
    """

    def __init__(self, config: SITNConfig | Mapping[str, Any], **kwargs):
        kwargs.setdefault("name", "sitn_pretrainer")
        super().__init__(**kwargs)
        self.config = as_config(config)
        if not (self.config.use_i2i or self.config.use_i2c):
            raise ValueError(
                "`use_i2i` and `use_i2c` are both False: stage 1 would have no loss "
                "(to train the ranker from scratch, skip stage 1: `run.pretrain: false`)."
            )
        cfg = self.config
        self.source_encoder = build_encoder(cfg, "source")
        self.target_encoder = build_encoder(cfg, "target")
        self.pooling = MaskedMeanPooling(name="pooling")
        self.source_clusters = []
        self.target_clusters = []
        if cfg.use_i2c:
            for k in cfg.granularities:
                for domain, layers in (
                    ("source", self.source_clusters),
                    ("target", self.target_clusters),
                ):
                    layers.append(
                        InterestClusters(
                            k,
                            top_k=cfg.top_k,
                            similarity=cfg.similarity,
                            multi_view_units=cfg.multi_view_units,
                            name=f"{domain}_clusters_k{k}",
                        )
                    )
        # One running mean per logged term, named like the term.
        names = ["loss_i2i"] if cfg.use_i2i else []
        if cfg.use_i2c:
            names += ["loss_i2c"] + [f"loss_i2c_k{k}" for k in cfg.granularities]
        self.loss_trackers = [keras.metrics.Mean(name=name) for name in names]
        # Every variable's shape follows from the config, so build now: the
        # model is complete right after construction (weight copying and
        # `.keras` loading need no dummy batch).
        self.build()

    def build(self, input_shape=None):
        sequence_shape = (None, self.config.max_seq_len)
        instance_shape = (None, self.config.embedding_dim)
        self.source_encoder.build(sequence_shape)
        self.target_encoder.build(sequence_shape)
        for layer in self.source_clusters + self.target_clusters:
            layer.build(instance_shape)
        self.built = True

    def call(self, inputs, training=None):
        outputs = {}
        for domain, (ids_name, categories_name) in _inputs.sequence_features(self.config).items():
            ids, categories = _inputs.get_ids(
                inputs, (ids_name, categories_name), "SITNPretrainer", self.config.max_seq_len
            )
            encoder = self.source_encoder if domain == "source" else self.target_encoder
            mask = sitn_ops.padding_mask(ids)
            sequence = encoder(ids, categories, training=training)
            outputs[f"{domain}_instance"] = self.pooling(sequence, mask=mask)
            outputs[f"{domain}_valid"] = ops.any(mask, axis=1)
        return outputs

    def compute_ssl_losses(self, outputs, sample_weight=None, training=None) -> dict[str, Any]:
        """Every loss term of stage 1 as a scalar, keyed like the logs.

        Args:
            outputs: the dict returned by `call`.
            sample_weight: optional `(batch,)` weights of the pairs.

        Returns:
            `{"loss": L_ssl}` plus `loss_i2i`, `loss_i2c`, `loss_i2c_k{K}`
            for the terms that are switched on.
        """
        cfg = self.config
        p_s, p_t = outputs["source_instance"], outputs["target_instance"]
        valid = ops.logical_and(outputs["source_valid"], outputs["target_valid"])
        weights = ops.cast(valid, p_s.dtype)
        if sample_weight is not None:
            weights = weights * ops.reshape(ops.cast(sample_weight, p_s.dtype), (-1,))

        def mean(rows):
            total = ops.sum(weights)
            return ops.where(total > 0, ops.sum(rows * weights) / ops.maximum(total, 1e-12), 0.0)

        terms = {}
        total = ops.zeros((), p_s.dtype)
        if cfg.use_i2i:
            tau, sim = cfg.temperature, cfg.similarity
            rows = sitn_ops.info_nce(p_s, p_t, tau, sim, mask=valid) + sitn_ops.info_nce(
                p_t, p_s, tau, sim, mask=valid
            )
            terms["loss_i2i"] = mean(rows)
            total = total + terms["loss_i2i"]
        if cfg.use_i2c:
            i2c = ops.zeros((), p_s.dtype)
            for k, source_layer, target_layer in zip(
                cfg.granularities,
                self.source_clusters,
                self.target_clusters,
                strict=True,
            ):
                u_s, q_s = source_layer(p_s, mask=valid, training=training)
                u_t, q_t = target_layer(p_t, mask=valid, training=training)
                rows = sitn_ops.instance_to_cluster_nce(
                    p_s, q_t, u_t, cfg.temperature, cfg.similarity
                ) + sitn_ops.instance_to_cluster_nce(p_t, q_s, u_s, cfg.temperature, cfg.similarity)
                terms[f"loss_i2c_k{k}"] = mean(rows)
                i2c = i2c + terms[f"loss_i2c_k{k}"]
            terms["loss_i2c"] = i2c
            total = total + i2c
        terms["loss"] = total
        return terms

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """`L_ssl` for `fit`/`evaluate`; `y` is ignored (self-supervised)."""
        if y_pred is None:
            y_pred = self(x, training=training)
        terms = self.compute_ssl_losses(y_pred, sample_weight=sample_weight, training=training)
        for tracker in self.loss_trackers:
            tracker.update_state(terms[tracker.name])
        loss = terms["loss"]
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
