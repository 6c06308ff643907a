"""`flops.py` held to the models' variables.

`flops.py` describes each model by hand (FFN width `2 D`, an activation unit
on `4 D` inputs, a head on `3 D` or `2 D`, a multi-view MLP on `top_k D`, ...).
Here the count comes from the built model instead:

* every kernel (Dense `(in, out)`, the EinsumDense kernels of
  `MultiHeadAttention`, the trainable clusters `C` of `InterestClusters`)
  costs `2 * in * out` per row, `in` and `out` read off the variable's shape
  and the rows off the inputs it actually received in one forward pass (for
  stage 1 the pass includes the losses, as in training): so an encoder kernel
  counts `max_seq_len` times per example, the head once;
* only the products without weights follow `flops.py`'s documented formulas:
  attention scores and weighted values (`2 L^2` times the heads' widths read
  off the query and value kernels), target attention's weighted sum
  (`2 L D`), and stage 1's similarities against the batch (`4 B D`) and
  against the new clusters `U` (`3 * 2 K D + 2 D` per cluster set, `K` and
  `D` read off `C`, which has the shape of `U`);
* every variable must be either such a kernel or excluded by kind (biases,
  embedding and position tables, layer norms: elementwise work or lookups,
  not counted by `flops.py`'s convention), and every kernel must have been
  applied, so a new weight fails the census until someone decides how to
  count it.
"""

from __future__ import annotations

import contextlib
import functools
import math
from fractions import Fraction

import keras
import pytest

from sitn_tf.layers import CandidateStatistics, InterestClusters, SequenceEncoder, TargetAttention
from sitn_tf.models import DIN, SITNConfig, SITNPretrainer, SITNRanker
from sitn_tf.models import pretrainer as pretrainer_module
from sitn_tf.models import ranker as ranker_module
from sitn_tf.models._testing import random_batch
from sitn_tools.bench import flops

MODELS = {flops.STAGE1: SITNPretrainer, flops.STAGE2: SITNRanker, flops.DIN: DIN}
BATCH = 8


def _config(**values) -> SITNConfig:
    sizes = dict(num_source_items=30, num_target_items=25, num_categories=5, dropout=0.0)
    return SITNConfig(**{**sizes, **values})


CONFIGS = {
    # `_testing.tiny_config()`.
    "1_layer_top2": _config(
        embedding_dim=8,
        num_heads=2,
        num_layers=1,
        max_seq_len=6,
        granularities=(3, 5),
        top_k=2,
        multi_view_units=(8,),
        attention_units=(8,),
        mlp_units=(8,),
    ),
    "2_layers_top1": _config(
        embedding_dim=12,
        num_heads=3,
        num_layers=2,
        max_seq_len=5,
        granularities=(2, 4),
        top_k=1,
        multi_view_units=(8,),
        attention_units=(16, 4),
        mlp_units=(12, 6, 3),
    ),
    "2_layers_top3_i2c_only": _config(
        num_categories=0,
        embedding_dim=16,
        num_heads=4,
        num_layers=2,
        max_seq_len=7,
        granularities=(3, 4, 6),
        top_k=3,
        multi_view_units=(10, 6),
        attention_units=(5,),
        mlp_units=(7,),
        use_i2i=False,
    ),
    "no_blocks_i2i_only": _config(
        embedding_dim=4,
        num_heads=1,
        num_layers=0,
        max_seq_len=3,
        granularities=(2,),
        top_k=2,
        multi_view_units=(),
        attention_units=(3, 2),
        mlp_units=(),
        use_i2c=False,
    ),
}

# The layers whose variables are kernels, applied to the first argument of `call`.
KERNEL_LAYERS = (keras.layers.Dense, keras.layers.EinsumDense, InterestClusters)


def _layers(model):
    return model._flatten_layers(include_self=True, recursive=True)


def _kernel(layer):
    return layer.clusters if isinstance(layer, InterestClusters) else layer.kernel


