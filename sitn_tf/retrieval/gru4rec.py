"""GRU4Rec-style next-item retriever: the sequence baseline of TiMiRec's Table 2."""

from __future__ import annotations

import keras
from keras import ops

from sitn_tf.checks import check_candidates, check_int
from sitn_tf.retrieval import losses
from sitn_tf.retrieval.timirec import HISTORY, TARGET


@keras.saving.register_keras_serializable(package="sitn_tf")
class GRU4Rec(keras.Model):
    """A GRU over the embedded history; its last state is the user vector.

    `h = GRU(E[history])` with `D` units, so that `h^T e_j` scores candidate
    `j` against the same item table that embeds the history. Trained with the
    full-softmax next-item loss of TiMiRec's Eq. 10 (`losses.next_item_loss`),
    so the baseline differs from ComiRec/TiMiRec only in the user encoder.
    (Hidasi et al. 2016 used parallel mini-batches of click streams and ranking losses;
    the loss is kept equal here on purpose.)

    Args:
        num_items: rows of the item table, padding id 0 included.
        embedding_dim: `D`.
        num_candidates: ids `1..num_candidates-1` are retrievable; defaults
            to `num_items`.

    Inputs, `query_scores` and logs (`loss_rec`) as in `TiMiRec`.
    """

    def __init__(
        self,
        num_items: int,
        embedding_dim: int = 32,
        num_candidates: int | None = None,
        **kwargs,
    ):
        kwargs.setdefault("name", "gru4rec")
        super().__init__(**kwargs)
        num_candidates = check_candidates(num_items, num_candidates)
        check_int("embedding_dim", embedding_dim, minimum=1)
        self.num_items = num_items
        self.embedding_dim = embedding_dim
        self.num_candidates = num_candidates
        self.item_embedding = keras.layers.Embedding(num_items, embedding_dim, name="items")
        self.gru = keras.layers.GRU(embedding_dim, name="gru")
        self.loss_rec_tracker = keras.metrics.Mean(name="loss_rec")
        self.build()

    def build(self, input_shape=None):
        self.item_embedding.build((None, None))
        self.gru.build((None, None, self.embedding_dim))
        self.built = True

    def candidate_table(self):
        return self.item_embedding.embeddings[: self.num_candidates]

    def user_vector(self, history, training=None):
        """`(batch, n) -> (batch, D)`; right padding is skipped by the GRU mask."""
        return self.gru(
            self.item_embedding(history), mask=ops.not_equal(history, 0), training=training
        )

    def call(self, inputs, training=None):
        return {"user": self.user_vector(inputs[HISTORY], training=training)}

    def query_scores(self, history):
        return ops.matmul(self.user_vector(history), ops.transpose(self.candidate_table()))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        targets = ops.cast(ops.reshape(x[TARGET], (-1,)), "int32")
        loss = ops.mean(losses.next_item_loss(y_pred["user"], self.candidate_table(), targets))
        self.loss_rec_tracker.update_state(loss)
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_items": self.num_items,
            "embedding_dim": self.embedding_dim,
            "num_candidates": self.num_candidates,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
