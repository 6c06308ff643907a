"""Simple baselines of an experiment's test rows, and the metrics on the rows that matter.

Every quality claim of a trained model needs the scores that cost nothing to
beat. Under leave-last-out with negatives sampled among items already seen, a
test candidate that nobody clicked in the train split is far more often a
positive than a negative, so "the candidate is new" alone ranks well. The
baselines here are computed from the converted data's **train** split only
(the raw converter TFRecords under `<data>/train/`), on exactly the rows of
`<data>/test/` in file order; the blend is fitted on `<data>/eval/`. Nothing
is fitted on test.

Notation. `U` is the set of users. For a target item `j`,
`T_j ⊆ U` are the users with a **train-split target click** on `j`: `j` is a
clicked (label 1) train candidate of theirs or appears in the target history
of one of their train rows. For a source item `i`, `S_i ⊆ U` are the users
with `i` in the source history of one of their train rows. Counts are of
distinct users: `n_j = |T_j|`, `m_i = |S_i|`.

Baselines (one score per test row `r` with candidate `j_r`, target history
`H^t_r` and source history `H^s_r`, both as sets of distinct items):

* `novelty`: `1[n_j == 0]`, i.e. 1 when the candidate is outside the
  train-split target items (clicked train candidates and target-history items),
  which is exactly the Transform's target vocabulary at its default
  `frequency_threshold` of 1 (`sitn_tf.preprocessing`): out of vocabulary.
* `popularity`: `log(1 + n_j)`.
* `cocl_target`, item-kNN co-click from the target history:
  `c(h, j) = |T_h ∩ T_j| / sqrt(n_h n_j)` (0 when `n_h n_j = 0`; `c(j, j) = 1`
  for a train-clicked `j`), and `score_r = (1 / |H^t_r|) Σ_{h ∈ H^t_r} c(h, j_r)`,
  0 for an empty history. History items unseen in train count in the mean with
  `c = 0`.
* `cocl_source`, the same from the source history:
  `c_s(i, j) = |S_i ∩ T_j| / sqrt(m_i n_j)` and
  `score_r = (1 / |H^s_r|) Σ_{i ∈ H^s_r} c_s(i, j_r)`.
* `blend`: logistic regression on the standardised features
  `x_r = [novelty, popularity, cocl_target, cocl_source]`,
  `p_r = σ(b + Σ_k w_k (x_rk − μ_k) / s_k)` with `μ`, `s` the eval rows' means
  and standard deviations; lbfgs, `C = 1`, fitted on the **eval** split's rows
  (their features also computed from the train split) and applied to test.

* `statistics`: the same logistic regression (standardised, `C = 1`, fitted
  on eval) on the converter's time-aware candidate statistics of each row
  (`candidate_prior_clicks` `c`, `candidate_age` `a`; `sitn_tf/data/item_stats.py`):
  `[log(1 + c), 1[c == 0], log(1 + max(a, 0)), 1[a < 0]]`. The models read the
  same statistics (`SITNConfig.item_statistics`), so this row says how much of
  a model's score the statistics alone give.
* `blend_all`: logistic regression on the four blend features and the four
  statistics columns together.

`statistics` and `blend_all` need the statistics in every row (data converted
since the converter writes them); they are left out otherwise.

The first four are scores, not probabilities: they get AUC and GAUC, never a
logloss. Everything is deterministic: the same data gives the same figures,
bit for bit (sparse integer counts, ordered sums, a deterministic solver).

Metrics (`row_metrics`), for trained runs and baselines alike: AUC, GAUC
(`sitn_tf.metrics`), logloss for probabilities, the same AUC and GAUC on the
**known candidates** only (`n_j > 0`, the rows where a model can use what it
learned about the item) and AUC by the raw row's target-history length,
bucketed as `HISTORY_BUCKETS`.

These baselines use split membership only, never timestamps. How the
converter samples negatives over time is a separate concern: on data whose
timestamps are per-user positions (Amazon Toys→Games), its cross-user rule
"items clicked by some user before t" compares positions across users.

Run on converted data, printing the table and writing JSON:

    python -m sitn_tools.experiment.baselines --data DIR [--output FILE.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import warnings
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from sitn_tf import features, files, metrics

#: Baseline names (the keys of `results.json["baselines"]`), in table order, with labels.
BASELINES: dict[str, str] = {
    "novelty": "novelty: candidate never clicked in train",
    "popularity": "popularity: log(1 + train clickers)",
    "cocl_target": "item-kNN co-click from the target history",
    "cocl_source": "item-kNN co-click from the source history",
    "blend": "blend: logistic regression on the four, fitted on eval",
    "statistics": "candidate statistics (prior clicks, age): logistic regression, fitted on eval",
    "blend_all": "blend of the four and the candidate statistics, fitted on eval",
}
#: The blend's input features, in column order.
FEATURES: tuple[str, ...] = ("novelty", "popularity", "cocl_target", "cocl_source")
STATISTICS_FEATURES: tuple[str, ...] = ("log_prior_clicks", "unseen", "log_age", "age_unknown")
#: Baselines whose output is a click probability (the only ones with a logloss).
PROBABILITY_BASELINES = frozenset({"blend", "statistics", "blend_all"})
#: The baselines that need the converter's candidate statistics.
STATISTICS_BASELINES = ("statistics", "blend_all")
#: Target-history-length buckets, the Evaluator's slices: (smallest, largest or None, name).
HISTORY_BUCKETS = features.HISTORY_BUCKETS
#: The blend's inverse regularisation strength (fixed: nothing is tuned).
BLEND_C = 1.0
SPLITS = ("train", "eval", "test")


# --------------------------------------------------------------------------- rows


class Vocabulary:
    """Tokens to dense ids `0..len-1`, assigned as tokens are first met.

    Each `encode` call appends its new tokens in sorted order, so the same
    calls on the same inputs give the same ids. One vocabulary per id space
    (users, target items, source items) is shared by all three splits, so an
    id means the same token in each.
    """

    def __init__(self) -> None:
        self._ids: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def encode(self, tokens: Sequence[Hashable] | np.ndarray) -> np.ndarray:
        """int64 ids `[len(tokens)]`, new tokens appended to the vocabulary."""
        tokens = np.asarray(tokens, dtype=object).reshape(-1)
        if not tokens.size:
            return np.zeros(0, np.int64)
        # One dictionary lookup per distinct token, not per token.
        unique, inverse = np.unique(tokens, return_inverse=True)
        ids = self._ids
        codes = np.fromiter((ids.setdefault(t, len(ids)) for t in unique), np.int64, unique.size)
        return codes[inverse.reshape(-1)]

    def names(self) -> np.ndarray:
        """Object array `[len]`: the token of each id."""
        out = np.empty(len(self._ids), dtype=object)
        for token, index in self._ids.items():
            out[index] = token
        return out


@dataclasses.dataclass(frozen=True)
class Ragged:
    """Variable-length id sequences of `n` rows: `values[splits[r]:splits[r + 1]]` is row r's."""

    values: np.ndarray  # int64 [nnz]
    splits: np.ndarray  # int64 [n + 1], splits[0] == 0, splits[-1] == nnz

    @property
    def lengths(self) -> np.ndarray:
        """int64 `[n]`: each row's length, duplicates included."""
        return np.diff(self.splits)

    @property
    def row_index(self) -> np.ndarray:
        """int64 `[nnz]`: the row of each value."""
        return np.repeat(np.arange(self.splits.size - 1), self.lengths)

    @staticmethod
    def from_lengths(values: np.ndarray, lengths: np.ndarray) -> Ragged:
        splits = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=splits[1:])
        if splits[-1] != len(values):
            raise ValueError(f"lengths sum to {splits[-1]}, but there are {len(values)} values")
        return Ragged(np.asarray(values, np.int64), splits)

    @staticmethod
    def concatenate(parts: Sequence[Ragged]) -> Ragged:
        return Ragged.from_lengths(
            np.concatenate([p.values for p in parts] or [np.zeros(0, np.int64)]),
            np.concatenate([p.lengths for p in parts] or [np.zeros(0, np.int64)]),
        )


