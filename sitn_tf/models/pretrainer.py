"""Stage 1 of SITN: contrastive pretraining of the two sequence encoders."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import keras
import numpy as np
from keras import ops

from sitn_tf import ops as sitn_ops
from sitn_tf.cluster_health import (
    ClusterUsage,
    assignment_agreement,
    centroid_alignment,
    nearest_cross_domain_cosine_tensor,
    random_baseline,
)
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


def _usage_gap(assignment, weights):
    """`ln K - H(mean_i pi_i)` over the weighted rows: 0 when the batch uses every cluster evenly.

    Args:
        assignment: `(batch, K)` Eq. 5 assignments `pi`.
        weights: `(batch,)` row weights (0 for invalid pairs).
    """
    weights = ops.expand_dims(weights, 1)
    mean = ops.sum(assignment * weights, axis=0) / ops.maximum(ops.sum(weights), 1e-12)
    entropy = -ops.sum(mean * ops.log(ops.maximum(mean, 1e-12)))
    return math.log(assignment.shape[-1]) - entropy


def _mean_off_diagonal_cosine(instances, valid):
    """Mean cosine over pairs of distinct valid rows, and the number of such pairs."""
    unit = sitn_ops.l2_normalize(instances)
    weights = ops.cast(valid, unit.dtype)
    unit = unit * ops.expand_dims(weights, 1)
    total = ops.sum(ops.matmul(unit, ops.transpose(unit))) - ops.sum(ops.square(unit))
    count = ops.sum(weights)
    pairs = count * (count - 1.0)
    return total / ops.maximum(pairs, 1.0), ops.cast(pairs > 0, unit.dtype)


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
    switched on), `loss_usage` with `usage_entropy_weight > 0`, and the
    cluster health of each granularity (`sitn_tf.cluster_health`):
    `{domain}_k{K}_usage_entropy`, `_effective_clusters`, `_dead_clusters`,
    `k{K}_cross_cosine` (its random level is `random_cross_cosine[K]`) and
    `k{K}_logit_gap`, and `{domain}_instance_cosine` (instance collapse);
    `cluster_health(logs)` gathers them per K. Compile
    with just an optimizer:

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
                            assignment=cfg.cluster_assignment,
                            assignment_temperature=cfg.assignment_temperature,
                            sinkhorn_iterations=cfg.sinkhorn_iterations,
                            normalize_new_clusters=cfg.normalize_new_clusters,
                            stop_gradient_views=cfg.stop_gradient_views,
                            name=f"{domain}_clusters_k{k}",
                        )
                    )
        # One running mean per logged term, named like the term.
        names = ["loss_i2i"] if cfg.use_i2i else []
        if cfg.use_i2c:
            names += ["loss_i2c"] + [f"loss_i2c_k{k}" for k in cfg.granularities]
            if cfg.usage_entropy_weight > 0:
                names.append("loss_usage")
        self.loss_trackers = [keras.metrics.Mean(name=name) for name in names]
        # Cluster health (`sitn_tf.cluster_health`), per granularity: usage
        # of each domain's clusters, cross-domain cosine, Eq. 7's logit gap.
        self.usage_metrics = []
        # Instance collapse: the mean cosine between two users' instances of
        # a batch (near 1: every user is encoded alike and L_i2i is at chance).
        self.health_means = [
            keras.metrics.Mean(name=f"{domain}_instance_cosine") for domain in ("source", "target")
        ]
        self.random_cross_cosine: dict[int, float] = {}
        if cfg.use_i2c:
            for k in cfg.granularities:
                if k >= 2:
                    self.usage_metrics += [
                        ClusterUsage(k, name=f"{domain}_k{k}") for domain in ("source", "target")
                    ]
                self.health_means += [
                    keras.metrics.Mean(name=f"k{k}_cross_cosine"),
                    keras.metrics.Mean(name=f"k{k}_logit_gap"),
                ]
                # Where the clusters start (i.i.d. normal), hence the level
                # training must beat to have aligned the two domains.
                shape = (k, cfg.embedding_dim)
                self.random_cross_cosine[k] = random_baseline(shape, seed=k, n_draws=20).mean
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
            if not self.jit_compile:
                # The pooled instance is the same without the batch's common
                # padded tail (`sitn_ops.drop_padded_tail`); XLA needs static shapes.
                ids, categories = sitn_ops.drop_padded_tail(ids, categories)
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
            and `loss_usage` for the terms that are switched on.
        """
        return self._ssl_terms(outputs, sample_weight, training)[0]

    def _ssl_terms(self, outputs, sample_weight=None, training=None):
        """`(terms, health, valid)`: the loss terms, per K the raw numbers of the health metrics."""
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
        health = {}
        total = ops.zeros((), p_s.dtype)
        if cfg.use_i2i:
            tau, sim = cfg.temperature, cfg.similarity
            rows = sitn_ops.info_nce(p_s, p_t, tau, sim, mask=valid) + sitn_ops.info_nce(
                p_t, p_s, tau, sim, mask=valid
            )
            terms["loss_i2i"] = mean(rows)
            total = total + terms["loss_i2i"]
        if cfg.use_i2c:
            tau, sim = cfg.temperature, cfg.similarity
            i2c = ops.zeros((), p_s.dtype)
            usage = ops.zeros((), p_s.dtype)
            for k, source_layer, target_layer in zip(
                cfg.granularities,
                self.source_clusters,
                self.target_clusters,
                strict=True,
            ):
                u_s, q_s, pi_s = source_layer(
                    p_s, mask=valid, training=training, return_assignment=True
                )
                u_t, q_t, pi_t = target_layer(
                    p_t, mask=valid, training=training, return_assignment=True
                )
                extra = {"view_negatives": cfg.i2c_view_negatives, "mask": valid}
                rows = sitn_ops.instance_to_cluster_nce(
                    p_s, q_t, u_t, tau, sim, **extra
                ) + sitn_ops.instance_to_cluster_nce(p_t, q_s, u_s, tau, sim, **extra)
                terms[f"loss_i2c_k{k}"] = mean(rows)
                i2c = i2c + terms[f"loss_i2c_k{k}"]
                if cfg.usage_entropy_weight > 0:
                    usage = usage + _usage_gap(pi_s, weights) + _usage_gap(pi_t, weights)
                gap = 0.5 * (
                    sitn_ops.instance_to_cluster_gap(p_s, q_t, u_t, tau, sim)
                    + sitn_ops.instance_to_cluster_gap(p_t, q_s, u_s, tau, sim)
                )
                health[k] = {
                    "source_nearest": source_layer.nearest(ops.stop_gradient(p_s)),
                    "target_nearest": target_layer.nearest(ops.stop_gradient(p_t)),
                    "cross_cosine": nearest_cross_domain_cosine_tensor(
                        source_layer.clusters, target_layer.clusters
                    ),
                    "logit_gap": mean(ops.stop_gradient(gap)),
                }
            terms["loss_i2c"] = i2c
            total = total + i2c
            if cfg.usage_entropy_weight > 0:
                terms["loss_usage"] = cfg.usage_entropy_weight * usage
                total = total + terms["loss_usage"]

        terms["loss"] = total
        return terms, health, valid

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """`L_ssl` for `fit`/`evaluate`; `y` is ignored (self-supervised)."""
        if y_pred is None:
            y_pred = self(x, training=training)
        terms, health, valid = self._ssl_terms(y_pred, sample_weight, training)
        for tracker in self.loss_trackers:
            tracker.update_state(terms[tracker.name])
        self._update_health(y_pred, health, valid)
        loss = terms["loss"]
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    def _update_health(self, outputs, health, valid) -> None:
        usage = {metric.name: metric for metric in self.usage_metrics}
        means = {metric.name: metric for metric in self.health_means}
        for domain in ("source", "target"):
            cosine, pairs = _mean_off_diagonal_cosine(
                ops.stop_gradient(outputs[f"{domain}_instance"]), valid
            )
            means[f"{domain}_instance_cosine"].update_state(cosine, sample_weight=pairs)
        for k, numbers in health.items():
            for domain in ("source", "target"):
                if f"{domain}_k{k}" in usage:
                    usage[f"{domain}_k{k}"].update_state(numbers[f"{domain}_nearest"], valid)
            means[f"k{k}_cross_cosine"].update_state(numbers["cross_cosine"])
            # Batches without a valid pair carry no gap.
            means[f"k{k}_logit_gap"].update_state(
                numbers["logit_gap"], sample_weight=ops.cast(ops.any(valid), "float32")
            )

    def cluster_health(self, logs: Mapping[str, Any], prefix: str = "val_") -> dict[str, Any]:
        """Cluster health per granularity from one epoch's logs (JSON-safe).

        Args:
            logs: `{name: value}` as Keras logs them (e.g. the last entry of
                each history list).
            prefix: `"val_"` for the eval split's figures, `""` for training's.

        Returns:
            `{"instance_cosine": {domain: mean cosine between two users'
            instances}, "granularities": {str(K): {source_usage_entropy,
            source_effective_clusters, source_dead_clusters, target_...,
            cross_cosine, random_cross_cosine, cross_cosine_margin,
            logit_gap}}}`; no granularity without `L_i2c`.
        """
        granularities: dict[str, Any] = {}
        report: dict[str, Any] = {
            "instance_cosine": {
                domain: float(logs[f"{prefix}{domain}_instance_cosine"])
                for domain in ("source", "target")
                if f"{prefix}{domain}_instance_cosine" in logs
            },
            "granularities": granularities,
        }
        for k in self.random_cross_cosine:
            entry: dict[str, Any] = {}
            for domain in ("source", "target"):
                for what in ("usage_entropy", "effective_clusters", "dead_clusters"):
                    key = f"{prefix}{domain}_k{k}_{what}"
                    if key in logs:
                        entry[f"{domain}_{what}"] = float(logs[key])
            for what in ("cross_cosine", "logit_gap"):
                if f"{prefix}k{k}_{what}" in logs:
                    entry[what] = float(logs[f"{prefix}k{k}_{what}"])
            entry["random_cross_cosine"] = self.random_cross_cosine[k]
            if "cross_cosine" in entry:
                entry["cross_cosine_margin"] = entry["cross_cosine"] - entry["random_cross_cosine"]
            granularities[str(k)] = entry
        return report

    def pair_instances(self, batches: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
        """`(p^s, p^t)` of every pair with both histories non-empty: `(N, D)` each.

        Args:
            batches: an iterable of input dicts (e.g. a `tf.data` dataset of
                stage-1 pairs without labels).
        """
        source, target = [], []
        for inputs in batches:
            outputs = self(inputs, training=False)
            valid = np.asarray(outputs["source_valid"]) & np.asarray(outputs["target_valid"])
            source.append(np.asarray(outputs["source_instance"])[valid])
            target.append(np.asarray(outputs["target_instance"])[valid])
        if not source or not sum(len(s) for s in source):
            raise ValueError("no pair with both histories non-empty in `batches`")
        return np.concatenate(source), np.concatenate(target)

    def cluster_alignment(
        self, source_instances, target_instances, min_size: int = 5, seed: int = 0
    ) -> dict[str, dict[str, float]]:
        """Whether the two domains' interest clusters match, per granularity (JSON-safe).

        From the paired instances of one split (`pair_instances`), per K:

        * `centroid_cross_cosine` and its random level
          (`sitn_tf.cluster_health.centroid_alignment`): the interests the
          clusters stand for, compared across domains;
        * `target_agreement` / `target_agreement_chance`: how often a user's
          source instance has the same nearest target cluster as the user's
          target instance; `source_agreement` the same in the source
          clusters (`assignment_agreement`);
        * `{domain}_instance_to_cluster_cosine`: mean cosine of an instance
          to its nearest `c_k`, how close the trainable clusters lie to the
          instances they own.

        Returns:
            `{str(K): {...}}`; empty without `L_i2c`.
        """
        source = np.asarray(source_instances, dtype=np.float32)
        target = np.asarray(target_instances, dtype=np.float32)
        report: dict[str, dict[str, float]] = {}
        if not self.config.use_i2c:
            return report
        for k, source_layer, target_layer in zip(
            self.config.granularities, self.source_clusters, self.target_clusters, strict=True
        ):
            own_source = np.asarray(source_layer.nearest(source))
            own_target = np.asarray(target_layer.nearest(target))
            entry: dict[str, float] = dict(
                centroid_alignment(source, target, own_source, own_target, k, min_size, seed)
            )
            agree, chance = assignment_agreement(
                np.asarray(target_layer.nearest(source)), own_target, k
            )
            entry.update(target_agreement=agree, target_agreement_chance=chance)
            agree, chance = assignment_agreement(
                own_source, np.asarray(source_layer.nearest(target)), k
            )
            entry.update(source_agreement=agree, source_agreement_chance=chance)
            for domain, instances, layer in (
                ("source", source, source_layer),
                ("target", target, target_layer),
            ):
                cosine = np.asarray(sitn_ops.similarity_matrix(instances, layer.clusters, "cosine"))
                entry[f"{domain}_instance_to_cluster_cosine"] = float(cosine.max(axis=1).mean())
            report[str(k)] = entry
        return report

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
