"""`SITNConfig`: every size, hyperparameter and ablation switch of SITN."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from sitn_tf.checks import check_int, check_non_negative, check_positive, check_rate
from sitn_tf.defaults import DEFAULT_MAX_SEQ_LEN
from sitn_tf.ops import ASSIGNMENTS, SIMILARITIES

# Chosen by measurement on planted-signal data; numbers in the docstring of
# `SITNConfig` (field `similarity`) and in `sitn_tools/studies/similarity_study.py`.
DEFAULT_SIMILARITY = "cosine"
DEFAULT_TEMPERATURE = 0.3

# Embedding-table sizes, set from the data (the Transform's vocabularies),
# never by hand in a config file.
VOCABULARY_FIELDS = ("num_source_items", "num_target_items", "num_categories")

# Fields that determine the encoders' variables; a pretrainer and a ranker
# must agree on them for `SITNRanker.load_pretrained`.
ENCODER_FIELDS = (
    "num_source_items",
    "num_target_items",
    "num_categories",
    "embedding_dim",
    "num_heads",
    "num_layers",
    "max_seq_len",
    "use_positions",
)


@dataclasses.dataclass(frozen=True)
class SITNConfig:
    """Configuration shared by `SITNPretrainer`, `SITNRanker` and `DIN`.

    Vocabulary sizes are embedding-table sizes: the largest id plus one,
    counting padding id 0 and any OOV ids the Transform emits. They may be
    left unset (None) in the `model` section of a run's config; the training
    API sets them from the Transform (`with_vocab_sizes`) before a model is
    built. Whether stage 1 runs at all is a run setting (`RunConfig.pretrain`
    in `sitn_tf.config`), not a model field.

    Vocabularies:
        num_source_items: source-domain item ids (`source_item_ids`).
        num_target_items: target-domain item ids (`target_item_ids` and the
            candidate `item_id`, which share one table, see `SITNRanker`).
        num_categories: category ids (all category features), or 0 to use
            no category features at all (they are then not read).

    Encoders (Eq. 1):
        embedding_dim: model width `D`, divisible by `num_heads`.
        num_heads, num_layers: self-attention heads and blocks.
        max_seq_len: longest history accepted.
        use_positions: learned position embeddings.
        dropout: dropout in the encoders and the CTR head.

    Stage 1 (ablation switches of the paper's Tables 3 and 4):
        use_i2i: include `L_i2i` (Eqs. 3-4).
        use_i2c: include `L_i2c` (Eqs. 5-7).
        granularities: `K` of each cluster set; one value means no
            multi-granularity.
        top_k: views per instance (Eq. 6); 1 means no multi-view.
        multi_view_units: hidden widths of the multi-view MLP.
        temperature: `tau` of both contrastive losses.
        similarity: `"dot"` (paper) or `"cosine"`. Defaults `"cosine"` and
            `temperature=0.3`, measured with `sitn_tools/studies/similarity_study.py`
            (stage-2 test AUC after stage 1 on planted-signal data; mean over
            3 seeds at D=32, 2 seeds at D=64; a from-scratch ranker gets 0.51):

            | similarity | tau | D=32  | D=64  |
            |------------|-----|-------|-------|
            | cosine     | 0.2 | 0.789 | 0.792 |
            | cosine     | 0.3 | 0.800 | 0.824 |
            | cosine     | 0.5 | 0.502 | -     |
            | dot        | 3   | 0.740 | 0.636 |
            | dot        | 10  | 0.831 | 0.764 |
            | dot        | 30  | 0.543 | 0.832 |

            A tuned dot product is at most ~0.03 AUC better, but its good
            temperature moves with `embedding_dim` (instance norms grow with
            D) and a temperature off that window collapses stage 1 (AUC near
            0.5); cosine's best temperature held at both sizes. To follow the
            paper exactly, use `"dot"` and sweep `temperature`.

    Remedies against interest-cluster collapse (beyond the paper; the
    defaults compute the paper's Eqs. 5-7 exactly; see `InterestClusters`):
        cluster_assignment: `"softmax"` (paper) or `"sinkhorn"`, a balanced
            Eq. 5 assignment (SwAV's equipartition over the batch).
        assignment_temperature: divides `sim(c_k, p_i)` in the assignment
            (1 = paper). Cosine scores lie in [-1, 1], so at 1 the softmax is
            nearly uniform and every new cluster is close to the batch sum.
        sinkhorn_iterations: Sinkhorn rounds.
        normalize_new_clusters: unit-norm new clusters `U`.
        stop_gradient_views: stop the gradient at the multi-view positive `q`
            of Eq. 7.
        i2c_view_negatives: in Eq. 7, the other users' multi-view positives
            are negatives too (`sitn_ops.instance_to_cluster_nce`), which
            removes its trivial minimum (all users encoded alike).
        usage_entropy_weight: weight of `sum_K sum_domain (ln K - H(mean_i
            pi_i))`, the gap of the batch's mean assignment to uniform use
            (0 = off, the paper).

    Stage 2 (Eqs. 8-9):
        attention_units: hidden widths of the DIN activation unit.
        attention_normalization: `"none"` (DIN's raw weights) or `"softmax"`
            over the real positions (default). Raw weights over encoder
            outputs (unit-scale after layer norm) sum to large `u_f` that
            saturate the head at init: on planted data (seed 0, 2,000
            labelled users, D=32, 8 epochs, no pretraining) test AUC was
            0.611 with `"none"` and 0.769 with `"softmax"` for SITNRanker,
            and 0.696 vs 0.712 for DIN.
        mlp_units: hidden widths of the CTR head (a sigmoid unit follows).
        freeze_encoder_steps: keep the pretrained encoders (and the shared
            target item table) fixed for the first N optimizer steps.

    Candidate statistics (beyond the paper; `SITNRanker` and `DIN`):
        item_statistics: feed the candidate's prior-click-count and age
            buckets (`features.MODEL_STAT_FEATURES`) to the head through a
            `CandidateStatistics` layer. The converter computes them from
            clicks before the instance only. Sampled negatives are always
            items clicked before, so without them a model can learn "new
            item, so a click" only from the untrained out-of-vocabulary id.
            A missing statistic is "unknown" (bucket 0).
        statistics_dim: embedding width of each statistic.
        statistics_unknown_rate: training-time probability of masking a
            statistic to "unknown", so that the unknown bucket is trained
            for requests that omit the statistics.
    """

    num_source_items: int | None = None
    num_target_items: int | None = None
    num_categories: int = 0
    embedding_dim: int = 64
    num_heads: int = 2
    num_layers: int = 1
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN
    use_positions: bool = True
    dropout: float = 0.1
    use_i2i: bool = True
    use_i2c: bool = True
    granularities: tuple[int, ...] = (32, 64, 128, 256)
    top_k: int = 3
    multi_view_units: tuple[int, ...] = (64,)
    temperature: float = DEFAULT_TEMPERATURE
    similarity: str = DEFAULT_SIMILARITY
    cluster_assignment: str = "softmax"
    assignment_temperature: float = 1.0
    sinkhorn_iterations: int = 3
    normalize_new_clusters: bool = False
    stop_gradient_views: bool = False
    i2c_view_negatives: bool = False
    usage_entropy_weight: float = 0.0
    attention_units: tuple[int, ...] = (64, 32)
    attention_normalization: str = "softmax"
    mlp_units: tuple[int, ...] = (128, 64)
    freeze_encoder_steps: int = 0
    item_statistics: bool = True
    statistics_dim: int = 8
    statistics_unknown_rate: float = 0.05

    def __post_init__(self):
        for name in ("granularities", "multi_view_units", "attention_units", "mlp_units"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise ValueError(f"`{name}` must be a sequence of positive ints, got {value!r}.")
            object.__setattr__(self, name, tuple(value))
        self._validate()

    def _validate(self) -> None:
        for name in VOCABULARY_FIELDS[:2]:
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 2)
        check_int("num_categories", self.num_categories, 0)
        if self.num_categories == 1:
            raise ValueError(
                "`num_categories` must be 0 (no categories) or >= 2 (padding id 0 plus "
                "at least one category), got 1."
            )
        check_int("embedding_dim", self.embedding_dim, 1)
        check_int("num_heads", self.num_heads, 1)
        if self.embedding_dim % self.num_heads:
            raise ValueError(
                f"`embedding_dim` must be divisible by `num_heads`, got "
                f"embedding_dim={self.embedding_dim}, num_heads={self.num_heads}."
            )
        check_int("num_layers", self.num_layers, 0)
        check_int("max_seq_len", self.max_seq_len, 1)
        for name in (
            "use_positions",
            "use_i2i",
            "use_i2c",
            "item_statistics",
            "normalize_new_clusters",
            "stop_gradient_views",
            "i2c_view_negatives",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be a bool, got {getattr(self, name)!r}.")
        check_rate("dropout", self.dropout)
        if not self.granularities:
            raise ValueError("`granularities` must not be empty, got ().")
        for value in self.granularities:
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(
                    f"`granularities` must hold positive ints, got {self.granularities!r}."
                )
        if len(set(self.granularities)) != len(self.granularities):
            raise ValueError(f"`granularities` must be distinct, got {self.granularities!r}.")
        check_int("top_k", self.top_k, 1)
        if self.top_k > min(self.granularities):
            raise ValueError(
                f"`top_k` must be <= num_clusters of every granularity, got top_k="
                f"{self.top_k}, granularities={self.granularities!r}."
            )
        for name in ("multi_view_units", "attention_units", "mlp_units"):
            for value in getattr(self, name):
                if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                    raise ValueError(
                        f"`{name}` must hold positive ints, got {getattr(self, name)!r}."
                    )
        if not self.attention_units:
            raise ValueError("`attention_units` must not be empty, got ().")
        if (
            isinstance(self.temperature, bool)
            or not isinstance(self.temperature, numbers.Real)
            or not math.isfinite(self.temperature)
            or self.temperature <= 0
        ):
            raise ValueError(
                f"`temperature` must be a finite number > 0, got {self.temperature!r}."
            )
        if self.attention_normalization not in ("none", "softmax"):
            raise ValueError(
                f"`attention_normalization` must be 'none' or 'softmax', got "
                f"{self.attention_normalization!r}."
            )
        if self.similarity not in SIMILARITIES:
            raise ValueError(
                f"`similarity` must be one of {SIMILARITIES}, got {self.similarity!r}."
            )
        if self.cluster_assignment not in ASSIGNMENTS:
            raise ValueError(
                f"`cluster_assignment` must be one of {ASSIGNMENTS}, got "
                f"{self.cluster_assignment!r}."
            )
        check_positive("assignment_temperature", self.assignment_temperature)
        check_int("sinkhorn_iterations", self.sinkhorn_iterations, 1)
        check_non_negative("usage_entropy_weight", self.usage_entropy_weight)
        check_int("freeze_encoder_steps", self.freeze_encoder_steps, 0)
        check_int("statistics_dim", self.statistics_dim, 1)
        check_rate("statistics_unknown_rate", self.statistics_unknown_rate)

    @property
    def sized(self) -> bool:
        """True when the vocabulary sizes are set (a model can be built)."""
        return self.num_source_items is not None and self.num_target_items is not None

    def with_vocab_sizes(
        self, *, num_source_items: int, num_target_items: int, num_categories: int
    ) -> SITNConfig:
        """A copy sized by the Transform's vocabularies (`sitn_tf.preprocessing.vocab_sizes`)."""
        return self.replace(
            num_source_items=int(num_source_items),
            num_target_items=int(num_target_items),
            num_categories=int(num_categories),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists); `from_dict` inverts it."""
        return {
            field.name: list(value) if isinstance(value, tuple) else value
            for field in dataclasses.fields(self)
            for value in [getattr(self, field.name)]
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SITNConfig:
        """Builds a config from `to_dict` output; unknown keys are an error."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown SITNConfig field(s): {', '.join(unknown)}.")
        return cls(**dict(values))

    def replace(self, **changes: Any) -> SITNConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def as_config(config: SITNConfig | Mapping[str, Any]) -> SITNConfig:
    """Accepts a `SITNConfig` or its dict form."""
    if isinstance(config, Mapping):
        config = SITNConfig.from_dict(config)
    if not isinstance(config, SITNConfig):
        raise TypeError(f"`config` must be a SITNConfig or a dict, got {type(config).__name__}.")
    for name in VOCABULARY_FIELDS[:2]:
        if getattr(config, name) is None:
            raise ValueError(
                f"`{name}` is not set: a model needs its vocabulary sizes (the pipeline "
                "takes them from the Transform, see `SITNConfig.with_vocab_sizes`)."
            )
    return config
