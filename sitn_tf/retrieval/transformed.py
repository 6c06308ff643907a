"""A two-tower retriever trained on the pipeline's transformed examples.

The training API below the "retrieval" Trainer's `run_fn`
(`pipelines/retrieval_trainer.py`), in the form of `sitn_tf.training`'s
`fit_ranker`: it reads the Transform's output, so the retriever shares the
rankers' vocabularies, and ids that the `retrieve` signature returns are the
ranker's `item_id` ids.

From the transformed examples (`sitn_tf.preprocessing`):

* **Clicks.** Each positive example (`label` 1) is one next-click query:
  the history is its `target_item_ids` `(max_seq_len,)` (with
  `history="both"`, then its `source_item_ids` moved past the target ids),
  the target its `item_id`. The corpus is the target-item vocabulary, ids
  `1..V`; out-of-vocabulary ids (`V+1..`) are dropped from histories, and a
  click on one is not a query: such clicks are counted, per split, as
  `unknown_targets` (only eval and test have them, as the vocabulary is
  built from the train clicks).
* **Item features.** Every train example, positive or sampled negative,
  gives its candidate's transformed `item_category`, and the brand, price
  bucket and tags when the Transform wrote them: one row per corpus id
  (`ItemFeatures`). Ids never seen as a candidate (history-only items) keep
  every attribute unknown; they are counted as `candidates_without_features`.
  An attribute with one value over all items (a set without metadata) is
  not read.
* **logQ.** `p(x)` is the item's share of the train clicks
  (`two_tower_losses.item_log_probabilities`): the stream's frequencies.
* **CFM groups.** The pairwise normalised mutual information of the item
  features is computed by the Beam transform
  `mutual_information_beam.PairwiseMutualInformation` over the item table,
  written as a JSON file (`MUTUAL_INFORMATION_FILE`) where the caller keeps
  the model's assets, and read back to choose CFM's groups
  (`mutual_information.correlated_groups`).

Evaluation is `sitn_tf.retrieval.metrics`' full-corpus Recall@10/50 with the
history masked, overall and on the head / tail slices (head = the top
`head_share` of the corpus by train clicks), beside the train-click
popularity ranking as the simple baseline.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from sitn_tf import features as F
from sitn_tf import preprocessing
from sitn_tf.config import Config, RetrievalConfig
from sitn_tf.retrieval import metrics, mutual_information, training
from sitn_tf.retrieval import two_tower_losses as tl
from sitn_tf.retrieval.data import Split
from sitn_tf.retrieval.item_features import SINGLE_VALUED, ItemFeatures
from sitn_tf.training.datasets import read_columns

logger = logging.getLogger(__name__)

MUTUAL_INFORMATION_FILE = "item_feature_mutual_information.json"
CUTOFFS = (10, 50)
MONITOR = "hr@50"  # = Recall@50 with one target per query
# Item attribute of the retriever -> the transformed feature carrying it.
ATTRIBUTE_FEATURES = {
    "category": F.ITEM_CATEGORY,
    "brand": F.ITEM_BRAND,
    "price_bucket": F.ITEM_PRICE_BUCKET,
    "tags": F.ITEM_TAGS,
}


@dataclasses.dataclass
class Corpus:
    """The id spaces of one Transform output.

    Attributes:
        num_candidates: `C = V + 1`: corpus ids `1..V`, 0 padding.
        num_items: rows of the query tower's history embedding: `C`, plus
            the source ids (`num_source_items - 1`) with `history="both"`.
        history: "target" or "both".
    """

    num_candidates: int
    num_items: int
    history: str

    @classmethod
    def of(cls, tf_transform_output: tft.TFTransformOutput, history: str) -> Corpus:
        c = tf_transform_output.vocabulary_size_by_name(preprocessing.TARGET_ITEM_VOCAB) + 1
        num_items = c
        if history == "both":
            num_items += tf_transform_output.vocabulary_size_by_name(
                preprocessing.SOURCE_ITEM_VOCAB
            )
        return cls(num_candidates=c, num_items=num_items, history=history)

    def queries(self, columns: dict[str, np.ndarray]) -> tuple[Split, dict[str, int]]:
        """The positive examples of `columns` as queries, and what was left out.

        `columns` holds `label`, `item_id`, `target_item_ids` (and
        `source_item_ids` for `history="both"`). Returns the `Split` and
        `{"queries", "unknown_targets", "negatives"}` counts.
        """
        c = self.num_candidates
        positive = columns[F.LABEL] == 1
        targets = columns[F.ITEM_ID][positive].astype(np.int64)
        known = (targets >= 1) & (targets < c)
        target_history = columns[F.TARGET_ITEM_IDS][positive][known]
        # OOV target ids would alias source ids: they carry nothing learnable.
        histories = np.where(target_history < c, target_history, 0)
        if self.history == "both":
            source = columns[F.SOURCE_ITEM_IDS][positive][known]
            # Source vocabulary ids 1.. follow the corpus: id s -> C - 1 + s;
            # source OOV ids land past the vocabulary and are dropped too.
            source = np.where((source > 0) & (source < self.num_items - c + 1), source + c - 1, 0)
            histories = np.concatenate([histories, source], axis=1)
        counts = {
            "queries": int(known.sum()),
            "unknown_targets": int((~known).sum()),
            "negatives": int((~positive).sum()),
        }
        return Split(histories.astype(np.int32), targets[known].astype(np.int32)), counts


def item_features(
    columns: dict[str, np.ndarray], num_candidates: int, vocab: dict[str, int]
) -> tuple[ItemFeatures, dict[str, int]]:
    """The corpus' attributes from the examples' candidates (first example of each id wins).

    Args:
        columns: `item_id` and the transformed features of the `vocab` attributes.
        num_candidates: `C`.
        vocab: attribute -> its id-space size (padding + vocabulary + OOV).

    Returns:
        `(ItemFeatures, counts)`. An attribute with one value over every
        described item (no metadata: every value "" or an empty vocabulary)
        carries nothing and is left out of `ItemFeatures.vocab`, so the item
        tower does not read it; `counts` holds `candidates_without_features`
        and `uninformative_<attribute>` for each one left out.
    """
    ids = columns[F.ITEM_ID].astype(np.int64)
    in_corpus = np.flatnonzero((ids >= 1) & (ids < num_candidates))
    # np.unique's first index of each id: one row per candidate.
    unique_ids, first = np.unique(ids[in_corpus], return_index=True)
    rows = in_corpus[first]
    out_columns = {name: np.zeros(num_candidates, np.int32) for name in SINGLE_VALUED}
    tags = np.zeros((num_candidates, 1), np.int32)
    used_vocab: dict[str, int] = {}
    counts = {"candidates_without_features": num_candidates - 1 - len(unique_ids)}
    for name, size in vocab.items():
        values = columns[ATTRIBUTE_FEATURES[name]][rows]
        if len(np.unique(values, axis=0)) <= 1:
            counts[f"uninformative_{name}"] = 1
            continue
        used_vocab[name] = size
        if name == "tags":
            tags = np.zeros((num_candidates, values.shape[1]), np.int32)
            tags[unique_ids] = values
        else:
            out_columns[name][unique_ids] = values
    return ItemFeatures(out_columns, tags, used_vocab), counts


def beam_mutual_information(table: dict[str, list], path: str) -> tuple[list[str], np.ndarray]:
    """Normalised pairwise MI of the item table's columns by Beam, written to `path` as JSON.

    The file holds `{"names": [...], "normalized_mutual_information": (F, F)}`.
    """
    import apache_beam as beam

    from sitn_tf.retrieval.mutual_information_beam import PairwiseMutualInformation

    names = list(table)
    count = len(table[names[0]])
    items = [{name: table[name][row] for name in names} for row in range(count)]
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    with beam.Pipeline() as pipeline:
        _ = (
            pipeline
            | "Items" >> beam.Create(items)
            | "MutualInformation" >> PairwiseMutualInformation(names, normalized=True)
            | "Json"
            >> beam.Map(lambda m: json.dumps({"names": names, "normalized_mutual_information": m}))
            | "Write" >> beam.io.WriteToText(path, shard_name_template="")
        )
    with tf.io.gfile.GFile(path) as handle:
        matrix = np.asarray(json.loads(handle.read())["normalized_mutual_information"])
    return names, matrix


@dataclasses.dataclass
class RetrieverResult:
    """What `fit_retriever` returns: the best epoch's model and its record."""

    model: Any
    summary: dict[str, Any]


