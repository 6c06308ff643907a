"""Stage 2 of SITN: CTR prediction with the (pretrained) encoders."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from sitn_tf import ops as sitn_ops
from sitn_tf.layers import MLP, TargetAttention
from sitn_tf.models import _inputs
from sitn_tf.models.config import ENCODER_FIELDS, SITNConfig, as_config
from sitn_tf.models.ctr import CTRModel, candidate_statistics
from sitn_tf.models.pretrainer import SITNPretrainer, build_encoder

logger = logging.getLogger(__name__)


@keras.saving.register_keras_serializable(package="sitn_tf")
class SITNRanker(CTRModel):
    """Stage 2 (Eqs. 8-9): `y_hat = sigmoid(MLP(concat(u_f^s, u_f^t, v)))`.

    * `Z^s = f_s(source history)`, `Z^t = f_t(target history)`: the same
      encoders as `SITNPretrainer`, initialised from it by `load_pretrained`
      (or trained from scratch when stage 1 is skipped);
    * `v`: the candidate item embedding. It is looked up in the target
      encoder's own item (and category) tables (`SequenceEncoder.embed_items`),
      since the candidate is a target-domain item with the same vocabulary as
      `target_item_ids`; sharing keeps `v` in the space the target encoder
      was pretrained on and lets pretraining initialise it too;
    * `u_f^s = TargetAttention(v, Z^s)`, `u_f^t = TargetAttention(v, Z^t)`:
      DIN activation units, one per domain;
    * `s`: the candidate's statistics embedded by `CandidateStatistics`
      when `config.item_statistics` is on (beyond the paper; the head then
      reads `concat(u_f^s, u_f^t, v, s)`);
    * the head MLP (`config.mlp_units`, then one sigmoid unit).

    Output: the click probability, shape `(batch,)`. The model owns Eq. 9:
    `compile(optimizer)` trains with BCE and reports AUC and logloss
    (`CTRModel`); labels may be `(batch,)` or `(batch, 1)`.

    Inputs: a dict keyed by `sitn_tf.features` names with integer ids,
    0 = padding: `ITEM_ID` (`(batch,)` or `(batch, 1)`), `SOURCE_ITEM_IDS`,
    `TARGET_ITEM_IDS` (`(batch, seq_len)`, `seq_len <= max_seq_len`) and, when
    `config.num_categories > 0`, `ITEM_CATEGORY`, `SOURCE_CATEGORIES`,
    `TARGET_CATEGORIES`. An empty target history is fine (`u_f^t = 0`).
    With `config.item_statistics`, also `CANDIDATE_CLICKS_BUCKET` and
    `CANDIDATE_AGE_BUCKET` (`(batch,)` bucket ids); an absent one means
    "unknown".

    Freezing: with `config.freeze_encoder_steps = N > 0`, no gradient reaches
    the encoders (including the shared target item table) while
    `self.optimizer.iterations < N`; only the attention units and the head
    learn. The switch reads the optimizer's step counter inside the graph,
    so it works in a compiled `fit` and survives checkpoint restore. (With a
    decoupled weight decay such as AdamW, the decay still applies to frozen
    variables: exclude them with `optimizer.exclude_from_weight_decay`.)
    """

    def __init__(self, config: SITNConfig | Mapping[str, Any], **kwargs):
        kwargs.setdefault("name", "sitn_ranker")
        super().__init__(**kwargs)
        self.config = as_config(config)
        cfg = self.config
        self.source_encoder = build_encoder(cfg, "source")
        self.target_encoder = build_encoder(cfg, "target")
        self.source_attention = TargetAttention(
            cfg.attention_units, normalization=cfg.attention_normalization, name="source_attention"
        )
        self.target_attention = TargetAttention(
            cfg.attention_units, normalization=cfg.attention_normalization, name="target_attention"
        )
        self.statistics = candidate_statistics(cfg)
        self.head = MLP(
            (*cfg.mlp_units, 1), dropout=cfg.dropout, output_activation="sigmoid", name="head"
        )
        self.build()

    def build(self, input_shape=None):
        dim, seq = self.config.embedding_dim, self.config.max_seq_len
        self.source_encoder.build((None, seq))
        self.target_encoder.build((None, seq))
        self.source_attention.build((None, dim), (None, seq, dim))
        self.target_attention.build((None, dim), (None, seq, dim))
        width = 3 * dim
        if self.statistics is not None:
            self.statistics.build()
            width += self.statistics.compute_output_shape([(None,)])[-1]
        self.head.build((None, width))
        self.built = True

    def encoders_frozen(self):
        """Boolean scalar tensor, or None when freezing is off."""
        steps = self.config.freeze_encoder_steps
        if not steps or getattr(self, "optimizer", None) is None:
            return None
        return ops.less(self.optimizer.iterations, steps)

    def call(self, inputs, training=None):
        return self.score(inputs, training=training)

    def score(self, inputs, history_index=None, training=None):
        """Scores candidates, encoding each distinct history once.

        With `history_index=None`, `inputs` is a plain batch: one row per
        candidate, histories `(batch, seq_len)`. Adjacent rows with the same
        histories (an instance's positive and its negatives, kept together
        by the grouped training input) are encoded once
        (`sitn_tf.ops.adjacent_runs`); any other batch gives the same outputs,
        only without the saving.

        With `history_index` `(batch,)` int, the histories in `inputs` are
        `(histories, seq_len)` and candidate `i` reads history row
        `history_index[i]`: e.g. one user's histories and N candidates
        (`pipelines.serving`'s `score_candidates`).

        Eqs. 8-9 stay per candidate: `Z^s`, `Z^t` of shape `(histories,
        seq_len, D)` are read per candidate by the target attention (without
        XLA, both the encoders and the attention stop at the last position
        real in some history: `sitn_tf.ops.real_length`), and
        the head and the loss see one row per candidate. In training, the
        candidates of one history share its dropout mask.

        Returns:
            `(batch,)` click probabilities.
        """
        cfg = self.config
        name = "SITNRanker"
        candidate, candidate_category = _inputs.get_ids(
            inputs, _inputs.candidate_features(cfg), name, None
        )
        histories = {
            domain: _inputs.get_ids(inputs, names, name, cfg.max_seq_len)
            for domain, names in _inputs.sequence_features(cfg).items()
        }
        if history_index is None:
            starts, history_index = sitn_ops.adjacent_runs(
                [t for pair in histories.values() for t in pair]
            )
            histories = {
                domain: tuple(None if t is None else ops.take(t, starts, axis=0) for t in pair)
                for domain, pair in histories.items()
            }
        sequences = {}
        for domain, (ids, categories) in histories.items():
            encoder = self.source_encoder if domain == "source" else self.target_encoder
            if not self.jit_compile:
                # Before encoding: the attention units run per candidate and
                # position, the encoders per history and position, and the
                # tail that is padding in every history changes neither's
                # outputs at real positions (`sitn_ops.drop_padded_tail`).
                # Only the dropout masks are drawn over fewer positions.
                ids, categories = sitn_ops.drop_padded_tail(ids, categories)
            z = encoder(ids, categories, training=training)  # (histories, L', D)
            real = sitn_ops.padding_mask(ids)  # (histories, L')
            mask = ops.take(real, history_index, axis=0)  # (batch, L')
            sequences[domain] = (z, mask)
        v = self.target_encoder.embed_items(candidate, candidate_category)

        frozen = self.encoders_frozen()
        if frozen is not None:

            def hold(x):
                return ops.where(frozen, ops.stop_gradient(x), x)

            v = hold(v)
            sequences = {d: (hold(z), mask) for d, (z, mask) in sequences.items()}

        z_s, mask_s = sequences["source"]
        z_t, mask_t = sequences["target"]
        u_s = self.source_attention(v, z_s, mask=mask_s, key_index=history_index)
        u_t = self.target_attention(v, z_t, mask=mask_t, key_index=history_index)
        parts = [u_s, u_t, v]
        if self.statistics is not None:
            stats = _inputs.statistic_ids(inputs, candidate, name)
            parts.append(self.statistics(stats, training=training))
        probability = self.head(ops.concatenate(parts, axis=-1), training=training)
        return ops.squeeze(probability, -1)

    def load_pretrained(self, pretrainer: SITNPretrainer | str | os.PathLike) -> list[str]:
        """Copies the stage-1 encoder weights into this model.

        Args:
            pretrainer: a `SITNPretrainer`, a path to a `.keras` file saved
                from one, or a directory holding exactly one `.keras` file.

        Returns:
            The paths of the restored variables of this model: every variable
            of `source_encoder` and `target_encoder` (their item, category
            and position tables and all attention blocks; the target item
            table is also the candidate embedding). Attention units and head
            are left as initialised. The list is also logged.

        Raises:
            ValueError: the two configs disagree on a field that shapes the
                encoders.
        """
        source = pretrainer
        if not isinstance(pretrainer, SITNPretrainer):
            pretrainer = _load_pretrainer(pretrainer)
        mismatched = [
            f"{field}: pretrainer={getattr(pretrainer.config, field)!r}, "
            f"ranker={getattr(self.config, field)!r}"
            for field in ENCODER_FIELDS
            if getattr(pretrainer.config, field) != getattr(self.config, field)
        ]
        if mismatched:
            raise ValueError("Pretrained encoders do not fit this ranker: " + "; ".join(mismatched))

        restored = []
        for attribute in ("source_encoder", "target_encoder"):
            src_layer, dst_layer = getattr(pretrainer, attribute), getattr(self, attribute)
            src_vars, dst_vars = src_layer.weights, dst_layer.weights
            src_names = [_relative_path(v, src_layer) for v in src_vars]
            dst_names = [_relative_path(v, dst_layer) for v in dst_vars]
            if src_names != dst_names:
                raise ValueError(
                    f"{attribute} variables differ between pretrainer and ranker: "
                    f"{src_names} vs {dst_names}."
                )
            for src, dst in zip(src_vars, dst_vars, strict=True):
                dst.assign(src.value)
                restored.append(dst.path)
        logger.info(
            "Restored %d encoder variables from %s: %s",
            len(restored),
            source if not isinstance(source, SITNPretrainer) else source.name,
            ", ".join(restored),
        )
        return restored

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _relative_path(variable, layer) -> str:
    marker = f"{layer.name}/"
    path = variable.path
    return path.split(marker, 1)[1] if marker in path else path


def _load_pretrainer(path: str | os.PathLike) -> SITNPretrainer:
    # tf.io.gfile so that pipeline artifacts on remote filesystems work too.
    import tensorflow as tf

    path = os.fspath(path)
    if tf.io.gfile.isdir(path):
        candidates = sorted(name for name in tf.io.gfile.listdir(path) if name.endswith(".keras"))
        if len(candidates) != 1:
            raise ValueError(
                f"Expected exactly one .keras file in directory {path!r}, found "
                f"{len(candidates)}: {candidates}."
            )
        path = os.path.join(path, candidates[0])
    elif not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"No pretrained model at {path!r}.")
    elif not path.endswith(".keras"):
        raise ValueError(f"Expected a .keras file saved from SITNPretrainer, got {path!r}.")
    model = keras.saving.load_model(path, compile=False)
    if not isinstance(model, SITNPretrainer):
        raise TypeError(f"{path!r} holds a {type(model).__name__}, not a SITNPretrainer.")
    return model
