"""One typed configuration for a SITN run: data, transform, model, training, run.

    Config
    ├── data       DataConfig       where the converted examples come from
    ├── transform  TransformConfig  the Transform's `preprocessing_fn` options
    ├── model      SITNConfig       the models (vocabulary sizes come from the Transform)
    ├── training   TrainingConfig   batch sizes, learning rates, epochs, XLA, seed
    ├── run        RunConfig        whether stage 1 runs, step budgets, blessing, Beam
    └── retrieval  RetrievalConfig  the optional two-tower "retrieval" Trainer

The field defaults below are the one table of defaults: the pipeline runner,
`create_pipeline`, the Trainers, the experiments and the benchmarks all start
from `Config()`. A file (YAML or JSON) holds any subset of the sections:

    transform: {max_seq_len: 50}
    model: {embedding_dim: 32, granularities: [16, 32, 64]}
    training: {batch_size: 256, learning_rate: 0.001}
    run: {pretrain_steps: 300, train_steps: 600, eval_steps: 20}

`load_config(path)` reads one; a bad value fails with the file and the field
(`runs.yaml: training.batch_size must be an int >= 1, got 0`). The Trainers'
`custom_config` is written by `Config.custom_config()` (the ranker Trainers:
no `retrieval` section, so retrieval settings never invalidate them) or
`Config.retrieval_custom_config()`, and read back by
`Config.from_custom_config()`, in this one place.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from sitn_tf.checks import check_int, check_non_negative
from sitn_tf.defaults import DEFAULT_MAX_SEQ_LEN
from sitn_tf.models.config import VOCABULARY_FIELDS, SITNConfig

MODELS = ("sitn", "din")
RETRIEVAL_HISTORIES = ("target", "both")
MASKINGS = (None, "rfm", "cfm")
DISTRIBUTIONS = ("auto", "default", "mirrored")
DATA_COMMANDS = ("interactions", "amazon", "synthetic")


class ConfigError(ValueError):
    """A bad config value; the message names the file (when there is one) and the field."""


def _positive_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"`{name}` must be a number > 0, got {value!r}.")


def _auto_or_bool(name: str, value: Any) -> None:
    # `is`, not `in`: 1 == True would let a number through.
    if not (value == "auto" or value is True or value is False):
        raise ValueError(f"`{name}` must be auto, true or false, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the converted examples come from: a folder, or a converter run.

    Attributes:
        dir: a folder written by `sitn-tf data ...` (`train/`, `eval/`, `test/`).
        command: or a `sitn-tf data COMMAND` run (`interactions`, `amazon`,
            `synthetic`) with the flags in `args` (flag name -> value; true
            is a bare flag).
    """

    dir: str | None = None
    command: str | None = None
    args: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dir is not None and self.command is not None:
            raise ValueError("`dir` and `command` exclude each other: give one.")
        if self.command is not None and self.command not in DATA_COMMANDS:
            raise ValueError(f"`command` must be one of {DATA_COMMANDS}, got {self.command!r}.")
        if not isinstance(self.args, Mapping):
            raise ValueError(f"`args` must be a mapping of flag -> value, got {self.args!r}.")
        if self.args and self.command is None:
            raise ValueError("`args` go with `command`.")
        object.__setattr__(self, "args", dict(self.args))


