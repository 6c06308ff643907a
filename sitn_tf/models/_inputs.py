"""Input checks shared by the models: clear errors naming the feature."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from keras import ops

from sitn_tf import features

logger = logging.getLogger(__name__)


def sequence_features(config) -> dict[str, tuple[str, str | None]]:
    """`{domain: (ids feature, categories feature or None)}` for the encoders."""
    with_categories = config.num_categories > 0
    return {
        "source": (
            features.SOURCE_ITEM_IDS,
            features.SOURCE_CATEGORIES if with_categories else None,
        ),
        "target": (
            features.TARGET_ITEM_IDS,
            features.TARGET_CATEGORIES if with_categories else None,
        ),
    }


def candidate_features(config) -> tuple[str, str | None]:
    return features.ITEM_ID, features.ITEM_CATEGORY if config.num_categories > 0 else None


def get_ids(inputs: Mapping, names: Sequence[str | None], model: str, max_seq_len: int | None):
    """Returns the id tensors of `names` (None stays None), checking each.

    Sequences must be `(batch, seq_len)` with `seq_len <= max_seq_len`;
    candidates (`max_seq_len=None`) may be `(batch,)` or `(batch, 1)` and
    come back as `(batch,)`.
    """
    if not isinstance(inputs, Mapping):
        raise TypeError(
            f"{model} expects a dict of id tensors keyed by sitn_tf.features names, "
            f"got {type(inputs).__name__}."
        )
    missing = [name for name in names if name is not None and name not in inputs]
    if missing:
        raise KeyError(f"{model} is missing input feature(s) {missing}; got {sorted(inputs)}.")
    out = []
    for name in names:
        if name is None:
            out.append(None)
            continue
        tensor = ops.convert_to_tensor(inputs[name])
        dtype = str(tensor.dtype)
        if "int" not in dtype:
            raise TypeError(
                f"Feature {name!r} must hold integer ids (0 = padding), got dtype {dtype}; "
                "map raw values to ids first (the pipeline's Transform does this)."
            )
        rank = len(tensor.shape)
        if max_seq_len is None:
            if rank == 2 and tensor.shape[1] == 1:
                tensor = ops.squeeze(tensor, 1)
            elif rank != 1:
                raise ValueError(
                    f"Feature {name!r} must have shape (batch,) or (batch, 1), got {tensor.shape}."
                )
        else:
            if rank != 2:
                raise ValueError(
                    f"Feature {name!r} must be a padded (batch, seq_len) id matrix, "
                    f"got shape {tensor.shape}."
                )
            if tensor.shape[1] is not None and tensor.shape[1] > max_seq_len:
                raise ValueError(
                    f"Feature {name!r} has sequence length {tensor.shape[1]} > "
                    f"max_seq_len={max_seq_len}; truncate it upstream."
                )
        out.append(tensor)
    return out


def statistic_ids(inputs: Mapping, candidate, model: str) -> list:
    """The candidate-statistic bucket ids `(batch,)`, in `features.MODEL_STAT_FEATURES` order.

    A statistic absent from `inputs` is "unknown" (bucket 0) for every row:
    serving requests may omit them. That is logged once per trace, since a
    training input that lacks them would silently train without them.
    """
    out = []
    for name in features.MODEL_STAT_FEATURES:
        if name not in inputs:
            logger.warning("%s: input %r is absent; every row counts it as unknown.", model, name)
            out.append(ops.zeros_like(candidate))
            continue
        tensor = ops.convert_to_tensor(inputs[name])
        if "int" not in str(tensor.dtype):
            raise TypeError(
                f"Feature {name!r} must hold integer bucket ids, got dtype {tensor.dtype}."
            )
        if len(tensor.shape) == 2 and tensor.shape[1] == 1:
            tensor = ops.squeeze(tensor, 1)
        elif len(tensor.shape) != 1:
            raise ValueError(
                f"Feature {name!r} must have shape (batch,) or (batch, 1), got {tensor.shape}."
            )
        out.append(tensor)
    return out
