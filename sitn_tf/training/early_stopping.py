"""Early stopping on eval AUC that refuses epochs whose eval logloss has run away."""

from __future__ import annotations

import math

import keras


class GuardedEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` on `monitor`, with a ceiling on a second metric.

    With fixed negatives, stage 2 can keep ranking slightly better while its
    probabilities drift far from calibrated: eval AUC creeps up as eval
    logloss climbs. Such an epoch is a poor CTR model, so with `max_rise`
    set an epoch is eligible as the best one only if

        guard(epoch) <= (1 + max_rise) * min(guard(e) for e <= epoch),

    i.e. its eval logloss is at most `max_rise` (relative) above the lowest
    seen so far. An ineligible epoch counts as no improvement for
    `patience`, and its weights are never restored. With `max_rise=None`
    this is Keras' `EarlyStopping` unchanged.

    Args:
        guard: the logged metric that must not run away (e.g. `val_logloss`).
        max_rise: allowed relative rise over the lowest `guard`, >= 0, or
            None for no guard.
        **kwargs: `keras.callbacks.EarlyStopping`'s arguments (`monitor`,
            `mode`, `patience`, `restore_best_weights`, ...).

    Attributes:
        lowest_guard: the lowest `guard` seen so far (None before the first
            epoch); part of what a training backup keeps.
        refused_epochs: 0-based epochs refused by the guard.
    """

    def __init__(self, guard: str = "val_logloss", max_rise: float | None = None, **kwargs):
        super().__init__(**kwargs)
        if max_rise is not None and (
            isinstance(max_rise, bool) or not isinstance(max_rise, (int, float)) or max_rise < 0
        ):
            raise ValueError(f"`max_rise` must be None or a number >= 0, got {max_rise!r}.")
        if max_rise is not None and self.mode not in ("min", "max"):
            raise ValueError(f"`mode` must be 'min' or 'max' with a guard, got {self.mode!r}.")
        self.guard = guard
        self.max_rise = None if max_rise is None else float(max_rise)
        self.lowest_guard: float | None = None
        self.refused_epochs: list[int] = []

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.lowest_guard = None
        self.refused_epochs = []

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.max_rise is not None and self.guard in logs:
            value = float(logs[self.guard])
            if math.isfinite(value):
                self.lowest_guard = (
                    value if self.lowest_guard is None else min(self.lowest_guard, value)
                )
            if not math.isfinite(value) or value > (1.0 + self.max_rise) * self.lowest_guard:
                self.refused_epochs.append(int(epoch))
                # The worst possible monitored value: never an improvement.
                logs[self.monitor] = math.inf if self.mode == "min" else -math.inf
        super().on_epoch_end(epoch, logs)