@dataclasses.dataclass(frozen=True)
class TransformConfig:
    """Options of the Transform's `preprocessing_fn` (`sitn_tf.preprocessing`).

    Attributes:
        max_seq_len: histories keep their most recent `max_seq_len` items and
            are padded to it; the model's `max_seq_len` is set to this.
        num_oov_buckets: ids for items outside the vocabulary (>= 1, so that
            serving maps unseen ids somewhere other than padding).
        frequency_threshold: items seen fewer times in the train split are
            out of vocabulary.
        max_item_tags: the candidate's tags keep their first `max_item_tags`
            and are padded to it (`item_tags`, an item-tower feature).
    """

    max_seq_len: int = DEFAULT_MAX_SEQ_LEN
    num_oov_buckets: int = 1
    frequency_threshold: int = 1
    max_item_tags: int = 8

    def __post_init__(self) -> None:
        check_int("max_seq_len", self.max_seq_len, 1)
        check_int("num_oov_buckets", self.num_oov_buckets, 1)
        check_int("frequency_threshold", self.frequency_threshold, 1)
        check_int("max_item_tags", self.max_item_tags, 1)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How both stages are optimised.

    Attributes:
        model: stage 2's model, `sitn` (`SITNRanker`) or `din` (the
            target-domain-only baseline, which takes no pretrained encoders).
        batch_size, learning_rate: stage 2 (Adam).
        pretrain_batch_size, pretrain_learning_rate: stage 1 (Adam).
        num_epochs: the step budget is split into this many epochs, each
            followed by an evaluation on the eval split (early stopping,
            TensorBoard curves).
        early_stopping_patience: epochs without a better eval AUC before
            stage 2 stops; the best epoch's weights are restored.
        max_logloss_rise: None, or the largest relative rise of eval logloss
            over its lowest value so far that an epoch may have and still be
            selected (`GuardedEarlyStopping`): e.g. 0.02 refuses an epoch
            whose eval logloss is more than 2% above the best seen, however
            high its AUC. Refused epochs count as no improvement.
        shuffle_buffer: examples in the shuffle buffer.
        seed: Keras, tf.data and initialisation seed.
        distribution: `auto` (MirroredStrategy when GPUs are visible, else
            the default strategy), `default` or `mirrored`.
        jit_compile, pretrain_jit_compile: XLA for stage 2 / DIN and for
            stage 1: `auto` (Keras' choice: off on a CPU-only host), true or
            false. Separate because they disagree: on CPU, XLA is 1.1-1.5x for
            stage 2 at large batches but 6-10x slower for stage 1
            (docs/benchmarks.md).
    """

    model: str = "sitn"
    batch_size: int = 256
    learning_rate: float = 1e-3
    pretrain_batch_size: int = 256
    pretrain_learning_rate: float = 1e-3
    num_epochs: int = 4
    early_stopping_patience: int = 2
    max_logloss_rise: float | None = None
    shuffle_buffer: int = 10_000
    seed: int = 42
    distribution: str = "auto"
    jit_compile: bool | str = "auto"
    pretrain_jit_compile: bool | str = "auto"

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"`model` must be one of {MODELS}, got {self.model!r}.")
        for name in ("batch_size", "pretrain_batch_size", "num_epochs", "shuffle_buffer"):
            check_int(name, getattr(self, name), 1)
        check_int("early_stopping_patience", self.early_stopping_patience, 0)
        check_int("seed", self.seed, 0)
        if self.max_logloss_rise is not None:
            check_non_negative("max_logloss_rise", self.max_logloss_rise)
        for name in ("learning_rate", "pretrain_learning_rate"):
            _positive_number(name, getattr(self, name))
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"`distribution` must be one of {DISTRIBUTIONS}, got {self.distribution!r}."
            )
        _auto_or_bool("jit_compile", self.jit_compile)
        _auto_or_bool("pretrain_jit_compile", self.pretrain_jit_compile)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What a run does, and its budgets.

    Attributes:
        pretrain: run stage 1; False trains stage 2 from scratch (the paper's
            "w/o L_i2c & L_i2i").
        pretrain_steps, train_steps: optimizer steps of stage 1 and stage 2.
        eval_steps: eval batches after each epoch (the whole eval split is
            read when it is shorter).
        min_auc, max_auc_drop: the Evaluator's blessing: test AUC at least
            `min_auc`, and at most `max_auc_drop` below the last blessed model.
        beam_args: Beam options for the Beam-based components, over the
            pipeline's defaults; command-line options override these in turn.
    """

    pretrain: bool = True
    pretrain_steps: int = 500
    train_steps: int = 1000
    eval_steps: int = 50
    min_auc: float = 0.5
    max_auc_drop: float = 0.01
    beam_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.pretrain, bool):
            raise ValueError(f"`pretrain` must be a bool, got {self.pretrain!r}.")
        for name in ("pretrain_steps", "train_steps", "eval_steps"):
            check_int(name, getattr(self, name), 1)
        for name in ("min_auc", "max_auc_drop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"`{name}` must be a number, got {value!r}.")
        if isinstance(self.beam_args, str) or not isinstance(self.beam_args, Sequence):
            raise ValueError(f"`beam_args` must be a list of strings, got {self.beam_args!r}.")
        if not all(isinstance(a, str) for a in self.beam_args):
            raise ValueError(f"`beam_args` must be a list of strings, got {self.beam_args!r}.")
        object.__setattr__(self, "beam_args", tuple(self.beam_args))


@dataclasses.dataclass(frozen=True)
class RetrievalConfig:
    """The optional "retrieval" Trainer: a two-tower retriever (`sitn_tf.retrieval.fit_transformed`).

    Defaults are those chosen on the eval split of the synthetic SSL study
    (`docs/results/ssl_retrieval/`: learning rate 3e-3, temperature 0.1).

    Attributes:
        enabled: add the "retrieval" Trainer to the pipeline.
        history: the query tower reads the `target` history, or `both`
            (target, then source items with ids moved past the corpus).
        embedding_dim, feature_dim, hidden_units: `TwoTowerRetriever` sizes.
        temperature: the main in-batch softmax's `tau`.
        learning_rate, batch_size: Adam, per positive click.
        max_epochs, patience: early stopping on eval Recall@50.
        masking: None (no SSL), `rfm` or `cfm` (Yao et al.'s SSL task).
        ssl_weight, ssl_temperature, ssl_batch_size, view_dropout: the SSL
            task (`alpha`, its `tau`, items per SSL batch, tag dropout per view).
        feature_dropout, spread_out_weight: the FD and SO baselines.
        head_share: the head slice of Recall@K is the top `head_share` of
            the corpus by training clicks.
        top_k: ids the exported `retrieve` signature returns.
    """

    enabled: bool = False
    history: str = "target"
    embedding_dim: int = 32
    feature_dim: int = 16
    hidden_units: tuple[int, ...] = (64,)
    temperature: float = 0.1
    learning_rate: float = 3e-3
    batch_size: int = 256
    max_epochs: int = 12
    patience: int = 2
    masking: str | None = None
    ssl_weight: float = 0.0
    ssl_temperature: float = 0.1
    ssl_batch_size: int = 256
    view_dropout: float = 0.2
    feature_dropout: float = 0.0
    spread_out_weight: float = 0.0
    head_share: float = 0.2
    top_k: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"`enabled` must be a bool, got {self.enabled!r}.")
        if self.history not in RETRIEVAL_HISTORIES:
            raise ValueError(
                f"`history` must be one of {RETRIEVAL_HISTORIES}, got {self.history!r}."
            )
        if self.masking not in MASKINGS:
            raise ValueError(f"`masking` must be one of {MASKINGS}, got {self.masking!r}.")
        for name in ("embedding_dim", "feature_dim", "batch_size", "max_epochs", "top_k"):
            check_int(name, getattr(self, name), 1)
        check_int("patience", self.patience, 0)
        check_int("ssl_batch_size", self.ssl_batch_size, 2)
        units = self.hidden_units
        if isinstance(units, str) or not isinstance(units, Sequence):
            raise ValueError(f"`hidden_units` must be a list of ints, got {units!r}.")
        for unit in units:
            check_int("hidden_units", unit, 1)
        object.__setattr__(self, "hidden_units", tuple(units))
        for name in ("temperature", "learning_rate", "ssl_temperature"):
            _positive_number(name, getattr(self, name))
        for name in ("ssl_weight", "spread_out_weight"):
            check_non_negative(name, getattr(self, name))
        for name in ("view_dropout", "feature_dropout", "head_share"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
                raise ValueError(f"`{name}` must be a number in [0, 1), got {value!r}.")
        if self.masking is not None and self.ssl_weight <= 0:
            raise ValueError(f"`ssl_weight` must be > 0 with masking {self.masking!r}.")


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "transform": TransformConfig,
    "model": SITNConfig,
    "training": TrainingConfig,
    "run": RunConfig,
    "retrieval": RetrievalConfig,
}


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole configuration of a run; every section has its defaults."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    transform: TransformConfig = dataclasses.field(default_factory=TransformConfig)
    model: SITNConfig = dataclasses.field(default_factory=SITNConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    retrieval: RetrievalConfig = dataclasses.field(default_factory=RetrievalConfig)

    def __post_init__(self) -> None:
        model = self.model
        given = [name for name in VOCABULARY_FIELDS if getattr(model, name) not in (None, 0)]
        if given:
            raise ConfigError(
                f"model.{given[0]} is set from the Transform's vocabularies, not by hand"
            )
        if model.max_seq_len != self.transform.max_seq_len:
            if model.max_seq_len != SITNConfig.max_seq_len:
                raise ConfigError(
                    f"model.max_seq_len={model.max_seq_len} differs from "
                    f"transform.max_seq_len={self.transform.max_seq_len}; set it in `transform`"
                )
            object.__setattr__(self, "model", model.replace(max_seq_len=self.transform.max_seq_len))
        stage1 = self.run.pretrain and self.training.model == "sitn"
        if stage1 and not (model.use_i2i or model.use_i2c):
            raise ConfigError(
                "model.use_i2i and model.use_i2c are both false but run.pretrain is true: "
                "stage 1 would have no loss (set run.pretrain: false to train from scratch)"
            )
        if model.freeze_encoder_steps and not stage1:
            raise ConfigError(
                f"model.freeze_encoder_steps must be 0 when no stage 1 runs (nothing "
                f"pretrained to keep), got {model.freeze_encoder_steps}"
            )

    @property
    def pretrains(self) -> bool:
        """Whether stage 1 runs: asked for, and stage 2 is a SITN ranker (DIN takes none)."""
        return self.run.pretrain and self.training.model == "sitn"

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """JSON-safe nested dict; `from_dict` inverts it. The model has no vocabulary sizes."""
        out = {}
        for name in SECTIONS:
            values = _as_plain(dataclasses.asdict(getattr(self, name)))
            if name == "model":
                for field in VOCABULARY_FIELDS:
                    values.pop(field, None)
            out[name] = values
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str | None = None) -> Config:
        """A config from a (partial) nested mapping; errors name `source` and the field."""
        return Config().updated(values, source=source)

    def updated(self, values: Mapping[str, Any], *, source: str | None = None) -> Config:
        """A copy with the fields of a (partial) nested mapping replaced, validated again."""
        where = f"{source}: " if source else ""
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}the config must be a mapping, got {type(values).__name__}")
        unknown = sorted(set(values) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"{where}unknown section(s) {unknown}; known: {list(SECTIONS)}")
        sections = {}
        for name, section_type in SECTIONS.items():
            current = getattr(self, name)
            given = values.get(name) or {}
            if not isinstance(given, Mapping):
                raise ConfigError(f"{where}`{name}` must be a mapping, got {given!r}")
            known = {f.name for f in dataclasses.fields(section_type)}
            if name == "model":
                known -= set(VOCABULARY_FIELDS)
            bad = sorted(set(given) - known)
            if bad:
                raise ConfigError(
                    f"{where}unknown field {name}.{bad[0]}; known in `{name}`: {sorted(known)}"
                )
            try:
                sections[name] = dataclasses.replace(current, **dict(given))
            except (TypeError, ValueError) as err:
                message = str(err).rstrip(".")
                field = next((k for k in given if f"`{k}`" in message), None)
                prefix = f"{name}.{field}: " if field else f"{name}: "
                raise ConfigError(f"{where}{prefix}{message}") from None
        try:
            return Config(**sections)
        except ConfigError as err:
            raise ConfigError(f"{where}{err}") from None

    # ------------------------------------------------------------- Trainers

    def custom_config(self) -> dict[str, Any]:
        """The ranker Trainers' (and the Transform's) `custom_config`: written here only.

        Without `data` (a runner's concern) and `retrieval` (the retrieval
        Trainer's alone: its settings must not change the rankers' cache keys
        or the experiments' run records).
        """
        return {
            name: section
            for name, section in self.to_dict().items()
            if name not in ("data", "retrieval")
        }

    def retrieval_custom_config(self) -> dict[str, Any]:
        """The "retrieval" Trainer's `custom_config`: `custom_config()` plus `retrieval`."""
        return {**self.custom_config(), "retrieval": self.to_dict()["retrieval"]}

    @classmethod
    def from_custom_config(cls, custom_config: Mapping[str, Any] | None) -> Config:
        """Inverse of `custom_config` (what a `run_fn` receives)."""
        return cls.from_dict(dict(custom_config or {}), source="custom_config")


def _as_plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _as_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_plain(v) for v in value]
    return value


def load_config(path: str | None, base: Config | None = None) -> Config:
    """`base` (default `Config()`) updated by a YAML or JSON file; None gives `base`."""
    from sitn_tf.files import read_mapping

    base = base or Config()
    if not path:
        return base
    return base.updated(read_mapping(path), source=path)
