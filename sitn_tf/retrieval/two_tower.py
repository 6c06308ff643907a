"""Two-tower retrieval with self-supervised item towers.

Yao et al., "Self-supervised Learning for Large-scale Item Recommendations",
CIKM 2021.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import numpy as np
from keras import ops

from sitn_tf.checks import (
    check_candidates,
    check_int,
    check_non_negative,
    check_positive,
    check_rate,
    check_units,
)
from sitn_tf.retrieval import two_tower_losses as tl
from sitn_tf.retrieval.feature_dropout import FeatureDropout
from sitn_tf.retrieval.feature_masking import MODES, FeatureMasking
from sitn_tf.retrieval.item_features import SINGLE_VALUED, ItemFeatures

HISTORY = "history"
TARGET = "target"


def _masked_mean(embeddings, ids):
    """Mean of `(batch, n, d)` over the positions whose id is not 0 (zeros if none)."""
    mask = ops.cast(ops.not_equal(ids, 0), embeddings.dtype)[:, :, None]
    return ops.sum(embeddings * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)


def _l2_normalize(x):
    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))


def _mlp(units: Sequence[int], output_dim: int, name: str) -> keras.Sequential:
    layers = [keras.layers.Dense(u, activation="relu") for u in units]
    return keras.Sequential([*layers, keras.layers.Dense(output_dim)], name=name)


@keras.saving.register_keras_serializable(package="sitn_tf")
class TwoTowerRetriever(keras.Model):
    """Query tower x item tower, in-batch softmax, optional SSL on the item tower.

    * Query tower: the history's items (target or source domain) through an
      id embedding, masked mean pooling, an MLP and L2 normalisation:
      `(batch, n) -> (batch, D)`.
    * Item tower: the item's `F` features (`features`: the id, and those of
      `category`, `brand`, `price_bucket`, `tags` with a vocabulary) each
      embedded to `feature_dim` (tags: mean over the item's tags), giving
      `(batch, F, feature_dim)`, flattened, an MLP and L2 normalisation:
      `(batch,) ids -> (batch, D)`. The features of every candidate are
      held in non-trainable tables (saved with the weights).
    * Main loss `loss_retrieval` (`L_main`): in-batch softmax over the batch's
      targets, `s(q, x) / temperature - log p(x)`, accidental hits masked
      (`two_tower_losses.in_batch_softmax_loss`). `p(x)` is `item_log_q`,
      training-target frequencies (`two_tower_losses.item_log_probabilities`).
    * `masking="rfm"` or `"cfm"` adds `ssl_weight * loss_ssl` (the multi-task loss,
      `L = L_main + alpha L_self`): `ssl_batch_size` distinct candidates
      drawn uniformly from the item table (not from the click stream, so
      tail items get as much SSL signal as head items), two complementary
      masked views (`FeatureMasking`, then tag dropout at `view_dropout`),
      both through the same item tower, `two_tower_losses.contrastive_loss`
      at `ssl_temperature`.
    * `feature_dropout > 0` (the paper's "FD" baseline): in the main task,
      each item feature is replaced by its learned default with that
      probability, and each tag dropped with it; no SSL.
    * `spread_out_weight > 0` (the "SO" baseline) adds that times
      `loss_spread_out`, the global orthogonal regulariser on the batch's
      item embeddings.

    Args:
        num_items: rows of the history embedding, padding id 0 included
            (source-domain ids `>= num_candidates` may appear in histories).
        num_candidates: ids `1..num_candidates-1` are the corpus; defaults to
            `num_items`.
        embedding_dim: `D`, the output of both towers.
        feature_dim: width of each item feature's embedding.
        hidden_units: hidden layers of each tower's MLP.
        feature_vocab: per attribute, its number of values including 0
            (unknown); attributes with 1 value (or missing) are not used.
        max_tags: width of the tag table.
        temperature: `tau` of the main softmax.
        masking: `None`, `"rfm"` or `"cfm"`.
        feature_groups: `(F, F)` CFM groups (`mutual_information.correlated_groups`
            over `features`), kept in the config with the model.
        mutual_information: optional `(F, F)` matrix the groups came from,
            kept in the config for the record.
        ssl_weight: `alpha >= 0`.
        ssl_temperature: `tau` of `L_self`.
        ssl_batch_size: items per SSL batch (capped at the corpus size).
        view_dropout: tag dropout rate in each SSL view.
        feature_dropout: the FD baseline's rate in the main task.
        spread_out_weight: weight of the SO regulariser.
        seed: seed of the model's random draws.
        item_features: the candidates' `ItemFeatures` (constructor only; the
            tables are weights, so a reloaded model has them).
        item_log_q: `(num_candidates,)` `log p(x)` (constructor only, a weight
            too); zeros (no correction) when not given.

    Inputs: `{"history": (batch, n) int, "target": (batch,) int}`.
    `call` returns `{"query": (batch, D)}`; `query_scores(history)` returns
    `(batch, num_candidates)` cosine scores (logQ is a training correction,
    not applied when serving).
    """

    def __init__(
        self,
        num_items: int,
        num_candidates: int | None = None,
        embedding_dim: int = 32,
        feature_dim: int = 16,
        hidden_units: Sequence[int] = (64,),
        feature_vocab: Mapping[str, int] | None = None,
        max_tags: int = 1,
        temperature: float = 0.1,
        masking: str | None = None,
        feature_groups: list[list[bool]] | None = None,
        mutual_information: list[list[float]] | None = None,
        ssl_weight: float = 0.0,
        ssl_temperature: float = 0.1,
        ssl_batch_size: int = 256,
        view_dropout: float = 0.0,
        feature_dropout: float = 0.0,
        spread_out_weight: float = 0.0,
        seed: int = 0,
        item_features: ItemFeatures | None = None,
        item_log_q: np.ndarray | None = None,
        **kwargs,
    ):
        kwargs.setdefault("name", "two_tower")
        super().__init__(**kwargs)
        num_candidates = check_candidates(num_items, num_candidates)
        check_int("embedding_dim", embedding_dim, minimum=1)
        check_int("feature_dim", feature_dim, minimum=1)
        hidden_units = check_units("hidden_units", hidden_units)
        check_int("max_tags", max_tags, minimum=1)
        check_positive("temperature", temperature)
        check_positive("ssl_temperature", ssl_temperature)
        check_non_negative("ssl_weight", ssl_weight)
        check_non_negative("spread_out_weight", spread_out_weight)
        check_int("ssl_batch_size", ssl_batch_size, minimum=2)
        check_rate("view_dropout", view_dropout)
        check_rate("feature_dropout", feature_dropout)
        if masking is not None and masking not in MODES:
            raise ValueError(f"`masking` must be None or one of {MODES}, got {masking!r}.")
        vocab = {k: int(v) for k, v in (feature_vocab or {}).items()}
        unknown = sorted(set(vocab) - set(SINGLE_VALUED) - {"tags"})
        if unknown:
            raise ValueError(f"`feature_vocab` has unknown attributes {unknown}.")
        self.features = ["id"] + [n for n in (*SINGLE_VALUED, "tags") if vocab.get(n, 1) > 1]
        if masking is not None and len(self.features) < 2:
            raise ValueError(
                f"`masking` {masking!r} needs at least 2 item features, got {self.features} "
                "(give `feature_vocab`)."
            )
        if masking == "cfm" and feature_groups is None:
            raise ValueError("`feature_groups` must be given for masking 'cfm'.")
        if item_features is not None and item_features.num_candidates != num_candidates:
            raise ValueError(
                f"`item_features` must describe {num_candidates} candidate ids, "
                f"got {item_features.num_candidates}."
            )
        self.num_items = num_items
        self.num_candidates = num_candidates
        self.embedding_dim = embedding_dim
        self.feature_dim = feature_dim
        self.hidden_units = hidden_units
        self.feature_vocab = vocab
        self.max_tags = max_tags
        self.temperature = float(temperature)
        self.masking = masking
        self.feature_groups = (
            None if feature_groups is None else np.asarray(feature_groups, bool).tolist()
        )
        self.mutual_information = (
            None if mutual_information is None else np.asarray(mutual_information).tolist()
        )
        self.ssl_weight = float(ssl_weight)
        self.ssl_temperature = float(ssl_temperature)
        self.ssl_batch_size = ssl_batch_size
        self.view_dropout = float(view_dropout)
        self.feature_dropout = float(feature_dropout)
        self.spread_out_weight = float(spread_out_weight)
        self.seed = seed

        self.history_embedding = keras.layers.Embedding(num_items, embedding_dim, name="history")
        self.query_mlp = _mlp(hidden_units, embedding_dim, "query_mlp")
        self.feature_embeddings = {
            name: keras.layers.Embedding(
                num_candidates if name == "id" else vocab[name],
                feature_dim,
                name=f"{name}_embedding",
            )
            for name in self.features
        }
        self.item_mlp = _mlp(hidden_units, embedding_dim, "item_mlp")
        # Holds the learned defaults of masked features (SSL views and FD);
        # absent when nothing is masked, so no weight goes without a gradient.
        uses_defaults = masking is not None or feature_dropout > 0
        self.masker = (
            FeatureMasking(
                len(self.features), masking or "rfm", self.feature_groups, seed=seed, name="masking"
            )
            if len(self.features) >= 2 and uses_defaults
            else None
        )
        self.view_tag_dropout = FeatureDropout(view_dropout, seed=seed + 1, name="view_dropout")
        self.main_tag_dropout = FeatureDropout(feature_dropout, seed=seed + 2, name="main_dropout")
        self.seed_generator = keras.random.SeedGenerator(seed + 3)
        self.loss_retrieval_tracker = keras.metrics.Mean(name="loss_retrieval")
        self.loss_ssl_tracker = keras.metrics.Mean(name="loss_ssl")
        self.loss_spread_out_tracker = keras.metrics.Mean(name="loss_spread_out")
        self.build()
        if item_features is not None:
            self._set_item_features(item_features)
        if item_log_q is not None:
            item_log_q = np.asarray(item_log_q, np.float32)
            if item_log_q.shape != (num_candidates,):
                raise ValueError(
                    f"`item_log_q` must have shape ({num_candidates},), got {item_log_q.shape}."
                )
            self.item_log_q.assign(item_log_q)

    def _set_item_features(self, item_features: ItemFeatures) -> None:
        """Fill the feature tables; every value must fit (nothing is cut silently)."""
        if item_features.tags[:, self.max_tags :].any():
            raise ValueError(
                f"`max_tags` {self.max_tags} is smaller than an item's tag count "
                f"(`item_features.tags` has {item_features.tags.shape[1]} columns)."
            )
        for name in self.features[1:]:
            values = item_features.tags if name == "tags" else item_features.columns[name]
            if values.max(initial=0) >= self.feature_vocab[name]:
                raise ValueError(
                    f"`feature_vocab` of {name!r} is {self.feature_vocab[name]}, but "
                    f"`item_features` holds the value {values.max()}."
                )
        tags = np.zeros((self.num_candidates, self.max_tags), np.int32)
        width = min(self.max_tags, item_features.tags.shape[1])
        tags[:, :width] = item_features.tags[:, :width]
        table = np.stack([item_features.columns[n] for n in SINGLE_VALUED], axis=1)
        self.attribute_table.assign(table.astype(np.int32))
        self.tag_table.assign(tags)

    def build(self, input_shape=None):
        self.history_embedding.build((None, None))
        self.query_mlp.build((None, self.embedding_dim))
        for layer in self.feature_embeddings.values():
            layer.build((None,))
        self.item_mlp.build((None, len(self.features) * self.feature_dim))
        if self.masker is not None:
            self.masker.build((None, len(self.features), self.feature_dim))
        # The candidates' attributes and sampling log-probabilities: weights
        # (not config) so that they are saved and restored with the model.
        self.attribute_table = self.add_weight(
            name="attribute_table",
            shape=(self.num_candidates, len(SINGLE_VALUED)),
            dtype="int32",
            initializer="zeros",
            trainable=False,
        )
        self.tag_table = self.add_weight(
            name="tag_table",
            shape=(self.num_candidates, self.max_tags),
            dtype="int32",
            initializer="zeros",
            trainable=False,
        )
        self.item_log_q = self.add_weight(
            name="item_log_q", shape=(self.num_candidates,), initializer="zeros", trainable=False
        )
        self.built = True

    @property
    def ssl_enabled(self) -> bool:
        return self.masking is not None and self.ssl_weight > 0

    @property
    def metrics(self):
        # Terms that are switched off are not logged: a constant 0 would read
        # as a perfectly solved task.
        off = set()
        if not self.ssl_enabled:
            off.add(id(self.loss_ssl_tracker))
        if self.spread_out_weight == 0:
            off.add(id(self.loss_spread_out_tracker))
        return [m for m in super().metrics if id(m) not in off]

    # -- towers ---------------------------------------------------------------
    def query_tower(self, history):
        """`(batch, n)` ids `-> (batch, D)` unit vectors."""
        pooled = _masked_mean(self.history_embedding(history), history)
        return _l2_normalize(self.query_mlp(pooled))

    def item_feature_embeddings(self, ids, tag_dropout=None, training=None):
        """`(batch,)` candidate ids `-> (batch, F, feature_dim)`, in `self.features` order."""
        ids = ops.cast(ops.reshape(ids, (-1,)), "int32")
        attributes = ops.take(self.attribute_table, ids, axis=0)
        columns = []
        for name in self.features:
            layer = self.feature_embeddings[name]
            if name == "id":
                columns.append(layer(ids))
            elif name == "tags":
                tags = ops.take(self.tag_table, ids, axis=0)
                if tag_dropout is not None:
                    tags = tag_dropout(tags, training=training)
                # An item with no (kept) tag gets zeros.
                columns.append(_masked_mean(layer(tags), tags))
            else:
                columns.append(layer(attributes[:, SINGLE_VALUED.index(name)]))
        return ops.stack(columns, axis=1)

    def item_tower_from_features(self, features):
        """`(batch, F, feature_dim) -> (batch, D)` unit vectors."""
        flat = ops.reshape(features, (-1, len(self.features) * self.feature_dim))
        return _l2_normalize(self.item_mlp(flat))

    def item_tower(self, ids):
        """`(batch,)` candidate ids `-> (batch, D)` unit vectors, no augmentation."""
        return self.item_tower_from_features(self.item_feature_embeddings(ids))

    def candidate_table(self):
        """`(num_candidates, D)`: the item tower over every candidate id (row 0 = padding)."""
        return self.item_tower(ops.arange(self.num_candidates))

    def call(self, inputs, training=None):
        return {"query": self.query_tower(inputs[HISTORY])}

    def query_scores(self, history):
        """Retrieval scores `(batch, n) -> (batch, num_candidates)`: `q^T x_j`."""
        return ops.matmul(self.query_tower(history), ops.transpose(self.candidate_table()))

    # -- losses ---------------------------------------------------------------
    def _main_item_embeddings(self, targets, training):
        if not (training and self.feature_dropout > 0):
            return self.item_tower(targets)
        features = self.item_feature_embeddings(targets, self.main_tag_dropout, training)
        if self.masker is not None:
            # FD: each feature independently replaced by its default.
            drop = keras.random.uniform(ops.shape(features)[:2], seed=self.seed_generator)
            features = self.masker.apply(features, drop < self.feature_dropout)
        return self.item_tower_from_features(features)

    def ssl_views(self, ids, training=True):
        """The two augmented views' embeddings `(N, D)` each of candidate `ids` `(N,)`."""
        features = self.item_feature_embeddings(ids, self.view_tag_dropout, training)
        first, second = self.masker(features)
        return self.item_tower_from_features(first), self.item_tower_from_features(second)

    def compute_terms(self, outputs, targets, training=True):
        """Every active loss term as a scalar: `loss_retrieval`, `loss_ssl`, `loss_spread_out`."""
        targets = ops.cast(ops.reshape(targets, (-1,)), "int32")
        items = self._main_item_embeddings(targets, training)
        log_q = ops.take(self.item_log_q, targets, axis=0)
        terms = {
            "loss_retrieval": ops.mean(
                tl.in_batch_softmax_loss(outputs["query"], items, targets, log_q, self.temperature)
            )
        }
        if self.spread_out_weight > 0:
            terms["loss_spread_out"] = tl.spread_out_loss(items, targets)
        if self.ssl_enabled:
            size = min(self.ssl_batch_size, self.num_candidates - 1)
            # Distinct ids, uniform over the item table.
            pool = ops.arange(1, self.num_candidates, dtype="int32")
            ids = keras.random.shuffle(pool, seed=self.seed_generator)[:size]
            first, second = self.ssl_views(ids, training)
            terms["loss_ssl"] = ops.mean(tl.contrastive_loss(first, second, self.ssl_temperature))
        return terms

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        terms = self.compute_terms(y_pred, x[TARGET], training=training)
        loss = terms["loss_retrieval"]
        self.loss_retrieval_tracker.update_state(loss)
        if "loss_ssl" in terms:
            self.loss_ssl_tracker.update_state(terms["loss_ssl"])
            loss = loss + self.ssl_weight * terms["loss_ssl"]
        if "loss_spread_out" in terms:
            self.loss_spread_out_tracker.update_state(terms["loss_spread_out"])
            loss = loss + self.spread_out_weight * terms["loss_spread_out"]
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_items": self.num_items,
                "num_candidates": self.num_candidates,
                "embedding_dim": self.embedding_dim,
                "feature_dim": self.feature_dim,
                "hidden_units": list(self.hidden_units),
                "feature_vocab": dict(self.feature_vocab),
                "max_tags": self.max_tags,
                "temperature": self.temperature,
                "masking": self.masking,
                "feature_groups": self.feature_groups,
                "mutual_information": self.mutual_information,
                "ssl_weight": self.ssl_weight,
                "ssl_temperature": self.ssl_temperature,
                "ssl_batch_size": self.ssl_batch_size,
                "view_dropout": self.view_dropout,
                "feature_dropout": self.feature_dropout,
                "spread_out_weight": self.spread_out_weight,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
