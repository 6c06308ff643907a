"""`preprocessing_fn` for the Transform component: raw strings -> integer ids.

Vocabularies are built by tf.Transform analyzers over the train split:

| vocabulary      | built from                                              | used by |
|-----------------|---------------------------------------------------------|---------|
| `user_id`       | `user_id`                                               | `user_id` (slicing, GAUC) |
| `target_items`  | positive candidates `item_id` + `target_item_ids`       | `item_id`, `target_item_ids` |
| `source_items`  | `source_item_ids`                                       | `source_item_ids` |
| `categories`    | `item_category`, `source_categories`, `target_categories` | all three |
| `brands`        | `item_brand`                                            | `item_brand` |
| `price_buckets` | `item_price_bucket`                                     | `item_price_bucket` |
| `item_tags`     | the first `max_item_tags` of `item_tags`                | `item_tags` |

Candidates count towards the target vocabulary only when clicked (label 1), so
that sampled negatives do not inflate item frequencies. The candidate's
attributes (the last three rows) count for every candidate, negatives
included: they describe the item, not the click, and an item tower needs
them for the negatives it scores as well.

tf.Transform keeps "" (an unknown category) out of every vocabulary, so it maps
to an OOV id like any unseen token. Every id is shifted by one so that **0 means padding**: known tokens map to
`1..V`, out-of-vocabulary tokens to the `num_oov_buckets` ids after that. Model
input sizes are therefore `vocabulary_size + num_oov_buckets + 1`
(`vocab_sizes` below). Sequences keep their most recent `max_seq_len` entries
(the converter writes them oldest first) and are right-padded with 0 to a fixed
`(batch, max_seq_len)` shape.

The candidate statistics (`candidate_prior_clicks`, `candidate_age`, written by
the converter from clicks before the instance) become bucket ids with fixed
power-of-two boundaries (`log2_bucket`): no analyzer, so a count means the
same bucket in every run and at serving time, where the statistics are
optional (a missing value is bucket 0, "unknown").

The candidate's attributes (`item_brand`, `item_price_bucket`, `item_tags`,
`features.ITEM_ATTRIBUTE_FEATURES`) are optional too: data converted before
they existed, and serving requests, may leave them out, and a missing one
maps like "" (an OOV id) or no tags (all padding). They are outputs for an
item tower, not ranker inputs, so their sizes come from
`item_attribute_vocab_sizes`, apart from `vocab_sizes`.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from sitn_tf import features as F
from sitn_tf.config import TransformConfig
from sitn_tf.defaults import AGE_BUCKETS, CLICK_COUNT_BUCKETS

USER_VOCAB = "user_id"
TARGET_ITEM_VOCAB = "target_items"
SOURCE_ITEM_VOCAB = "source_items"
CATEGORY_VOCAB = "categories"
BRAND_VOCAB = "brands"
PRICE_BUCKET_VOCAB = "price_buckets"
# Named like the feature it is built from, as `user_id` is.
TAG_VOCAB = F.ITEM_TAGS

HISTORY_BUCKETS = F.HISTORY_BUCKETS


def transform_config(custom_config: dict[str, Any] | TransformConfig | None) -> TransformConfig:
    """The Transform component's `custom_config` (the config's `transform` section), typed."""
    if isinstance(custom_config, TransformConfig):
        return custom_config
    return TransformConfig(**dict(custom_config or {}))


def _scalar(x: tf.Tensor | tf.SparseTensor, default: Any) -> tf.Tensor:
    """A one-value-per-example feature as a `(batch,)` dense tensor."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(tf.sparse.reset_shape(x, [x.dense_shape[0], 1]), default)
    elif isinstance(x, tf.RaggedTensor):
        x = x.to_tensor(default, shape=[None, 1])
    if x.shape.rank == 2:
        x = tf.squeeze(x, axis=1)
    return x


def _sequence(x: tf.Tensor | tf.SparseTensor | tf.RaggedTensor) -> tf.RaggedTensor:
    """A variable-length feature as a `(batch, None)` ragged tensor."""
    if isinstance(x, tf.SparseTensor):
        return tf.RaggedTensor.from_sparse(x)
    if isinstance(x, tf.RaggedTensor):
        return x
    return tf.RaggedTensor.from_tensor(x)


def _ids(x: tf.Tensor | tf.RaggedTensor, vocab: tf.Tensor, num_oov_buckets: int):
    """Vocabulary lookup with 0 reserved for padding."""
    return tft.apply_vocabulary(x, vocab, num_oov_buckets=num_oov_buckets) + 1


def _pad(ids: tf.RaggedTensor, max_seq_len: int) -> tf.Tensor:
    return ids.to_tensor(default_value=0, shape=[None, max_seq_len])


def _optional_scalar(inputs: dict[str, Any], name: str, like: tf.Tensor) -> tf.Tensor:
    """An optional one-value string feature as `(batch,)`, "" where absent.

    `like` is a `(batch,)` tensor of the same batch, for the shape when the
    feature is not an input at all.
    """
    if name in inputs:
        return _scalar(inputs[name], "")
    return tf.fill(tf.shape(like), "")