def _census(model) -> dict[int, keras.Variable]:
    """The kernels of `model` by id; fails on a variable it cannot place."""
    kernels, excluded = {}, set()

    def exclude(*variables):
        excluded.update(id(v) for v in variables if v is not None)

    for layer in _layers(model):
        if isinstance(layer, KERNEL_LAYERS):
            kernels[id(_kernel(layer))] = _kernel(layer)
        if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)):
            exclude(layer.bias)  # elementwise
        elif isinstance(layer, keras.layers.Embedding):
            exclude(layer.embeddings)  # lookup
        elif isinstance(layer, keras.layers.LayerNormalization):
            exclude(getattr(layer, "gamma", None), getattr(layer, "beta", None))
        elif isinstance(layer, SequenceEncoder) and layer.use_positions:
            exclude(layer.position_embedding)  # lookup and elementwise add
        elif isinstance(layer, CandidateStatistics):
            exclude(*layer.tables)  # lookups
    unplaced = [w.path for w in model.weights if id(w) not in kernels and id(w) not in excluded]
    assert not unplaced, (
        f"variables neither counted nor excluded: {unplaced}; count them in flops.py "
        "(and here), or exclude their kind here"
    )
    return kernels


@contextlib.contextmanager
def _recording():
    """Records `(layer, input shape)` of every call of a `KERNEL_LAYERS` layer."""
    applications = []

    def recorder(original):
        @functools.wraps(original)
        def call(self, inputs, *args, **kwargs):
            applications.append((self, tuple(inputs.shape)))
            return original(self, inputs, *args, **kwargs)

        return call

    with pytest.MonkeyPatch.context() as patch:
        for cls in KERNEL_LAYERS:
            patch.setattr(cls, "call", recorder(cls.call))
        yield applications


def _application_flops(layer, input_shape) -> int:
    """FLOPs of one call over the whole batch: `2 * rows * in * out`."""
    kernel = tuple(_kernel(layer).shape)
    if isinstance(layer, InterestClusters):
        # Eq. 5's scores against `C`: `(rows, D) x (D, K)`.
        num_clusters, dim = kernel
        assert input_shape[-1] == dim
        return 2 * math.prod(input_shape[:-1]) * dim * num_clusters
    if isinstance(layer, keras.layers.Dense):
        inner, outer = kernel
        assert input_shape[-1] == inner
        return 2 * math.prod(input_shape[:-1]) * inner * outer
    # EinsumDense, e.g. "abc,cde->abde" (Q, K, V) or "abcd,cde->abe" (output).
    lhs, out_axes = layer.equation.split("->")
    in_axes, kernel_axes = lhs.split(",")
    assert "." not in layer.equation, layer.equation
    inputs = dict(zip(in_axes, input_shape, strict=True))
    sizes = dict(zip(kernel_axes, kernel, strict=True))
    assert all((a in in_axes) != (a in out_axes) for a in kernel_axes), layer.equation
    rows = math.prod(inputs[a] for a in in_axes if a not in kernel_axes)
    inner = math.prod(sizes[a] for a in kernel_axes if a in in_axes)
    outer = math.prod(sizes[a] for a in kernel_axes if a in out_axes)
    assert inner == math.prod(inputs[a] for a in in_axes if a in kernel_axes)
    return 2 * rows * inner * outer


