"""Retrieve-then-rank: a retriever's top-k from the whole corpus, scored by the ranker.

Two exported SavedModels make one recommendation:

1. the retriever's `retrieve` signature (`sitn_tf.retrieval.export`): the
   user's target-domain history as the retriever's int ids -> the top-k
   candidate ids of the whole corpus, the history's own items excluded;
2. the pushed ranker's `score_candidates` signature (`pipelines.serving`):
   the user's raw source and target histories and the k candidates -> a
   click probability each, with the encoders run once for all k.

The retriever works on int ids (`1..num_candidates-1`, 0 is padding), the
ranker on the raw item id strings, so the caller passes the retriever's
corpus as raw ids (`corpus[j]` is the raw id of retriever id `j`), or
leaves it to the retriever's own `assets.extra/corpus.txt` (the pipeline's
"retrieval" Trainer writes it), and the items' categories. History items the retriever does not know are left out
of its query and counted in `Recommendation.unknown_history_items`; the
ranker still reads the whole history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from pipelines import serving
from sitn_tf import features as F
from sitn_tf.retrieval import export as retrieval_export

CORPUS_FILE = "corpus.txt"


def read_corpus(retriever_dir: str) -> list[str]:
    """The raw item id of each retriever id, from `assets.extra/corpus.txt`."""
    path = f"{retriever_dir.rstrip('/')}/assets.extra/{CORPUS_FILE}"
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: no corpus file; pass `corpus` (raw id per retriever id)")
    with tf.io.gfile.GFile(path) as handle:
        return handle.read().split("\n")[:-1]


class Recommendation(NamedTuple):
    """One user's ranked candidates, best first.

    Attributes:
      item_ids: raw item ids, by descending ranker probability.
      probabilities: `(k,)` the ranker's click probabilities.
      retrieval_scores: `(k,)` the retriever's scores of the same items.
      unknown_history_items: target-history items the retriever's corpus lacks.
    """

    item_ids: list[str]
    probabilities: np.ndarray
    retrieval_scores: np.ndarray
    unknown_history_items: int


class RetrieveThenRank:
    """Recommends target-domain items: retrieve from the corpus, then rank.

    Args:
      retriever_dir: a SavedModel with the `retrieve` signature.
      ranker_dir: a pushed ranker SavedModel with `score_candidates`.
      corpus: the retriever's ids as raw item ids; `corpus[0]` is padding and
        is never recommended. None reads `CORPUS_FILE` in the retriever's
        `assets.extra/` (one id per line, line 0 empty).
      categories: raw item id -> category, for the candidates the ranker
        scores (a missing item gets `""`, the ranker's "unknown").
    """

    def __init__(
        self,
        retriever_dir: str,
        ranker_dir: str,
        corpus: Sequence[str] | None = None,
        categories: Mapping[str, str] | None = None,
    ):
        if corpus is None:
            corpus = read_corpus(retriever_dir)
        if len(corpus) < 2:
            raise ValueError(f"`corpus` must hold padding and at least one item, got {len(corpus)}")
        if len(set(corpus[1:])) != len(corpus) - 1 or "" in corpus[1:]:
            raise ValueError("`corpus` must hold distinct, non-empty raw item ids after index 0")
        retriever = tf.saved_model.load(retriever_dir)
        ranker = tf.saved_model.load(ranker_dir)
        for name, model, path in (
            (retrieval_export.SIGNATURE, retriever, retriever_dir),
            (serving.SCORE_CANDIDATES, ranker, ranker_dir),
        ):
            if name not in model.signatures:
                raise ValueError(f"{path}: no `{name}` signature (has {sorted(model.signatures)})")
        self._retriever, self._ranker = retriever, ranker  # keep the loaded objects alive
        self._retrieve = retriever.signatures[retrieval_export.SIGNATURE]
        self._score = ranker.signatures[serving.SCORE_CANDIDATES]
        self.corpus = list(corpus)
        self._ids = {item: index for index, item in enumerate(self.corpus) if index > 0}
        self.categories = dict(categories or {})

    def recommend(
        self,
        target_item_ids: Sequence[str],
        target_categories: Sequence[str],
        source_item_ids: Sequence[str] = (),
        source_categories: Sequence[str] = (),
        user_id: str = "",
    ) -> Recommendation:
        """One user's recommendation from raw histories (oldest first)."""
        for name, ids, categories in (
            ("target", target_item_ids, target_categories),
            ("source", source_item_ids, source_categories),
        ):
            if len(ids) != len(categories):
                raise ValueError(
                    f"{name}_item_ids and {name}_categories differ in length: "
                    f"{len(ids)} and {len(categories)}"
                )
        known = [self._ids[item] for item in target_item_ids if item in self._ids]
        retrieved = self._retrieve(
            history=tf.constant([known or [0]], tf.int64),
            history_length=tf.constant([len(known)], tf.int64),
        )
        ids = retrieved["item_ids"].numpy()[0]
        candidates = [self.corpus[int(j)] for j in ids]

        def history(values: Sequence[str]) -> tf.Tensor:
            return tf.constant([list(values) + [""]])  # a trailing "" (padding) keeps the shape

        probabilities = self._score(
            user_id=tf.constant([user_id]),
            item_id=tf.constant(candidates),
            item_category=tf.constant([self.categories.get(c, "") for c in candidates]),
            **{
                F.SOURCE_ITEM_IDS: history(source_item_ids),
                F.SOURCE_CATEGORIES: history(source_categories),
                F.TARGET_ITEM_IDS: history(target_item_ids),
                F.TARGET_CATEGORIES: history(target_categories),
            },
            # The retriever knows no click counts or ages: "unknown" for all.
            candidate_prior_clicks=tf.constant([-1], tf.int64),
            candidate_age=tf.constant([-1], tf.int64),
        )[serving.PROBABILITY].numpy()
        order = np.argsort(-probabilities, kind="stable")
        return Recommendation(
            item_ids=[candidates[i] for i in order],
            probabilities=probabilities[order],
            retrieval_scores=retrieved["scores"].numpy()[0][order],
            unknown_history_items=len(target_item_ids) - len(known),
        )