@dataclasses.dataclass(frozen=True)
class Rows:
    """The rows of one split, as ids of the dataset's vocabularies (`n` rows)."""

    users: np.ndarray  # int64 [n]
    items: np.ndarray  # int64 [n], the candidate target item
    labels: np.ndarray  # int64 [n], 0 or 1
    target_history: Ragged  # target item ids, oldest first, as in the raw row
    source_history: Ragged  # source item ids
    # int64 [n, 2]: candidate_prior_clicks, candidate_age; None when any row lacks them.
    statistics: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.size)

    @staticmethod
    def concatenate(parts: Sequence[Rows]) -> Rows:
        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts] or [np.zeros(0, np.int64)])

        with_statistics = bool(parts) and all(p.statistics is not None for p in parts)
        return Rows(
            cat("users"),
            cat("items"),
            cat("labels"),
            Ragged.concatenate([p.target_history for p in parts]),
            Ragged.concatenate([p.source_history for p in parts]),
            np.concatenate([p.statistics for p in parts]) if with_statistics else None,
        )


@dataclasses.dataclass(frozen=True)
class Dataset:
    """The three splits of a converted dataset over shared vocabularies."""

    train: Rows
    eval: Rows
    test: Rows
    users: Vocabulary
    target_items: Vocabulary
    source_items: Vocabulary


