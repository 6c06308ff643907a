"""Feature names: the single place in Python that spells them.

The contract itself is `feature_specs/schema.pbtxt`; `tests/test_features.py`
keeps the two in sync. Every other module imports names from here.
"""

from __future__ import annotations

# Raw `tf.Example` features written by the converter (sitn_tf.data).
USER_ID = "user_id"
ITEM_ID = "item_id"  # the candidate target-domain item
ITEM_CATEGORY = "item_category"  # "" when unknown
SOURCE_ITEM_IDS = "source_item_ids"  # source-domain history, oldest first
SOURCE_CATEGORIES = "source_categories"  # aligned with SOURCE_ITEM_IDS
TARGET_ITEM_IDS = "target_item_ids"  # target-domain history, may be empty
TARGET_CATEGORIES = "target_categories"  # aligned with TARGET_ITEM_IDS
LABEL = "label"  # int64, 0 or 1
EVENT_TIMESTAMP = "event_timestamp"  # int64 unix seconds of the instance
# Statistics of the candidate from clicks before the instance, never its own
# (definitions per `--time_order`: sitn_tf/data/item_stats.py).
CANDIDATE_PRIOR_CLICKS = "candidate_prior_clicks"  # int64 >= 0
CANDIDATE_SEEN = "candidate_seen"  # int64 1 if candidate_prior_clicks >= 1, else 0
CANDIDATE_AGE = "candidate_age"  # int64 time since its first click; 0 unseen, -1 unknown
# Attributes of the candidate from the item metadata. Optional: data converted
# before they existed, and serving requests, may leave them out.
ITEM_BRAND = "item_brand"  # one value, "" when unknown
ITEM_PRICE_BUCKET = "item_price_bucket"  # one value, "" when unknown
ITEM_TAGS = "item_tags"  # any number of tags, may be empty

SCALAR_BYTES_FEATURES = (USER_ID, ITEM_ID, ITEM_CATEGORY)
SEQUENCE_FEATURES = (
    SOURCE_ITEM_IDS,
    SOURCE_CATEGORIES,
    TARGET_ITEM_IDS,
    TARGET_CATEGORIES,
)
CANDIDATE_STAT_FEATURES = (CANDIDATE_PRIOR_CLICKS, CANDIDATE_SEEN, CANDIDATE_AGE)
INT_FEATURES = (LABEL, EVENT_TIMESTAMP) + CANDIDATE_STAT_FEATURES
# Optional raw features: at most one value (scalars) or any number (tags),
# and allowed to be missing from an example.
OPTIONAL_SCALAR_BYTES_FEATURES = (ITEM_BRAND, ITEM_PRICE_BUCKET)
OPTIONAL_SEQUENCE_FEATURES = (ITEM_TAGS,)
OPTIONAL_FEATURES = OPTIONAL_SCALAR_BYTES_FEATURES + OPTIONAL_SEQUENCE_FEATURES
REQUIRED_FEATURES = SCALAR_BYTES_FEATURES + SEQUENCE_FEATURES + INT_FEATURES
ALL_FEATURES = REQUIRED_FEATURES + OPTIONAL_FEATURES

# Model inputs: the same names carry integer ids after Transform
# (0 = padding, sequences padded/truncated to max_seq_len).
MODEL_ID_FEATURES = (
    ITEM_ID,
    ITEM_CATEGORY,
    SOURCE_ITEM_IDS,
    SOURCE_CATEGORIES,
    TARGET_ITEM_IDS,
    TARGET_CATEGORIES,
)

# Model inputs made by the Transform from the candidate statistics above:
# bucket ids, 0 = unknown (the feature is missing, or -1), 1 = "never clicked
# before" (`candidate_prior_clicks` = 0, `candidate_age` = 0), then one bucket
# per power of two (`sitn_tf.preprocessing.log2_bucket`).
CANDIDATE_CLICKS_BUCKET = "candidate_clicks_bucket"
CANDIDATE_AGE_BUCKET = "candidate_age_bucket"
MODEL_STAT_FEATURES = (CANDIDATE_CLICKS_BUCKET, CANDIDATE_AGE_BUCKET)
# Every model input the Transform writes; a model reads the statistics only
# when `SITNConfig.item_statistics` is on.
MODEL_INPUT_FEATURES = MODEL_ID_FEATURES + MODEL_STAT_FEATURES

# Transformed-only outputs of the pipeline's Transform (not model inputs): the
# unpadded target history length and its bucket, for cold-start eval slices.
TARGET_HISTORY_LENGTH = "target_history_length"
TARGET_HISTORY_BUCKET = "target_history_bucket"
# The values of TARGET_HISTORY_BUCKET: (shortest, longest or None, name) of
# each target-history length bucket; the Evaluator's slices and the
# experiment reports' AUC by history length use the same buckets.
HISTORY_BUCKETS = ((0, 0, "0"), (1, 2, "1-2"), (3, 5, "3-5"), (6, None, "6+"))
# "known" when the candidate `item_id` is in the Transform's target-item
# vocabulary (built from the train split), else "unknown": the Evaluator's
# known/unknown-candidate slice. Sampled negatives are always known, so
# compare models on the "known" slice first.
CANDIDATE_KNOWN = "candidate_known"
KNOWN, UNKNOWN = "known", "unknown"

# Transformed-only outputs, not ranker inputs: the candidate's attributes as
# ids (0 = padding, 1..V known, then OOV ids), for an item tower built on the
# pipeline's examples. Same names as the raw features, like the model inputs:
# `(batch,)` int64 brand and price bucket, `(batch, max_item_tags)` int64 tags.
ITEM_ATTRIBUTE_FEATURES = (ITEM_BRAND, ITEM_PRICE_BUCKET, ITEM_TAGS)
