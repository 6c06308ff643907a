"""Per-domain sequence encoder `f_s` / `f_t` of the paper (Eq. 1)."""

from __future__ import annotations

import keras
from keras import ops

from sitn_tf import ops as sitn_ops
from sitn_tf.checks import check_int, check_rate
from sitn_tf.defaults import DEFAULT_MAX_SEQ_LEN


@keras.saving.register_keras_serializable(package="sitn_tf")
class SequenceEncoder(keras.layers.Layer):
    """Embeds a padded id sequence and runs multi-head self-attention blocks.

    Token representation: `LN(E_item[id] + E_cat[category] (+ P[position]))`,
    the layer norm (BERT-style; `normalize_embeddings`) putting the tokens on
    the unit scale the blocks' outputs have. Then `num_layers` post-norm Transformer blocks, each

        h = LayerNorm(h + Dropout(MultiHead(Q=h, K=h, V=h)))      # Eq. 1
        h = LayerNorm(h + Dropout(FFN(h)))

    Padding (item id 0) is masked everywhere: no position attends to a
    padding key, and the output at padding positions is exactly zero. Each
    query may always attend to itself, so an all-padding row never meets a
    fully masked softmax (finite on every backend and kernel).

    Positions index the slots of the padded array (slot 0 is position 0),
    so they carry recency only if the pipeline pads consistently.

    Args:
        num_items: item vocabulary size, counting padding id 0 and OOV ids.
        embedding_dim: model width `D`; must be divisible by `num_heads`.
        num_heads: attention heads.
        num_layers: self-attention blocks (`>= 0`; 0 means embeddings only).
        num_categories: category vocabulary size (counting 0 and OOV), or 0
            to use no category features.
        max_seq_len: longest sequence accepted (size of the position table).
        use_positions: add learned position embeddings.
        dropout: dropout rate in `[0, 1)` on embeddings and block outputs.
        feedforward_dim: inner width of the FFN; defaults to `2 * D`.
        normalize_embeddings: layer-normalise the token representation.

    Call args:
        item_ids: `(batch, seq_len)` int, 0 = padding, `seq_len <= max_seq_len`.
        category_ids: `(batch, seq_len)` int, required iff `num_categories > 0`.

    Returns:
        `Z` of shape `(batch, seq_len, embedding_dim)`.
    """

    def __init__(
        self,
        num_items: int,
        embedding_dim: int,
        num_heads: int = 2,
        num_layers: int = 1,
        num_categories: int = 0,
        max_seq_len: int = DEFAULT_MAX_SEQ_LEN,
        use_positions: bool = True,
        dropout: float = 0.0,
        feedforward_dim: int | None = None,
        normalize_embeddings: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_int("num_items", num_items, minimum=2)
        check_int("embedding_dim", embedding_dim, minimum=1)
        check_int("num_heads", num_heads, minimum=1)
        check_int("num_layers", num_layers, minimum=0)
        check_int("num_categories", num_categories, minimum=0)
        check_int("max_seq_len", max_seq_len, minimum=1)
        if embedding_dim % num_heads:
            raise ValueError(
                f"`embedding_dim` must be divisible by `num_heads`, got "
                f"embedding_dim={embedding_dim}, num_heads={num_heads}."
            )
        if num_categories == 1:
            raise ValueError(
                "`num_categories` must be 0 (no categories) or >= 2 (padding id 0 "
                "plus at least one category), got 1."
            )
        check_rate("dropout", dropout)
        if feedforward_dim is not None:
            check_int("feedforward_dim", feedforward_dim, minimum=1)
        self.num_items = num_items
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.num_categories = num_categories
        self.max_seq_len = max_seq_len
        self.use_positions = use_positions
        self.dropout = dropout
        self.feedforward_dim = feedforward_dim or 2 * embedding_dim
        self.normalize_embeddings = normalize_embeddings

        self.item_embedding = keras.layers.Embedding(
            num_items, embedding_dim, name="item_embedding"
        )
        self.category_embedding = (
            keras.layers.Embedding(num_categories, embedding_dim, name="category_embedding")
            if num_categories
            else None
        )
        self.embedding_norm = (
            keras.layers.LayerNormalization(epsilon=1e-6, name="embedding_norm")
            if normalize_embeddings
            else None
        )
        self.dropout_layer = keras.layers.Dropout(dropout)
        self.attention_layers = []
        self.attention_norms = []
        self.ffn_inner = []
        self.ffn_outer = []
        self.ffn_norms = []
        for i in range(num_layers):
            self.attention_layers.append(
                keras.layers.MultiHeadAttention(
                    num_heads=num_heads,
                    key_dim=embedding_dim // num_heads,
                    dropout=dropout,
                    name=f"self_attention_{i}",
                )
            )
            self.attention_norms.append(
                keras.layers.LayerNormalization(epsilon=1e-6, name=f"attention_norm_{i}")
            )
            self.ffn_inner.append(
                keras.layers.Dense(self.feedforward_dim, activation="relu", name=f"ffn_inner_{i}")
            )
            self.ffn_outer.append(keras.layers.Dense(embedding_dim, name=f"ffn_outer_{i}"))
            self.ffn_norms.append(
                keras.layers.LayerNormalization(epsilon=1e-6, name=f"ffn_norm_{i}")
            )

    def build(self, item_ids_shape, category_ids_shape=None):
        self.item_embedding.build(item_ids_shape)
        if self.category_embedding is not None:
            self.category_embedding.build(item_ids_shape)
        if self.use_positions:
            self.position_embedding = self.add_weight(
                shape=(self.max_seq_len, self.embedding_dim),
                initializer=keras.initializers.RandomUniform(-0.05, 0.05),
                name="position_embedding",
            )
        hidden_shape = (None, None, self.embedding_dim)
        if self.embedding_norm is not None:
            self.embedding_norm.build(hidden_shape)
        for i in range(self.num_layers):
            self.attention_layers[i].build(hidden_shape, hidden_shape, hidden_shape)
            self.attention_norms[i].build(hidden_shape)
            self.ffn_inner[i].build(hidden_shape)
            self.ffn_outer[i].build((None, None, self.feedforward_dim))
            self.ffn_norms[i].build(hidden_shape)
        self.built = True

    def embed_items(self, item_ids, category_ids=None):
        """Position-free token embedding `LN(E_item[id] + E_cat[category])`.

        Works for any id shape, e.g. `(batch,)` candidates -> `(batch, D)`.
        The ranker uses it for the candidate embedding `v`, so `v` lives in
        the target encoder's input space and shares its tables (and norm).
        """
        x = self._sum_tables(item_ids, category_ids)
        return self.embedding_norm(x) if self.embedding_norm is not None else x

    def _sum_tables(self, item_ids, category_ids):
        x = self.item_embedding(item_ids)
        if self.category_embedding is not None:
            if category_ids is None:
                raise ValueError(
                    f"`category_ids` is required because num_categories="
                    f"{self.num_categories} > 0 (layer {self.name!r})."
                )
            x = x + self.category_embedding(category_ids)
        return x

    def call(self, item_ids, category_ids=None, training=None):
        seq_len = item_ids.shape[1]
        if self.use_positions and seq_len is not None and seq_len > self.max_seq_len:
            raise ValueError(
                f"`item_ids` has sequence length {seq_len} > max_seq_len="
                f"{self.max_seq_len} (layer {self.name!r}); truncate upstream."
            )
        mask = sitn_ops.padding_mask(item_ids)  # (B, L)
        x = self._sum_tables(item_ids, category_ids)
        if self.use_positions:
            length = ops.shape(item_ids)[1]
            x = x + ops.expand_dims(self.position_embedding[:length], 0)
        if self.embedding_norm is not None:
            x = self.embedding_norm(x)
        x = self.dropout_layer(x, training=training)

        if self.num_layers:
            # (B, L, L): query i may read key j iff j is real, or j == i.
            length = ops.shape(item_ids)[1]
            eye = ops.cast(ops.eye(length), "bool")
            attention_mask = ops.logical_or(ops.expand_dims(mask, 1), ops.expand_dims(eye, 0))
            for i in range(self.num_layers):
                attended = self.attention_layers[i](
                    x, x, x, attention_mask=attention_mask, training=training
                )
                x = self.attention_norms[i](x + self.dropout_layer(attended, training=training))
                ffn = self.ffn_outer[i](self.ffn_inner[i](x))
                x = self.ffn_norms[i](x + self.dropout_layer(ffn, training=training))
        return x * ops.expand_dims(ops.cast(mask, x.dtype), -1)

    def compute_output_shape(self, item_ids_shape, category_ids_shape=None):
        return tuple(item_ids_shape) + (self.embedding_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_items": self.num_items,
                "embedding_dim": self.embedding_dim,
                "num_heads": self.num_heads,
                "num_layers": self.num_layers,
                "num_categories": self.num_categories,
                "max_seq_len": self.max_seq_len,
                "use_positions": self.use_positions,
                "dropout": self.dropout,
                "feedforward_dim": self.feedforward_dim,
                "normalize_embeddings": self.normalize_embeddings,
            }
        )
        return config
