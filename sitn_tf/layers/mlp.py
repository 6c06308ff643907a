"""A plain feed-forward stack, used for the multi-view projection (Eq. 6),
the DIN activation unit and the CTR head (Eq. 8)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from sitn_tf.checks import check_rate, check_units


@keras.saving.register_keras_serializable(package="sitn_tf")
class MLP(keras.layers.Layer):
    """Dense layers `units[0] -> ... -> units[-1]`.

    Hidden layers use `activation` followed by dropout; the last layer uses
    `output_activation` (linear by default) and no dropout.

    Args:
        units: widths of the dense layers, the last one being the output width.
        activation: activation of the hidden layers.
        output_activation: activation of the last layer, e.g. `"sigmoid"`.
        dropout: dropout rate after each hidden layer, in `[0, 1)`.
        kernel_initializer: initializer of every kernel.

    Shapes: `(..., in_dim) -> (..., units[-1])`.
    """

    def __init__(
        self,
        units: Sequence[int],
        activation: str | None = "relu",
        output_activation: str | None = None,
        dropout: float = 0.0,
        kernel_initializer: str | keras.initializers.Initializer = "glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        units = check_units("units", units)
        if not units:
            raise ValueError("`units` must not be empty.")
        check_rate("dropout", dropout)
        self.units = units
        self.activation = activation
        self.output_activation = output_activation
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.dense_layers = [
            keras.layers.Dense(
                width,
                activation=activation if i < len(units) - 1 else output_activation,
                kernel_initializer=self.kernel_initializer,
                name=f"dense_{i}",
            )
            for i, width in enumerate(units)
        ]
        self.dropout_layer = keras.layers.Dropout(dropout) if dropout > 0 else None

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.dense_layers:
            layer.build(shape)
            shape = shape[:-1] + (layer.units,)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        last = len(self.dense_layers) - 1
        for i, layer in enumerate(self.dense_layers):
            x = layer(x)
            if i < last and self.dropout_layer is not None:
                x = self.dropout_layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.units[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": list(self.units),
                "activation": self.activation,
                "output_activation": self.output_activation,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