class _Encoder:
    """Builds `Rows` from raw tokens with the vocabularies of one dataset."""

    def __init__(self) -> None:
        self.users = Vocabulary()
        self.target_items = Vocabulary()
        self.source_items = Vocabulary()

    def rows(
        self,
        users: np.ndarray,
        items: np.ndarray,
        labels: np.ndarray,
        target_values: np.ndarray,
        target_lengths: np.ndarray,
        source_values: np.ndarray,
        source_lengths: np.ndarray,
        statistics: np.ndarray | None = None,
    ) -> Rows:
        return Rows(
            self.users.encode(users),
            self.target_items.encode(items),
            np.asarray(labels, np.int64).reshape(-1),
            Ragged.from_lengths(self.target_items.encode(target_values), target_lengths),
            Ragged.from_lengths(self.source_items.encode(source_values), source_lengths),
            None if statistics is None else np.asarray(statistics, np.int64).reshape(-1, 2),
        )

    def dataset(self, train: Rows, eval_: Rows, test: Rows) -> Dataset:
        return Dataset(train, eval_, test, self.users, self.target_items, self.source_items)


#: One raw row: (user, candidate item, label, target history, source history), then
#: optionally (candidate_prior_clicks, candidate_age).
RawRow = tuple


def dataset_from_rows(
    train: Iterable[RawRow], eval_: Iterable[RawRow], test: Iterable[RawRow]
) -> Dataset:
    """A `Dataset` from plain rows `(user, item, label, target_history, source_history)`.

    A row may add `(candidate_prior_clicks, candidate_age)`; a split keeps
    statistics only when every one of its rows has them.
    """
    encoder = _Encoder()

    def encode(rows: Iterable[RawRow]) -> Rows:
        rows = list(rows)
        with_statistics = bool(rows) and all(len(r) == 7 for r in rows)
        target = [list(r[3]) for r in rows]
        source = [list(r[4]) for r in rows]
        flat = [
            np.array([x for seq in seqs for x in seq], dtype=object) for seqs in (target, source)
        ]
        return encoder.rows(
            np.array([r[0] for r in rows], dtype=object),
            np.array([r[1] for r in rows], dtype=object),
            np.array([r[2] for r in rows], np.int64),
            flat[0],
            np.array([len(s) for s in target], np.int64),
            flat[1],
            np.array([len(s) for s in source], np.int64),
            np.array([r[5:7] for r in rows], np.int64) if with_statistics else None,
        )

    train_rows = encode(train)
    eval_rows = encode(eval_)
    test_rows = encode(test)
    return encoder.dataset(train_rows, eval_rows, test_rows)


def split_files(data: str, split: str) -> list[str]:
    """The converter's files of one split, sorted (`sitn_tf.data.reading.split_files`)."""
    from sitn_tf.data import reading

    files = reading.split_files(data, split)
    if not files:
        raise FileNotFoundError(f"{data}: no {split}/ examples")
    return files


