"""Analytic FLOPs per example of SITN's models, for achieved-GFLOP/s figures.

Counted: every matrix product, at 2 FLOPs per multiply-add (Dense layers,
attention projections and score/value products, the DIN activation units,
the CTR head, and stage 1's similarity matrices and cluster updates).
Not counted: embedding lookups, layer norm, softmax, masking and other
elementwise work, which are memory-bound and a small share of the arithmetic.
A training step costs 3x the forward pass (the backward pass computes two
products per forward product: gradients of inputs and of weights), the usual
convention for dense models.

With `D = embedding_dim`, `L = max_seq_len`, `F = 2 D` (the encoder's FFN
width), `B` the batch size and `g` the candidates per distinct history in a
batch (stage 2 and DIN encode each run of equal histories once,
`sitn_tf.ops.adjacent_runs`; `g = 1` when no two adjacent rows share
histories, about 5 with the grouped training input). Counts are per
candidate, so the encoders' share is divided by `g`:

* encoder (Eq. 1), per self-attention block:
  `8 L D^2` (Q, K, V and output projections) + `4 L^2 D` (scores and
  weighted values, summed over heads) + `4 L D F` (FFN);
* target attention (DIN activation unit over `[k, v, k - v, k * v]`, its
  first layer split as `TargetAttention` computes it): per candidate
  `2 L (D a_1 / g + D a_1 + a_1 a_2 + ... + a_n)` (the key term once per
  history, the `k * v` term per position) + `2 D a_1` (the candidate term)
  + `2 L D` (weighted sum);
  Without XLA the models read each domain's histories only up to the last
  position real in some history of the batch (`sitn_tf.ops.real_length`):
  there `L` of stage 2's encoders and of the target attention is that
  length, measured per domain on the point's batches (`attended_lengths`).
* head MLP on `in` features: `2 (in m_1 + m_1 m_2 + ... + m_n)`;
* stage 1, per example: `4 B D` for the two InfoNCE similarity matrices
  (Eqs. 3-4) and, per granularity `K` and domain, `8 K D` (assignment
  scores and new clusters of Eq. 5, top-k scores of Eq. 6, cluster
  negatives of Eq. 7) + `2 D` (positive score) + the multi-view MLP on
  `top_k D` inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

STAGE1 = "stage1"
STAGE2 = "stage2"
DIN = "din"
MODELS = (STAGE1, STAGE2, DIN)
TRAIN_FACTOR = 3


def _chain(sizes: Sequence[int]) -> int:
    """FLOPs of a chain of Dense layers with the given widths (input first)."""
    return sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def encoder_flops(config, seq_len: int) -> int:
    d, length = config.embedding_dim, seq_len
    ffn = 2 * d
    per_block = 8 * length * d * d + 4 * length * length * d + 4 * length * d * ffn
    return config.num_layers * per_block


def target_attention_flops(config, seq_len: int, candidates_per_history: float = 1) -> float:
    d = config.embedding_dim
    first, *_ = config.attention_units
    per_position = 2 * d * first / candidates_per_history + 2 * d * first
    per_position += _chain((*config.attention_units, 1))
    return seq_len * per_position + 2 * d * first + 2 * seq_len * d


def head_flops(config, inputs: int) -> int:
    """The head MLP on `inputs` features, plus the candidate statistics' width when on."""
    if getattr(config, "item_statistics", False):
        inputs += 2 * config.statistics_dim  # two looked-up embeddings, no FLOPs of their own
    return _chain((inputs, *config.mlp_units, 1))


def stage1_extra_flops(config, batch_size: int) -> int:
    d = config.embedding_dim
    total = 4 * batch_size * d if config.use_i2i else 0
    if config.use_i2c:
        multi_view = (
            _chain((config.top_k * d, *config.multi_view_units, d)) if config.top_k > 1 else 0
        )
        for k in config.granularities:
            total += 2 * (8 * k * d + 2 * d + multi_view)
    return total


def forward_flops(
    model: str,
    config,
    *,
    seq_len: int | None = None,
    batch_size: int = 1,
    candidates_per_history: float = 1,
    attended_lengths: Mapping[str, float] | None = None,
) -> float:
    """Forward FLOPs per example (candidate) of `model` ("stage1", "stage2" or "din").

    `candidates_per_history` is `g` above (stage 2 and DIN only);
    `attended_lengths` (`{"source": ..., "target": ...}`, stage 2 and DIN
    only) the mean length the target attention reads per domain, `L` when
    not given.
    """
    length = config.max_seq_len if seq_len is None else seq_len
    attended = {"source": length, "target": length, **(attended_lengths or {})}
    d = config.embedding_dim
    g = candidates_per_history
    if model == STAGE1:
        return 2 * encoder_flops(config, length) + stage1_extra_flops(config, batch_size)
    if model == STAGE2:
        return (
            (encoder_flops(config, attended["source"]) + encoder_flops(config, attended["target"]))
            / g
            + target_attention_flops(config, attended["source"], g)
            + target_attention_flops(config, attended["target"], g)
            + head_flops(config, 3 * d)
        )
    if model == DIN:
        return target_attention_flops(config, attended["target"], g) + head_flops(config, 2 * d)
    raise ValueError(f"`model` must be one of {MODELS}, got {model!r}")


def train_flops(
    model: str,
    config,
    *,
    seq_len: int | None = None,
    batch_size: int = 1,
    candidates_per_history: float = 1,
    attended_lengths: Mapping[str, float] | None = None,
) -> float:
    """FLOPs per example (candidate) of one training step (forward + backward)."""
    return TRAIN_FACTOR * forward_flops(
        model,
        config,
        seq_len=seq_len,
        batch_size=batch_size,
        candidates_per_history=candidates_per_history,
        attended_lengths=attended_lengths,
    )
