"""`CTRModel`: the click-through-rate task that `SITNRanker` and `DIN` share (Eq. 9).

As TFRS's ranking task does, the model owns its loss and its metrics: a
ranker compiled with no `loss` trains with the binary cross-entropy of
Eq. 9, `L = -(1/N) sum_i [y_i log y_hat_i + (1 - y_i) log(1 - y_hat_i)]`,
and reports AUC and logloss, so `fit`/`evaluate` log `loss`, `auc` and
`logloss` (and `val_*` on validation data).
"""

from __future__ import annotations

import keras

from sitn_tf.defaults import AGE_BUCKETS, CLICK_COUNT_BUCKETS
from sitn_tf.layers import CandidateStatistics

AUC = "auc"
LOGLOSS = "logloss"


def ctr_metrics() -> list[keras.metrics.Metric]:
    """Fresh AUC and logloss metrics, named as the training API and the reports read them."""
    return [keras.metrics.AUC(name=AUC), keras.metrics.BinaryCrossentropy(name=LOGLOSS)]


def candidate_statistics(config) -> CandidateStatistics | None:
    """The head's `CandidateStatistics` layer, or None when `config.item_statistics` is off.

    Its tables match the Transform's buckets (`features.MODEL_STAT_FEATURES`:
    click count, then age).
    """
    if not config.item_statistics:
        return None
    return CandidateStatistics(
        (CLICK_COUNT_BUCKETS, AGE_BUCKETS),
        config.statistics_dim,
        unknown_rate=config.statistics_unknown_rate,
        name="candidate_statistics",
    )


class CTRModel(keras.Model):
    """A `keras.Model` that compiles with Eq. 9's loss and the CTR metrics by default."""

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs) -> None:
        """Keras `compile`; `loss` defaults to BCE (Eq. 9), `metrics` to AUC and logloss."""
        super().compile(
            optimizer=optimizer,
            loss=keras.losses.BinaryCrossentropy() if loss is None else loss,
            metrics=ctr_metrics() if metrics is None else metrics,
            **kwargs,
        )

    # Keras skips restoring the compile state of a saved model whose class
    # overrides `compile` unless the class restores it itself: our `compile`
    # takes Keras' arguments, so the saved ones go straight back in.
    def compile_from_config(self, config) -> None:
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)