def read_dataset(data: str, batch_size: int = 4096) -> Dataset:
    """The raw train, eval and test splits of a converted folder, rows in file order."""
    import tensorflow as tf

    from sitn_tf import features as F

    spec = {
        F.USER_ID: tf.io.FixedLenFeature([], tf.string),
        F.ITEM_ID: tf.io.FixedLenFeature([], tf.string),
        F.LABEL: tf.io.FixedLenFeature([], tf.int64),
        F.TARGET_ITEM_IDS: tf.io.RaggedFeature(tf.string),
        F.SOURCE_ITEM_IDS: tf.io.RaggedFeature(tf.string),
        # -2: absent (data converted before the statistics existed); -1 is a real "unknown" age.
        F.CANDIDATE_PRIOR_CLICKS: tf.io.FixedLenFeature([], tf.int64, default_value=-2),
        F.CANDIDATE_AGE: tf.io.FixedLenFeature([], tf.int64, default_value=-2),
    }
    encoder = _Encoder()
    splits = []
    for split in SPLITS:
        chunks = []
        records = tf.data.TFRecordDataset(split_files(data, split), compression_type="GZIP")
        for batch in records.batch(batch_size):
            parsed = tf.io.parse_example(batch, spec)
            target, source = parsed[F.TARGET_ITEM_IDS], parsed[F.SOURCE_ITEM_IDS]
            statistics = np.stack(
                [parsed[F.CANDIDATE_PRIOR_CLICKS].numpy(), parsed[F.CANDIDATE_AGE].numpy()], axis=1
            )
            chunks.append(
                encoder.rows(
                    parsed[F.USER_ID].numpy(),
                    parsed[F.ITEM_ID].numpy(),
                    parsed[F.LABEL].numpy(),
                    target.flat_values.numpy(),
                    target.row_lengths().numpy(),
                    source.flat_values.numpy(),
                    source.row_lengths().numpy(),
                    None if np.any(statistics == -2) else statistics,
                )
            )
        splits.append(Rows.concatenate(chunks))
    return encoder.dataset(*splits)


# --------------------------------------------------------------------------- train statistics


def _incidence(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Binary CSR `[shape]`: 1 where some (row, col) pair occurs, however often."""
    matrix = sp.csr_matrix(
        (np.ones(rows.size, np.float64), (rows, cols)), shape=shape, dtype=np.float64
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _inverse_sqrt(counts: np.ndarray) -> np.ndarray:
    counts = counts.astype(np.float64)
    out = np.zeros_like(counts)
    np.divide(1.0, np.sqrt(counts), out=out, where=counts > 0)
    return out


def cosine(left: sp.csr_matrix, right: sp.csr_matrix) -> sp.csr_matrix:
    """Item-item cosine over users: `c(i, j) = n_ij / sqrt(n_i n_j)`, CSR `[I, J]`.

    `left` `[U, I]` and `right` `[U, J]` are binary user-item incidences;
    `n_ij = (leftᵀ right)_ij` counts the users with both, `n_i`, `n_j` are
    column sums. 0 where `n_i n_j = 0`.
    """
    together = (left.T @ right).tocsr()
    scaled = sp.diags(_inverse_sqrt(np.asarray(left.sum(axis=0)).ravel())) @ together
    scaled = scaled @ sp.diags(_inverse_sqrt(np.asarray(right.sum(axis=0)).ravel()))
    scaled = scaled.tocsr()
    scaled.sort_indices()
    return scaled


@dataclasses.dataclass(frozen=True)
class TrainStatistics:
    """What the baselines know, all from the train split.

    `T` and `S` are the dataset's target and source vocabulary sizes (all
    splits), so eval and test ids index these arrays; items without a train
    click have zero counts.
    """

    target_clickers: np.ndarray  # int64 [T]: n_j, distinct users with a train target click
    source_clickers: np.ndarray  # int64 [S]: m_i, distinct users with i in a train source history
    target_cosine: sp.csr_matrix  # [T, T]: c(h, j)
    source_cosine: sp.csr_matrix  # [S, T]: c_s(i, j)


def train_statistics(dataset: Dataset) -> TrainStatistics:
    """Click counts and co-click cosines of the train split (see the module docstring)."""
    train = dataset.train
    shape_t = (len(dataset.users), len(dataset.target_items))
    shape_s = (len(dataset.users), len(dataset.source_items))
    clicked = train.labels == 1
    target = _incidence(
        np.concatenate([train.users[clicked], train.users[train.target_history.row_index]]),
        np.concatenate([train.items[clicked], train.target_history.values]),
        shape_t,
    )
    source = _incidence(
        train.users[train.source_history.row_index], train.source_history.values, shape_s
    )
    return TrainStatistics(
        target_clickers=np.asarray(target.sum(axis=0)).ravel().astype(np.int64),
        source_clickers=np.asarray(source.sum(axis=0)).ravel().astype(np.int64),
        target_cosine=cosine(target, target),
        source_cosine=cosine(source, target),
    )


def known_candidates(rows: Rows, stats: TrainStatistics) -> np.ndarray:
    """bool `[n]`: the candidate is in the Transform's target vocabulary (`n_j > 0`)."""
    return stats.target_clickers[rows.items] > 0