def _weightless_flops(model, config: SITNConfig, batch_size: int) -> int:
    """Per example: the products without weights, by flops.py's documented formulas."""
    length, dim = config.max_seq_len, config.embedding_dim
    total = 0
    for layer in _layers(model):
        if isinstance(layer, keras.layers.MultiHeadAttention):
            heads, key_dim = layer.query_dense.kernel.shape[1:]
            value_heads, value_dim = layer.value_dense.kernel.shape[1:]
            # scores (L, L) per head, then weighted values
            total += 2 * length * length * (heads * key_dim + value_heads * value_dim)
        elif isinstance(layer, TargetAttention):
            total += 2 * length * dim  # weighted sum of the L keys
            # The activation unit's first kernel `(4 D, a_1)` is applied in
            # three parts (`TargetAttention`): keys `(L, D) x (D, a_1)` once
            # per history (every row of `random_batch` has its own), `k * v`
            # `(L, D) x (D, a_1)`, and the candidate `(D, a_1)` once.
            inner, outer = layer.activation_unit.dense_layers[0].kernel.shape
            part = 2 * (inner // 4) * outer
            total += 2 * length * part + part
        elif isinstance(layer, InterestClusters):
            # New clusters U (Eq. 5), top-k scores against U (Eq. 6), cluster
            # negatives against U and the positive score (Eq. 7).
            num_clusters, width = layer.clusters.shape
            total += 3 * 2 * num_clusters * width + 2 * width
    if isinstance(model, SITNPretrainer) and config.use_i2i:
        total += 2 * 2 * batch_size * dim  # two (B, B) similarity matrices (Eqs. 3-4)
    return total


def _count(model, config: SITNConfig, batch_size: int = BATCH) -> int:
    """Forward FLOPs per example of `model`, from its variables and one forward pass."""
    kernels = _census(model)
    x, _ = random_batch(config, batch=batch_size)
    # At full length, as flops.py counts by default: without XLA the rankers
    # drop the batch's common padded tail (flops.py's `attended_lengths`).
    model.jit_compile = True
    with _recording() as applications:
        outputs = model(x, training=False)
        if isinstance(model, SITNPretrainer):
            model.compute_ssl_losses(outputs, training=False)
    total, applied = 0, set()
    # Applied by `TargetAttention` through its parts (counted in `_weightless_flops`).
    for layer in _layers(model):
        if isinstance(layer, TargetAttention):
            applied.add(id(layer.activation_unit.dense_layers[0].kernel))
    for layer, input_shape in applications:
        assert id(_kernel(layer)) in kernels, f"{_kernel(layer).path} is not in model.weights"
        applied.add(id(_kernel(layer)))
        total += _application_flops(layer, input_shape)
    unused = [k.path for key, k in kernels.items() if key not in applied]
    assert not unused, f"kernels never applied in the forward pass: {unused}"
    per_example = Fraction(total, batch_size) + _weightless_flops(model, config, batch_size)
    assert per_example.denominator == 1, per_example
    return int(per_example)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("kind", flops.MODELS)
def test_forward_flops_match_the_models_variables(kind, name):
    config = CONFIGS[name]
    model = MODELS[kind](config)
    assert flops.forward_flops(kind, config, batch_size=BATCH) == _count(model, config)


def test_a_wider_ffn_than_flops_py_assumes_breaks_the_match(monkeypatch):
    config = CONFIGS["2_layers_top1"]
    d, length = config.embedding_dim, config.max_seq_len

    def wide_encoder(config, domain):
        encoder = pretrainer_module.build_encoder(config, domain)
        return SequenceEncoder.from_config({**encoder.get_config(), "feedforward_dim": 3 * d})

    monkeypatch.setattr(ranker_module, "build_encoder", wide_encoder)
    counted = _count(SITNRanker(config), config)
    # Two encoders, each block's FFN `4 L D F` with F = 3 D instead of 2 D.
    extra = 2 * config.num_layers * 4 * length * d * d
    assert counted == flops.forward_flops(flops.STAGE2, config) + extra
    assert counted != flops.forward_flops(flops.STAGE2, config)


class _DINWithExtras(DIN):
    """DIN plus a variable nobody placed (`gate`) or a kernel it never applies (`unused`)."""

    def __init__(self, config, extra, **kwargs):
        self.extra = extra
        super().__init__(config, **kwargs)

    def build(self, input_shape=None):
        super().build(input_shape)
        d = self.config.embedding_dim
        if self.extra == "gate":
            self.gate = self.add_weight(shape=(d, d), initializer="zeros", name="gate")
        else:
            self.unused = keras.layers.Dense(3, name="unused")
            self.unused.build((None, d))


def test_a_variable_nobody_placed_fails_the_census():
    config = CONFIGS["1_layer_top2"]
    with pytest.raises(AssertionError, match="neither counted nor excluded.*gate"):
        _count(_DINWithExtras(config, "gate"), config)


def test_a_kernel_never_applied_fails_the_count():
    config = CONFIGS["1_layer_top2"]
    with pytest.raises(AssertionError, match="never applied.*unused"):
        _count(_DINWithExtras(config, "unused"), config)