def popularity_metrics(
    train: Split, split: Split, num_candidates: int, head: np.ndarray
) -> dict[str, float]:
    """Recall@10/50 (overall, head, tail) of ranking by train clicks, history masked."""
    ranks = metrics.popularity_ranks(train.targets, split.histories, split.targets, num_candidates)
    return metrics.sliced_recall(ranks, split.targets, head, CUTOFFS)


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in values.items()}


def fit_retriever(
    config: Config,
    tf_transform_output: tft.TFTransformOutput,
    train_files: list[str] | str,
    eval_files: list[str] | str,
    assets_dir: str,
) -> RetrieverResult:
    """Fit a `TwoTowerRetriever` by `config.retrieval`; early-stop on eval Recall@50.

    Args:
        config: the run's config (`retrieval` and `training.seed` are read).
        tf_transform_output: the Transform's output the files were written by.
        train_files, eval_files: transformed example file patterns.
        assets_dir: where the Beam MI file is written (the caller exports it
            with the model).

    Returns:
        The model at its best epoch, and a JSON-able summary: data counts,
        eval metrics of the model and of the popularity baseline, the
        training curve, `best_epoch`, `stopped_early`, the MI matrix and
        CFM groups, seconds.
    """
    import keras

    from sitn_tf.retrieval.two_tower import TwoTowerRetriever

    settings: RetrievalConfig = config.retrieval
    seed = config.training.seed
    started = time.perf_counter()
    corpus = Corpus.of(tf_transform_output, settings.history)
    spec = tf_transform_output.transformed_feature_spec()
    oov = config.transform.num_oov_buckets
    vocab = {
        "category": preprocessing.table_size(tf_transform_output, preprocessing.CATEGORY_VOCAB, oov)
    }
    if F.ITEM_BRAND in spec:  # a Transform output from before the attributes has none
        vocab.update(preprocessing.item_attribute_vocab_sizes(tf_transform_output, oov))
    click_names = [F.LABEL, F.ITEM_ID, F.TARGET_ITEM_IDS]
    if settings.history == "both":
        click_names.append(F.SOURCE_ITEM_IDS)
    attribute_names = [ATTRIBUTE_FEATURES[name] for name in vocab]
    train_columns = read_columns(
        train_files, tf_transform_output, sorted({*click_names, *attribute_names})
    )
    eval_columns = read_columns(eval_files, tf_transform_output, click_names)
    train, train_counts = corpus.queries(train_columns)
    eval_split, eval_counts = corpus.queries(eval_columns)
    if not len(train) or not len(eval_split):
        raise ValueError(
            f"the retriever needs clicks in train and eval, got {len(train)} and {len(eval_split)}"
        )
    features, feature_counts = item_features(train_columns, corpus.num_candidates, vocab)
    model_features = ["id", *[n for n in (*SINGLE_VALUED, "tags") if n in features.vocab]]
    table = {name: values for name, values in features.table().items() if name in model_features}
    names, matrix = beam_mutual_information(
        table, os.path.join(assets_dir, MUTUAL_INFORMATION_FILE)
    )
    groups = mutual_information.correlated_groups(matrix)
    log_q = tl.item_log_probabilities(train.targets, corpus.num_candidates)
    head = metrics.head_items(train.targets, corpus.num_candidates, settings.head_share)

    keras.utils.set_random_seed(seed)
    extra: dict[str, Any] = {}
    if settings.masking is not None:
        extra.update(
            masking=settings.masking,
            ssl_weight=settings.ssl_weight,
            view_dropout=settings.view_dropout,
        )
    if settings.masking == "cfm":
        extra.update(feature_groups=groups.tolist(), mutual_information=matrix.tolist())
    model = TwoTowerRetriever(
        corpus.num_items,
        num_candidates=corpus.num_candidates,
        embedding_dim=settings.embedding_dim,
        feature_dim=settings.feature_dim,
        hidden_units=settings.hidden_units,
        feature_vocab=features.vocab,
        max_tags=features.tags.shape[1],
        temperature=settings.temperature,
        ssl_temperature=settings.ssl_temperature,
        ssl_batch_size=settings.ssl_batch_size,
        feature_dropout=settings.feature_dropout,
        spread_out_weight=settings.spread_out_weight,
        seed=seed,
        item_features=features,
        item_log_q=log_q,
        **extra,
    )
    fitted = training.fit(
        model,
        train,
        eval_split,
        learning_rate=settings.learning_rate,
        batch_size=settings.batch_size,
        max_epochs=settings.max_epochs,
        patience=settings.patience,
        seed=seed,
        monitor=MONITOR,
        cutoffs=CUTOFFS,
    )
    ranks = training.target_ranks(model, eval_split)
    summary = {
        "data": {
            "train": train_counts,
            "eval": eval_counts,
            "num_candidates": corpus.num_candidates,
            "num_items": corpus.num_items,
            "history": corpus.history,
            **feature_counts,
            "head_items": int(head.sum()),
        },
        "item_features": {
            "names": names,
            "vocab": features.vocab,
            "normalized_mutual_information": np.round(matrix, 4).tolist(),
            "cfm_groups": {
                names[f]: [names[j] for j in np.flatnonzero(groups[f])] for f in range(len(names))
            },
        },
        "eval_metrics": _rounded(metrics.sliced_recall(ranks, eval_split.targets, head, CUTOFFS)),
        "baselines": {
            "popularity": _rounded(
                popularity_metrics(train, eval_split, corpus.num_candidates, head)
            )
        },
        "best_epoch": fitted["best_epoch"],
        "epochs_run": fitted["epochs_run"],
        "stopped_early": fitted["stopped_early"],
        "history": [_rounded(row) for row in fitted["history"]],
        "retrieval": dataclasses.asdict(settings),
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
    }
    logger.info("retriever: best epoch %d, eval %s", fitted["best_epoch"], summary["eval_metrics"])
    return RetrieverResult(model=model, summary=summary)