# --------------------------------------------------------------------------- scores


def novelty(rows: Rows, stats: TrainStatistics) -> np.ndarray:
    """float64 `[n]`: `1[n_j == 0]`, 1 for a candidate out of the train vocabulary."""
    return (~known_candidates(rows, stats)).astype(np.float64)


def popularity(rows: Rows, stats: TrainStatistics) -> np.ndarray:
    """float64 `[n]`: `log(1 + n_j)`."""
    return np.log1p(stats.target_clickers[rows.items].astype(np.float64))


def co_click(history: Ragged, candidates: np.ndarray, similarity: sp.csr_matrix) -> np.ndarray:
    """float64 `[n]`: mean of `similarity[h, j_r]` over the distinct items h of row r's history.

    0 for an empty history. `similarity` is `[H, J]` with history ids as rows
    and candidate ids as columns; ids beyond the train statistics do not occur
    (they share the dataset's vocabularies).
    """
    n = candidates.size
    # Distinct (row, item) pairs, sorted by row: duplicates in a history count once.
    distinct = _incidence(history.row_index, history.values, (n, similarity.shape[0]))
    per_row = np.diff(distinct.indptr)
    rows = np.repeat(np.arange(n), per_row)
    if rows.size:
        values = np.asarray(similarity[distinct.indices, candidates[rows]]).reshape(-1)
    else:
        values = np.zeros(0, np.float64)
    sums = np.bincount(rows, weights=values, minlength=n)
    out = np.zeros(n, np.float64)
    np.divide(sums, per_row, out=out, where=per_row > 0)
    return out


def features(rows: Rows, stats: TrainStatistics) -> np.ndarray:
    """float64 `[n, 4]`: the columns of `FEATURES` for each row."""
    return np.stack(
        [
            novelty(rows, stats),
            popularity(rows, stats),
            co_click(rows.target_history, rows.items, stats.target_cosine),
            co_click(rows.source_history, rows.items, stats.source_cosine),
        ],
        axis=1,
    )


def statistics_features(rows: Rows) -> np.ndarray:
    """float64 `[n, 4]`: the columns of `STATISTICS_FEATURES` (see the module docstring)."""
    if rows.statistics is None:
        raise ValueError("these rows carry no candidate statistics")
    clicks, age = rows.statistics[:, 0], rows.statistics[:, 1]
    return np.stack(
        [
            np.log1p(np.maximum(clicks, 0)),
            (clicks == 0).astype(np.float64),
            np.log1p(np.maximum(age, 0)),
            (age < 0).astype(np.float64),
        ],
        axis=1,
    )


@dataclasses.dataclass(frozen=True)
class Blend:
    """A fitted blend: standardisation then logistic regression (sklearn `Pipeline`)."""

    model: Any
    features: tuple[str, ...] = FEATURES

    def predict(self, x: np.ndarray) -> np.ndarray:
        """float64 `[n]`: click probabilities of the feature rows `x` `[n, len(features)]`."""
        return self.model.predict_proba(x)[:, 1].astype(np.float64)

    def describe(self) -> dict[str, Any]:
        """JSON-ready: the standardisation and the coefficients (per standardised feature)."""
        scaler, logistic = self.model[0], self.model[-1]
        return {
            "fitted_on": "eval",
            "features": list(self.features),
            "feature_means": [float(v) for v in scaler.mean_],
            "feature_scales": [float(v) for v in scaler.scale_],
            "coefficients": [float(v) for v in logistic.coef_.ravel()],
            "intercept": float(logistic.intercept_[0]),
            "C": BLEND_C,
            "iterations": int(logistic.n_iter_[0]),
        }


