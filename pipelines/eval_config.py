"""The Evaluator's (TFMA) configuration: metrics, slices and blessing thresholds."""

from __future__ import annotations

from tensorflow_model_analysis.proto import config_pb2

from pipelines import serving
from sitn_tf import features as F

# TFMA metric classes; their output names are the snake_case forms
# (`auc`, `binary_crossentropy`, `calibration`, `example_count`, ...).
METRICS = (
    "ExampleCount",
    "AUC",
    "BinaryCrossEntropy",
    "Calibration",
    "MeanLabel",
    "MeanPrediction",
    "CalibrationPlot",
)


def eval_config(min_auc: float = 0.5, max_auc_drop: float = 0.01) -> config_pb2.EvalConfig:
    """AUC, logloss, calibration, count and mean label: overall, by target-history bucket and by known/unknown candidate.

    Blessing, on the overall slice: AUC must exceed `min_auc` (absolute), and must not fall more than
    `max_auc_drop` below the last blessed model's AUC (the baseline the
    pipeline's LatestBlessedModelStrategy resolver supplies; the first model
    has none and is judged on the absolute bound alone).
    """
    if not 0.0 <= min_auc < 1.0:
        raise ValueError(f"`min_auc` must be in [0, 1), got {min_auc}")
    if max_auc_drop < 0:
        raise ValueError(f"`max_auc_drop` must be >= 0, got {max_auc_drop}")
    auc_threshold = config_pb2.MetricThreshold(
        value_threshold=config_pb2.GenericValueThreshold(lower_bound={"value": min_auc}),
        change_threshold=config_pb2.GenericChangeThreshold(
            direction=config_pb2.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -max_auc_drop},
        ),
    )
    metrics = [config_pb2.MetricConfig(class_name=name) for name in METRICS]
    # Blessing reads the overall slice only. A threshold on `threshold` would
    # apply to every slice: a small history bucket's noisy AUC could then
    # block a good model, and the "unknown" candidate slice (positives only,
    # since negatives are always known items) has no AUC at all.
    metrics[METRICS.index("AUC")].per_slice_thresholds.append(
        config_pb2.PerSliceMetricThreshold(
            slicing_specs=[config_pb2.SlicingSpec()], threshold=auc_threshold
        )
    )
    return config_pb2.EvalConfig(
        model_specs=[
            config_pb2.ModelSpec(
                signature_name="serving_default",
                label_key=F.LABEL,
                prediction_key=serving.PROBABILITY,
                preprocessing_function_names=[serving.TRANSFORM_FEATURES],
            )
        ],
        slicing_specs=[
            config_pb2.SlicingSpec(),
            config_pb2.SlicingSpec(feature_keys=[F.TARGET_HISTORY_BUCKET]),
            # Sampled negatives are always known items, so "unknown" alone
            # predicts a click: the "known" slice is the one to compare on.
            config_pb2.SlicingSpec(feature_keys=[F.CANDIDATE_KNOWN]),
        ],
        metrics_specs=[config_pb2.MetricsSpec(metrics=metrics)],
    )