def _optional_sequence(inputs: dict[str, Any], name: str, like: tf.Tensor) -> tf.RaggedTensor:
    """An optional list-of-strings feature as `(batch, None)` ragged, empty where absent."""
    if name in inputs:
        return _sequence(inputs[name])
    return tf.RaggedTensor.from_row_lengths(
        tf.zeros([0], tf.string), tf.zeros(tf.shape(like, out_type=tf.int64), tf.int64)
    )


def log2_bucket(value: tf.Tensor, num_buckets: int) -> tf.Tensor:
    """Bucket ids of non-negative counts or ages, `(batch,)` int64 -> `(batch,)` int64.

    0: unknown (a negative value: missing, or the converter's -1); 1: the
    value 0 ("never clicked before"); `2 + floor(log2(value))` for
    `value >= 1`, capped at `num_buckets - 1`. Integer comparisons against
    `2, 4, ..., 2**(num_buckets - 3)`, so exact powers of two never land in
    the bucket below through a rounded logarithm.
    """
    if num_buckets < 3:
        raise ValueError(f"`num_buckets` must be >= 3, got {num_buckets}")
    value = tf.cast(value, tf.int64)
    powers = tf.constant([2**k for k in range(1, num_buckets - 2)], tf.int64)
    above = tf.reduce_sum(tf.cast(value[:, None] >= powers[None, :], tf.int64), axis=1)
    zero, one = tf.zeros_like(value), tf.ones_like(value)
    return tf.where(value < 0, zero, tf.where(value == 0, one, 2 + above))


def history_bucket(length: tf.Tensor) -> tf.Tensor:
    """Map history lengths `(batch,)` to the bucket labels of HISTORY_BUCKETS."""
    bucket = tf.fill(tf.shape(length), HISTORY_BUCKETS[-1][2])
    for low, high, name in reversed(HISTORY_BUCKETS[:-1]):
        bucket = tf.where((length >= low) & (length <= high), name, bucket)
    return bucket


