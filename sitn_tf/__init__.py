"""sitn-tf: Self-Supervised Interest Transfer Network (Sun et al., AAAI 2023) in Keras 3."""

__version__ = "0.1.0"
