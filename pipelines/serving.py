"""The exported SavedModel: the TF Serving contract.

Signatures (the Transform graph is embedded, so clients never see
vocabularies):

* `serving_default(examples)`: a batch of serialized raw `tf.Example`s
  (`(batch,)` string, the converter's data contract without `label`) ->
  `{"probability": (batch,)}`.
* `serving_raw(user_id, item_id, item_category, source_item_ids,
  source_categories, target_item_ids, target_categories)`: the raw features
  as tensors, for clients that build no `tf.Example`s. Scalars are
  `(batch,)` strings; histories are `(batch, None)` strings, oldest first,
  right-padded with `""` (an empty item id marks padding; its category entry
  is ignored). -> `{"probability": (batch,)}`.
* `transform_features(examples)`: the transformed features, used by the
  Evaluator (TFMA) for slicing on `target_history_bucket`.
* `score_candidates(user_id, item_id, item_category, source_item_ids,
  source_categories, target_item_ids, target_categories,
  candidate_prior_clicks, candidate_age)`: N candidates for one user's
  histories in one call. `user_id` is `(1,)`, the histories `(1, None)` as
  in `serving_raw`, `item_id` and `item_category` `(N,)` strings, the
  candidates' statistics `(N,)` int64 (or `(1,)` for all N; a negative
  value is "unknown", so `[-1]` sends none) -> `{"probability": (N,)}`,
  equal to N `tf.Example`s with the histories repeated. The Transform maps
  each history item once, and the encoders run once for all N candidates
  (`SITNRanker.score`).

`user_id` and `item_category` may be omitted from a `tf.Example` (they
default to `""`); `event_timestamp` is not read. The candidate statistics
(`candidate_prior_clicks`, `candidate_age`) are optional in a `tf.Example`:
a missing one means "unknown" to a model trained with
`SITNConfig.item_statistics` (`sitn_tf.layers.CandidateStatistics`).
`serving_raw` takes no statistics, so it always scores with them unknown.
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_transform as tft

from sitn_tf import features as F

PROBABILITY = "probability"
SERVING_RAW = "serving_raw"
TRANSFORM_FEATURES = "transform_features"
SCORE_CANDIDATES = "score_candidates"

# Features a client need not send in a tf.Example.
_OPTIONAL_DEFAULTS = {F.USER_ID: "", F.ITEM_CATEGORY: ""}


def serving_feature_spec(tf_transform_output: tft.TFTransformOutput) -> dict:
    """The raw parsing spec for requests: no label, no timestamp, lenient scalars."""
    spec = dict(tf_transform_output.raw_feature_spec())
    spec.pop(F.LABEL, None)
    spec.pop(F.EVENT_TIMESTAMP, None)
    for name, default in _OPTIONAL_DEFAULTS.items():
        feature = spec.get(name)
        if isinstance(feature, tf.io.FixedLenFeature):
            spec[name] = tf.io.FixedLenFeature(feature.shape, feature.dtype, default_value=default)
    missing = [n for n in F.SCALAR_BYTES_FEATURES + F.SEQUENCE_FEATURES if n not in spec]
    if missing:
        raise ValueError(f"the Transform's raw schema lacks feature(s) {missing}")
    return spec


def _dense_to_sparse(values: tf.Tensor, present: tf.Tensor) -> tf.SparseTensor:
    """Keeps `values[present]`, left-aligned per row, as a `(batch, None)` SparseTensor."""
    ragged = tf.ragged.boolean_mask(values, present)
    return ragged.to_sparse()


def _raw_scalar_like(spec_feature, values: tf.Tensor):
    if isinstance(spec_feature, tf.io.FixedLenFeature) and list(spec_feature.shape) == [1]:
        return tf.expand_dims(values, 1)
    if isinstance(spec_feature, tf.io.VarLenFeature):
        return tf.sparse.from_dense(tf.expand_dims(values, 1))
    return values


class ServingModule(tf.Module):
    """Holds the model and the Transform layer; its tf.functions are the signatures."""

    def __init__(self, model: keras.Model, tf_transform_output: tft.TFTransformOutput):
        super().__init__()
        self.model = model
        self.tft_layer = tf_transform_output.transform_features_layer()
        self._spec = serving_feature_spec(tf_transform_output)

    def _statistics(self, values: dict) -> dict:
        """Raw candidate-statistic features from `(batch,)` int64 values, negative = unknown.

        A negative value becomes an absent one, which the Transform maps to
        bucket 0 ("unknown"); a statistic the Transform was built without is
        left out (absent is unknown there already).
        """
        return {
            name: _dense_to_sparse(v[:, None], (v >= 0)[:, None])
            for name, v in values.items()
            if name in self._spec
        }

    def _predict(self, raw: dict) -> dict:
        transformed = self.tft_layer(raw)
        inputs = {name: transformed[name] for name in F.MODEL_INPUT_FEATURES}
        probability = tf.reshape(self.model(inputs, training=False), [-1])
        return {PROBABILITY: tf.cast(probability, tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, examples):
        return self._predict(tf.io.parse_example(examples, self._spec))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name=F.USER_ID),
            tf.TensorSpec([None], tf.string, name=F.ITEM_ID),
            tf.TensorSpec([None], tf.string, name=F.ITEM_CATEGORY),
            tf.TensorSpec([None, None], tf.string, name=F.SOURCE_ITEM_IDS),
            tf.TensorSpec([None, None], tf.string, name=F.SOURCE_CATEGORIES),
            tf.TensorSpec([None, None], tf.string, name=F.TARGET_ITEM_IDS),
            tf.TensorSpec([None, None], tf.string, name=F.TARGET_CATEGORIES),
        ]
    )
    def serve_raw(
        self,
        user_id,
        item_id,
        item_category,
        source_item_ids,
        source_categories,
        target_item_ids,
        target_categories,
    ):
        source_present = tf.not_equal(source_item_ids, "")
        target_present = tf.not_equal(target_item_ids, "")
        raw = {
            F.USER_ID: _raw_scalar_like(self._spec[F.USER_ID], user_id),
            F.ITEM_ID: _raw_scalar_like(self._spec[F.ITEM_ID], item_id),
            F.ITEM_CATEGORY: _raw_scalar_like(self._spec[F.ITEM_CATEGORY], item_category),
            F.SOURCE_ITEM_IDS: _dense_to_sparse(source_item_ids, source_present),
            F.SOURCE_CATEGORIES: _dense_to_sparse(source_categories, source_present),
            F.TARGET_ITEM_IDS: _dense_to_sparse(target_item_ids, target_present),
            F.TARGET_CATEGORIES: _dense_to_sparse(target_categories, target_present),
        }
        unknown = tf.fill(tf.shape(item_id), tf.constant(-1, tf.int64))
        raw.update(self._statistics({name: unknown for name in F.CANDIDATE_STAT_FEATURES}))
        return self._predict(raw)

    @tf.function(
        input_signature=[
            tf.TensorSpec([1], tf.string, name=F.USER_ID),
            tf.TensorSpec([None], tf.string, name=F.ITEM_ID),
            tf.TensorSpec([None], tf.string, name=F.ITEM_CATEGORY),
            tf.TensorSpec([1, None], tf.string, name=F.SOURCE_ITEM_IDS),
            tf.TensorSpec([1, None], tf.string, name=F.SOURCE_CATEGORIES),
            tf.TensorSpec([1, None], tf.string, name=F.TARGET_ITEM_IDS),
            tf.TensorSpec([1, None], tf.string, name=F.TARGET_CATEGORIES),
            tf.TensorSpec([None], tf.int64, name=F.CANDIDATE_PRIOR_CLICKS),
            tf.TensorSpec([None], tf.int64, name=F.CANDIDATE_AGE),
        ]
    )
    def score_candidates(
        self,
        user_id,
        item_id,
        item_category,
        source_item_ids,
        source_categories,
        target_item_ids,
        target_categories,
        candidate_prior_clicks,
        candidate_age,
    ):
        # One Transform call over N + 1 rows: row 0 carries the histories
        # (and no real candidate), rows 1..N the candidates with empty
        # histories. The Transform is row-wise, so row 0's histories map as
        # they would in any row, and each history item is looked up once.
        count = tf.shape(item_id)[0]
        rows = count + 1
        histories = {}
        for name, values, present in (
            (F.SOURCE_ITEM_IDS, source_item_ids, tf.not_equal(source_item_ids, "")),
            (F.SOURCE_CATEGORIES, source_categories, tf.not_equal(source_item_ids, "")),
            (F.TARGET_ITEM_IDS, target_item_ids, tf.not_equal(target_item_ids, "")),
            (F.TARGET_CATEGORIES, target_categories, tf.not_equal(target_item_ids, "")),
        ):
            kept = tf.boolean_mask(values[0], present[0])
            lengths = tf.concat([tf.shape(kept, out_type=tf.int64), tf.zeros([count], tf.int64)], 0)
            histories[name] = tf.RaggedTensor.from_row_lengths(kept, lengths).to_sparse()
        raw = {
            F.USER_ID: _raw_scalar_like(self._spec[F.USER_ID], tf.fill([rows], user_id[0])),
            F.ITEM_ID: _raw_scalar_like(self._spec[F.ITEM_ID], tf.concat([[""], item_id], 0)),
            F.ITEM_CATEGORY: _raw_scalar_like(
                self._spec[F.ITEM_CATEGORY], tf.concat([[""], item_category], 0)
            ),
            **histories,
        }
        raw.update(
            self._statistics(
                {
                    # Row 0 has no candidate; a `(1,)` input serves all N.
                    name: tf.concat([[-1], tf.broadcast_to(values, [count])], 0)
                    for name, values in (
                        (F.CANDIDATE_PRIOR_CLICKS, candidate_prior_clicks),
                        (F.CANDIDATE_AGE, candidate_age),
                    )
                }
            )
        )
        transformed = self.tft_layer(raw)
        per_candidate = (F.ITEM_ID, F.ITEM_CATEGORY, *F.MODEL_STAT_FEATURES)
        inputs = {
            name: transformed[name][1:] if name in per_candidate else transformed[name][:1]
            for name in F.MODEL_INPUT_FEATURES
        }
        probability = self.model.score(
            inputs, history_index=tf.zeros([count], tf.int32), training=False
        )
        return {PROBABILITY: tf.cast(tf.reshape(probability, [-1]), tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(self, examples):
        return self.tft_layer(tf.io.parse_example(examples, self._spec))


def export_serving_model(
    model: keras.Model, tf_transform_output: tft.TFTransformOutput, export_dir: str
) -> None:
    """Writes the SavedModel with the four signatures above to `export_dir`."""
    module = ServingModule(model, tf_transform_output)
    signatures = {
        "serving_default": module.serve_examples.get_concrete_function(),
        SERVING_RAW: module.serve_raw.get_concrete_function(),
        TRANSFORM_FEATURES: module.transform_features.get_concrete_function(),
        SCORE_CANDIDATES: module.score_candidates.get_concrete_function(),
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)