def fit_blend(
    x: np.ndarray, labels: np.ndarray, feature_names: tuple[str, ...] = FEATURES
) -> Blend:
    """Logistic regression (lbfgs, `C = BLEND_C`) on standardised `x` `[n, len(feature_names)]`.

    Raises:
      ValueError: `labels` hold one class only (nothing to fit).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if np.unique(labels).size < 2:
        raise ValueError("the blend needs both classes among the eval rows")
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=BLEND_C, solver="lbfgs", max_iter=1000)
    )
    with warnings.catch_warnings():
        # This sklearn passes scipy's lbfgs an option newer scipy no longer knows (no effect).
        warnings.filterwarnings("ignore", message="Unknown solver options")
        model.fit(x, labels)
    return Blend(model, tuple(feature_names))


def score(
    dataset: Dataset, stats: TrainStatistics | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Blend]]:
    """`({name: float64 [n_test]}, {name: fitted blend})`: every baseline's scores of the test rows.

    All features come from the train split (the candidate statistics from
    the converter); the blends are fitted on the eval rows' features and
    labels, never on test. `statistics` and `blend_all` only when both the
    eval and the test rows carry the statistics.
    """
    stats = stats or train_statistics(dataset)
    test = features(dataset.test, stats)
    eval_x = features(dataset.eval, stats)
    blends = {"blend": fit_blend(eval_x, dataset.eval.labels)}
    scores = {name: test[:, k] for k, name in enumerate(FEATURES)}
    scores["blend"] = blends["blend"].predict(test)
    if dataset.eval.statistics is not None and dataset.test.statistics is not None:
        eval_s, test_s = statistics_features(dataset.eval), statistics_features(dataset.test)
        blends["statistics"] = fit_blend(eval_s, dataset.eval.labels, STATISTICS_FEATURES)
        scores["statistics"] = blends["statistics"].predict(test_s)
        blends["blend_all"] = fit_blend(
            np.concatenate([eval_x, eval_s], axis=1),
            dataset.eval.labels,
            FEATURES + STATISTICS_FEATURES,
        )
        scores["blend_all"] = blends["blend_all"].predict(np.concatenate([test, test_s], axis=1))
    return scores, blends


# --------------------------------------------------------------------------- metrics


def history_buckets(lengths: np.ndarray) -> np.ndarray:
    """int64 `[n]`: the index in `HISTORY_BUCKETS` of each history length."""
    starts = np.array([low for low, _, _ in HISTORY_BUCKETS[1:]])
    return np.searchsorted(starts, np.asarray(lengths), side="right")


def _none_for_nan(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _ranking(labels: np.ndarray, scores: np.ndarray, users: np.ndarray, probabilities: bool):
    if probabilities:
        return metrics.all_metrics(labels, scores, users)
    # Scores, not probabilities: a logloss or a mean prediction would mean nothing.
    out = metrics.score_metrics(labels, scores, users)
    return {
        "auc": out["auc"],
        "logloss": None,
        "gauc": out["gauc"],
        **{k: v for k, v in out.items() if k not in ("auc", "gauc")},
        "mean_prediction": None,
    }


def row_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    users: np.ndarray,
    known: np.ndarray,
    history_lengths: np.ndarray,
    probabilities: bool = True,
    source_history_lengths: np.ndarray | None = None,
) -> dict[str, Any]:
    """The test metrics of one run or baseline (all arrays `[n]`, row-aligned).

    Keys: those of `sitn_tf.metrics.all_metrics` (`logloss` and
    `mean_prediction` None unless `probabilities`), then `known_auc`,
    `known_gauc`, `known_examples` (the rows with `known`, i.e. a candidate in
    the train vocabulary) and `by_history_length`: `{bucket: {"auc",
    "examples", "positives"}}` for each of `HISTORY_BUCKETS` (AUC None where a
    bucket lacks a class); with `source_history_lengths`, the same over the
    source history as `by_source_history_length`. None marks an undefined
    AUC.
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, np.float64)
    users = np.asarray(users)
    known = np.asarray(known, bool)
    out = _ranking(labels, scores, users, probabilities)
    known_gauc, _ = metrics.gauc(labels[known], scores[known], users[known])
    out["known_auc"] = _none_for_nan(metrics.auc(labels[known], scores[known]))
    out["known_gauc"] = _none_for_nan(known_gauc)
    out["known_examples"] = int(known.sum())
    out["by_history_length"] = _by_length(labels, scores, history_lengths)
    if source_history_lengths is not None:
        out["by_source_history_length"] = _by_length(labels, scores, source_history_lengths)
    return out


def _by_length(labels: np.ndarray, scores: np.ndarray, lengths: np.ndarray) -> dict[str, Any]:
    bucket = history_buckets(lengths)
    by_length = {}
    for index, (_, _, name) in enumerate(HISTORY_BUCKETS):
        mask = bucket == index
        by_length[name] = {
            "auc": _none_for_nan(metrics.auc(labels[mask], scores[mask])),
            "examples": int(mask.sum()),
            "positives": int(labels[mask].sum()),
        }
    return by_length


