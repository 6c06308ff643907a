"""TiMiRec's target-interest predictor: a GRU and the MLP of Eq. 15."""

from __future__ import annotations

import keras
from keras import ops

from sitn_tf.checks import check_int


@keras.saving.register_keras_serializable(package="sitn_tf")
class TargetInterestPredictor(keras.layers.Layer):
    """Logits `z^q` over the K interests from the recent history.

    The history is embedded with the predictor's *own* item table (separate
    from the extractor's, so that distillation does not pull the retrieval
    embeddings), read by a GRU whose last state is `h`, and mapped by Eq. 15

        z^q = W4 ReLU(W3 h + b3) + b4          z^q: (batch, K)

    `softmax(z^q)` is the predicted target-interest distribution used to mix
    the interests (Eq. 4); `softmax(z^q / T)` is the student `q` of the
    distillation (Eq. 6).

    Args:
        num_items: size of the item table including padding id 0.
        embedding_dim: width of the predictor's item embeddings.
        hidden_units: width of the GRU state and of the hidden layer of Eq. 15.
        num_interests: `K`.

    Call args:
        item_ids: `(batch, n)` int, oldest first, 0 = padding after the real
            items (right padding).

    Returns:
        `(batch, K)` logits `z^q`. An all-padding history gives the logits of
        a zero state.
    """

    def __init__(
        self,
        num_items: int,
        embedding_dim: int,
        hidden_units: int,
        num_interests: int,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_int("num_items", num_items, minimum=2)
        check_int("embedding_dim", embedding_dim, minimum=1)
        check_int("hidden_units", hidden_units, minimum=1)
        check_int("num_interests", num_interests, minimum=1)
        self.num_items = num_items
        self.embedding_dim = embedding_dim
        self.hidden_units = hidden_units
        self.num_interests = num_interests
        self.embedding = keras.layers.Embedding(num_items, embedding_dim, name="embedding")
        self.gru = keras.layers.GRU(hidden_units, name="gru")
        self.hidden = keras.layers.Dense(hidden_units, activation="relu", name="hidden")  # W3, b3
        self.logits = keras.layers.Dense(num_interests, name="logits")  # W4, b4

    def build(self, ids_shape):
        self.embedding.build(ids_shape)
        self.gru.build((ids_shape[0], ids_shape[1], self.embedding_dim))
        self.hidden.build((ids_shape[0], self.hidden_units))
        self.logits.build((ids_shape[0], self.hidden_units))
        self.built = True

    def call(self, item_ids, training=None):
        mask = ops.not_equal(item_ids, 0)
        state = self.gru(self.embedding(item_ids), mask=mask, training=training)
        return self.logits(self.hidden(state))

    def compute_output_shape(self, ids_shape):
        return (ids_shape[0], self.num_interests)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_items": self.num_items,
                "embedding_dim": self.embedding_dim,
                "hidden_units": self.hidden_units,
                "num_interests": self.num_interests,
            }
        )
        return config