def preprocessing_fn(
    inputs: dict[str, Any], custom_config: dict[str, Any] | TransformConfig | None = None
) -> dict[str, tf.Tensor]:
    """tf.Transform preprocessing: raw features -> padded integer-id tensors.

    Returns `(batch,)` int64 `user_id`, `item_id`, `item_category`;
    `(batch, max_seq_len)` int64 `source_item_ids`, `source_categories`,
    `target_item_ids`, `target_categories`; `(batch,)` int64 `label` (when
    present), `target_history_length` and string `target_history_bucket`;
    `(batch,)` int64 `candidate_clicks_bucket` and `candidate_age_bucket`
    (`log2_bucket`), and string `candidate_known` ("known" when the candidate
    is in the target-item vocabulary); `(batch,)` int64 `item_brand` and
    `item_price_bucket`, and `(batch, max_item_tags)` int64 `item_tags` (the
    first `max_item_tags` tags, right-padded with 0).
    """
    config = transform_config(custom_config)
    max_len = config.max_seq_len
    oov = config.num_oov_buckets
    # tf.Transform warns that a threshold of 1 is a no-op and wants None.
    threshold = config.frequency_threshold if config.frequency_threshold > 1 else None

    user = _scalar(inputs[F.USER_ID], "")
    item = _scalar(inputs[F.ITEM_ID], "")
    item_category = _scalar(inputs[F.ITEM_CATEGORY], "")
    source_items = _sequence(inputs[F.SOURCE_ITEM_IDS])
    source_categories = _sequence(inputs[F.SOURCE_CATEGORIES])
    target_items = _sequence(inputs[F.TARGET_ITEM_IDS])
    target_categories = _sequence(inputs[F.TARGET_CATEGORIES])
    # Optional (old data, serving requests): absent means "" / no tags.
    brand = _optional_scalar(inputs, F.ITEM_BRAND, item)
    price_bucket = _optional_scalar(inputs, F.ITEM_PRICE_BUCKET, item)
    # Tags have no order of recency: keep the first `max_item_tags`. Tags past
    # them are never looked up, so they do not enter the vocabulary either.
    tags = _optional_sequence(inputs, F.ITEM_TAGS, item)[:, : config.max_item_tags]
    outputs: dict[str, tf.Tensor] = {}

    # --- analyzers (run over the train split only) ---
    user_vocab = tft.vocabulary(user, vocab_filename=USER_VOCAB)
    clicked = item
    if F.LABEL in inputs:
        clicked = tf.boolean_mask(item, tf.equal(_scalar(inputs[F.LABEL], 0), 1))
    target_vocab = tft.vocabulary(
        tf.concat([clicked, target_items.flat_values], axis=0),
        vocab_filename=TARGET_ITEM_VOCAB,
        frequency_threshold=threshold,
    )
    source_vocab = tft.vocabulary(
        source_items.flat_values,
        vocab_filename=SOURCE_ITEM_VOCAB,
        frequency_threshold=threshold,
    )
    category_vocab = tft.vocabulary(
        tf.concat(
            [item_category, source_categories.flat_values, target_categories.flat_values],
            axis=0,
        ),
        vocab_filename=CATEGORY_VOCAB,
    )
    brand_vocab = tft.vocabulary(brand, vocab_filename=BRAND_VOCAB)
    price_bucket_vocab = tft.vocabulary(price_bucket, vocab_filename=PRICE_BUCKET_VOCAB)
    tag_vocab = tft.vocabulary(tags.flat_values, vocab_filename=TAG_VOCAB)

    # --- mapping ---
    outputs[F.USER_ID] = _ids(user, user_vocab, oov)
    outputs[F.ITEM_ID] = _ids(item, target_vocab, oov)
    outputs[F.ITEM_CATEGORY] = _ids(item_category, category_vocab, oov)
    # Histories are oldest first: keep the most recent `max_len` entries.
    outputs[F.SOURCE_ITEM_IDS] = _pad(_ids(source_items[:, -max_len:], source_vocab, oov), max_len)
    outputs[F.SOURCE_CATEGORIES] = _pad(
        _ids(source_categories[:, -max_len:], category_vocab, oov), max_len
    )
    outputs[F.TARGET_ITEM_IDS] = _pad(_ids(target_items[:, -max_len:], target_vocab, oov), max_len)
    outputs[F.TARGET_CATEGORIES] = _pad(
        _ids(target_categories[:, -max_len:], category_vocab, oov), max_len
    )
    outputs[F.ITEM_BRAND] = _ids(brand, brand_vocab, oov)
    outputs[F.ITEM_PRICE_BUCKET] = _ids(price_bucket, price_bucket_vocab, oov)
    outputs[F.ITEM_TAGS] = _pad(_ids(tags, tag_vocab, oov), config.max_item_tags)
    known = tft.apply_vocabulary(item, target_vocab, default_value=-1) >= 0
    outputs[F.CANDIDATE_KNOWN] = tf.where(known, F.KNOWN, F.UNKNOWN)
    for raw_name, name, num_buckets in (
        (F.CANDIDATE_PRIOR_CLICKS, F.CANDIDATE_CLICKS_BUCKET, CLICK_COUNT_BUCKETS),
        (F.CANDIDATE_AGE, F.CANDIDATE_AGE_BUCKET, AGE_BUCKETS),
    ):
        # Optional at serving time: absent or empty means unknown (-1).
        if raw_name in inputs:
            value = _scalar(inputs[raw_name], tf.constant(-1, tf.int64))
        else:
            value = tf.fill(tf.shape(item), tf.constant(-1, tf.int64))
        outputs[name] = log2_bucket(value, num_buckets)
    length = tf.cast(target_items.row_lengths(), tf.int64)
    outputs[F.TARGET_HISTORY_LENGTH] = length
    outputs[F.TARGET_HISTORY_BUCKET] = history_bucket(length)
    if F.LABEL in inputs:
        outputs[F.LABEL] = tf.cast(_scalar(inputs[F.LABEL], 0), tf.int64)
    return outputs


def table_size(
    tf_transform_output: tft.TFTransformOutput, vocabulary: str, num_oov_buckets: int
) -> int:
    """The embedding-table size of one vocabulary's ids: padding 0 + vocabulary + OOV buckets."""
    return tf_transform_output.vocabulary_size_by_name(vocabulary) + num_oov_buckets + 1


def vocab_sizes(tf_transform_output: tft.TFTransformOutput, num_oov_buckets: int) -> dict[str, int]:
    """Embedding-table sizes (padding id 0 + vocabulary + OOV buckets)."""

    def size(name: str) -> int:
        return table_size(tf_transform_output, name, num_oov_buckets)

    return {
        "num_users": size(USER_VOCAB),
        "num_source_items": size(SOURCE_ITEM_VOCAB),
        "num_target_items": size(TARGET_ITEM_VOCAB),
        "num_categories": size(CATEGORY_VOCAB),
    }


def item_attribute_vocab_sizes(
    tf_transform_output: tft.TFTransformOutput, num_oov_buckets: int
) -> dict[str, int]:
    """Embedding-table sizes of the candidate's attributes (padding + vocabulary + OOV).

    `{"brand": ..., "price_bucket": ..., "tags": ...}`, for an item tower over
    `features.ITEM_ATTRIBUTE_FEATURES`; apart from `vocab_sizes`, which sizes
    the ranker. When the train split has no value at all (e.g. data converted
    before the attributes existed), tf.Transform writes one placeholder token
    into the empty vocabulary, so the size is then `num_oov_buckets + 2`.
    """

    def size(name: str) -> int:
        return table_size(tf_transform_output, name, num_oov_buckets)

    return {
        "brand": size(BRAND_VOCAB),
        "price_bucket": size(PRICE_BUCKET_VOCAB),
        "tags": size(TAG_VOCAB),
    }