def candidate_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    users: np.ndarray,
    known: np.ndarray,
    probabilities: bool = True,
) -> dict[str, dict[str, Any]]:
    """`{"known": ..., "unknown": ...}`: the metrics of each candidate kind, with positives."""
    labels, scores, users = np.asarray(labels), np.asarray(scores), np.asarray(users)
    known = np.asarray(known, bool)
    return {
        name: {
            **_ranking(labels[mask], scores[mask], users[mask], probabilities),
            "positives": int(labels[mask].sum()),
        }
        for name, mask in (("known", known), ("unknown", ~known))
        if mask.any()
    }


@dataclasses.dataclass(frozen=True)
class RowSlices:
    """What a run's test metrics need of the raw test rows (`[n]` each, in file order)."""

    labels: np.ndarray  # int64
    items: np.ndarray  # object: candidate item tokens
    known: np.ndarray  # bool: candidate in the train vocabulary
    history_lengths: np.ndarray  # int64: the raw row's target history length
    source_history_lengths: np.ndarray | None = None  # int64: its source history length

    def check(self, labels: np.ndarray, items: np.ndarray | None = None) -> None:
        """Raises ValueError unless `labels` (and `items`) are these rows, in this order."""
        same = np.array_equal(np.asarray(labels), self.labels)
        if items is not None:
            same = same and np.array_equal(np.asarray(items, dtype=object), self.items)
        if not same:
            raise ValueError("scored rows are not the test split's rows in file order")


def row_slices(dataset: Dataset, stats: TrainStatistics) -> RowSlices:
    test = dataset.test
    return RowSlices(
        labels=test.labels,
        items=dataset.target_items.names()[test.items],
        known=known_candidates(test, stats),
        history_lengths=test.target_history.lengths,
        source_history_lengths=test.source_history.lengths,
    )


def evaluate(dataset: Dataset, stats: TrainStatistics | None = None) -> dict[str, dict[str, Any]]:
    """`{name: {"label", "probability", "metrics", "metrics_by_candidate"[, "fit"]}}`.

    The metrics are `row_metrics` of each baseline on the test rows; the
    blend also carries its fit (`Blend.describe`).
    """
    stats = stats or train_statistics(dataset)
    scores, blends = score(dataset, stats)
    test = dataset.test
    known = known_candidates(test, stats)
    lengths = test.target_history.lengths
    out: dict[str, dict[str, Any]] = {}
    for name, label in BASELINES.items():
        if name not in scores:
            continue  # a statistics baseline on data without statistics
        probability = name in PROBABILITY_BASELINES
        entry: dict[str, Any] = {
            "label": label,
            "probability": probability,
            "metrics": row_metrics(
                test.labels,
                scores[name],
                test.users,
                known,
                lengths,
                probability,
                source_history_lengths=test.source_history.lengths,
            ),
            "metrics_by_candidate": candidate_metrics(
                test.labels, scores[name], test.users, known, probability
            ),
        }
        if name in blends:
            entry["fit"] = blends[name].describe()
        out[name] = entry
    return out


# --------------------------------------------------------------------------- command


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sitn_tools.experiment.baselines",
        description="Score the simple baselines (novelty, popularity, co-click, blend) on the "
        "test split of converted data, from its train split (blend fitted on eval); print the "
        "table and write JSON.",
    )
    parser.add_argument("--data", required=True, help="A folder written by `sitn-tf data`.")
    parser.add_argument("--output", help="JSON file (default: DATA/baselines.json).")
    args = parser.parse_args(argv)

    from sitn_tools.experiment import report

    start = time.monotonic()
    dataset = read_dataset(args.data)
    read_seconds = time.monotonic() - start
    baselines = evaluate(dataset)
    seconds = time.monotonic() - start
    payload = {
        "data": args.data,
        "rows": {split: len(getattr(dataset, split)) for split in SPLITS},
        "read_seconds": round(read_seconds, 2),
        "seconds": round(seconds, 2),
        "baselines": baselines,
    }
    output = args.output or os.path.join(args.data, "baselines.json")
    files.write_json(output, payload)
    print(report.simple_baseline_table(baselines))
    rows = ", ".join(f"{k} {v:,}" for k, v in payload["rows"].items())
    print(f"rows: {rows}; {seconds:.1f} s ({read_seconds:.1f} s reading); wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
