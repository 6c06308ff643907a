"""TiMiRec: multi-interest retrieval with target-interest distillation.

Wang et al., "Target Interest Distillation for Multi-Interest Recommendation",
CIKM 2022.
"""

from __future__ import annotations

import keras
from keras import ops

from sitn_tf.checks import check_candidates, check_int
from sitn_tf.retrieval import losses
from sitn_tf.retrieval.multi_interest_extractor import MultiInterestExtractor
from sitn_tf.retrieval.target_interest_predictor import TargetInterestPredictor

PHASES = ("pretrain", "distill")
HISTORY = "history"
TARGET = "target"


@keras.saving.register_keras_serializable(package="sitn_tf")
class TiMiRec(keras.Model):
    """The two phases of the paper's Algorithm 1 in one model.

    * `phase="pretrain"` (Algorithm 1, lines 1-5) is ComiRec-SA: the
      extractor (Eqs. 12-13) gives K interests `V`; training uses the
      interest that best matches the target (Eq. 2) in the next-item loss
      `L_rec` (Eq. 10); retrieval scores a candidate with its best-matching
      interest, `max_k v_k^T e_j`.
    * `phase="distill"` (lines 6-12): the target-interest predictor (GRU +
      Eq. 15) gives `z^q`, the user vector is `v = V softmax(z^q)` (Eq. 4)
      both in `L_rec` and at retrieval, and the predictor learns from the
      teacher `p = softmax(cos(V, e_t) / T)` (Eqs. 5, 7) through
      `L_distill = -sg[p]^T log softmax(z^q / T)` (Eqs. 6, 9). The loss is
      `L = L_rec + T^2 L_distill` (Eq. 11). Every weight trains, the
      extractor included.

    Algorithm 1 runs `pretrain`, then `set_phase("distill")` and trains on.
    Starting in `distill` from scratch is the paper's "joint training"
    ablation; `stop_gradient=False` is its "w/o stop-gradient" ablation (its
    Table 4).

    Args:
        num_items: rows of the item table, padding id 0 included. Ids
            `>= num_candidates` may appear in histories (e.g. source-domain
            items) but are never retrieved.
        num_candidates: ids `1..num_candidates-1` are the retrievable corpus;
            defaults to `num_items`.
        embedding_dim: `D`.
        num_interests: `K`.
        attention_units: `d_a` of Eq. 12.
        predictor_dim: width of the predictor's own item embeddings.
        predictor_units: GRU and hidden width of the predictor.
        temperature: `T` of Eqs. 5-6 and 11.
        phase: `"pretrain"` or `"distill"`.
        stop_gradient: apply `sg[.]` to the teacher `p` (Eq. 9).
        use_distillation: add `T^2 L_distill` to the loss (Eq. 11). With
            False (not in the paper) the predictor learns only through the
            mixing of Eq. 4 in `L_rec`; `loss_distill` is still logged. This
            separates what distillation adds from what mixing adds.

    Inputs: a dict with `"history"`, `(batch, n)` int item ids, oldest first,
    right-padded with 0, and (for training) `"target"`, `(batch,)` int.

    `call` returns `{"interests": (batch, K, D)}` and, in the distill phase,
    `"intent_logits": (batch, K)`.
    `query_scores(history)` returns `(batch, num_candidates)` retrieval
    scores (column 0 is padding). `compute_loss` logs `loss_rec` and, in the
    distill phase, `loss_distill` (unweighted) besides the total.
    """

    def __init__(
        self,
        num_items: int,
        embedding_dim: int = 32,
        num_interests: int = 4,
        attention_units: int = 32,
        predictor_dim: int = 32,
        predictor_units: int = 32,
        temperature: float = 1.0,
        phase: str = "pretrain",
        stop_gradient: bool = True,
        use_distillation: bool = True,
        num_candidates: int | None = None,
        **kwargs,
    ):
        kwargs.setdefault("name", "timirec")
        super().__init__(**kwargs)
        num_candidates = check_candidates(num_items, num_candidates)
        check_int("embedding_dim", embedding_dim, minimum=1)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ValueError(f"`temperature` must be a positive number, got {temperature!r}.")
        if not temperature > 0:
            raise ValueError(f"`temperature` must be a positive number, got {temperature!r}.")
        if phase not in PHASES:
            raise ValueError(f"`phase` must be one of {PHASES}, got {phase!r}.")
        if not isinstance(stop_gradient, bool):
            raise ValueError(f"`stop_gradient` must be a bool, got {stop_gradient!r}.")
        if not isinstance(use_distillation, bool):
            raise ValueError(f"`use_distillation` must be a bool, got {use_distillation!r}.")
        self.num_items = num_items
        self.num_candidates = num_candidates
        self.embedding_dim = embedding_dim
        self.num_interests = num_interests
        self.attention_units = attention_units
        self.predictor_dim = predictor_dim
        self.predictor_units = predictor_units
        self.temperature = float(temperature)
        self.phase = phase
        self.stop_gradient = stop_gradient
        self.use_distillation = use_distillation
        self.item_embedding = keras.layers.Embedding(num_items, embedding_dim, name="items")
        self.extractor = MultiInterestExtractor(num_interests, attention_units, name="extractor")
        self.predictor = TargetInterestPredictor(
            num_items, predictor_dim, predictor_units, num_interests, name="predictor"
        )
        self.loss_rec_tracker = keras.metrics.Mean(name="loss_rec")
        self.loss_distill_tracker = keras.metrics.Mean(name="loss_distill")
        self.build()

    def build(self, input_shape=None):
        ids_shape = (None, None)
        self.item_embedding.build(ids_shape)
        self.extractor.build((None, None, self.embedding_dim))
        self.predictor.build(ids_shape)
        self.built = True

    @property
    def metrics(self):
        # `loss_distill` exists only in the distill phase; logging a constant
        # 0 for it during pretraining would read as a perfect predictor.
        return [
            m
            for m in super().metrics
            if m is not self.loss_distill_tracker or self.phase == "distill"
        ]

    def set_phase(self, phase: str) -> None:
        """Switch between Algorithm 1's phases; recompile before training on."""
        if phase not in PHASES:
            raise ValueError(f"`phase` must be one of {PHASES}, got {phase!r}.")
        self.phase = phase

    def candidate_table(self):
        """`(num_candidates, D)`: the retrievable rows of the item table."""
        return self.item_embedding.embeddings[: self.num_candidates]

    def interests(self, history):
        """Eqs. 12-13: `(batch, n) ids -> (batch, K, D)`."""
        return self.extractor(self.item_embedding(history), mask=ops.not_equal(history, 0))

    def call(self, inputs, training=None):
        history = inputs[HISTORY]
        outputs = {"interests": self.interests(history)}
        # Phase 1 does not use the predictor: skip its GRU (most of a step's cost).
        if self.phase == "distill":
            outputs["intent_logits"] = self.predictor(history, training=training)
        return outputs

    def query_scores(self, history):
        """Retrieval scores `(batch, n) -> (batch, num_candidates)`.

        Pretrain phase (ComiRec): `max_k v_k^T e_j`. Distill phase: `v^T e_j`
        with `v = V softmax(z^q)` (Eq. 4).
        """
        interests = self.interests(history)
        table = self.candidate_table()
        if self.phase == "pretrain":
            return ops.max(ops.einsum("bkd,cd->bkc", interests, table), axis=1)
        mixed = losses.mix_interests(interests, self.predictor(history))
        return ops.matmul(mixed, ops.transpose(table))

    def compute_terms(self, outputs, targets):
        """Every loss term as a `(batch,)` tensor: `loss_rec`, and `loss_distill` when distilling."""
        interests = outputs["interests"]
        targets = ops.cast(ops.reshape(targets, (-1,)), "int32")
        target_embeddings = self.item_embedding(targets)
        table = self.candidate_table()
        if self.phase == "pretrain":
            user = losses.best_matching_interest(interests, target_embeddings)
            return {"loss_rec": losses.next_item_loss(user, table, targets)}
        logits = outputs["intent_logits"]
        user = losses.mix_interests(interests, logits)
        teacher = losses.teacher_distribution(
            interests, target_embeddings, self.temperature, stop_gradient=self.stop_gradient
        )
        return {
            "loss_rec": losses.next_item_loss(user, table, targets),
            "loss_distill": losses.distillation_loss(teacher, logits, self.temperature),
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        terms = {
            name: ops.mean(value) for name, value in self.compute_terms(y_pred, x[TARGET]).items()
        }
        self.loss_rec_tracker.update_state(terms["loss_rec"])
        if "loss_distill" in terms:
            self.loss_distill_tracker.update_state(terms["loss_distill"])
            if self.use_distillation:
                loss = losses.total_loss(terms["loss_rec"], terms["loss_distill"], self.temperature)
            else:  # the predictor learns only through the mixing of Eq. 4 in L_rec
                loss = terms["loss_rec"]
        else:
            loss = terms["loss_rec"]
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_items": self.num_items,
            "num_candidates": self.num_candidates,
            "embedding_dim": self.embedding_dim,
            "num_interests": self.num_interests,
            "attention_units": self.attention_units,
            "predictor_dim": self.predictor_dim,
            "predictor_units": self.predictor_units,
            "temperature": self.temperature,
            "phase": self.phase,
            "stop_gradient": self.stop_gradient,
            "use_distillation": self.use_distillation,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
