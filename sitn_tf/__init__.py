"""sitn-tf: Self-Supervised Interest Transfer Network (Sun et al., AAAI 2023) in Keras 3."""

__version__ = "0.1.0"

__all__ = ["DIN", "SITNConfig", "SITNPretrainer", "SITNRanker", "__version__"]

_MODELS = {"DIN", "SITNConfig", "SITNPretrainer", "SITNRanker"}


def __getattr__(name):
    # Lazy, so that `sitn_tf.features` and the data tools do not pay for
    # importing Keras and TensorFlow.
    if name in _MODELS:
        from sitn_tf import models

        return getattr(models, name)
    raise AttributeError(f"module 'sitn_tf' has no attribute {name!r}")
